"""Huawei Cloud IEC ListImages emulator: AK/SK or IAM token, offset paging, error_code.

It behaves as the real API documented in shared/providers/huawei-iec.md:

- ``GET /v1/images`` with ``offset`` (a row offset) and ``limit`` (default 500; a larger
  value is clamped to 500) and ``total`` in every answer;
- authentication, checked like the API gateway does:

  - ``Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...``: the
    signature is recomputed with the shared signer over the listed headers (which must
    include ``host`` and ``x-sdk-date``) and compared in constant time; the account id must
    come as ``X-Domain-Id``. An ``X-Sdk-Date`` more than 15 minutes off is ``APIGW.0303``;
    any other failure is ``APIGW.0301`` (HTTP 401);
  - or ``X-Auth-Token``: a token from the IAM endpoint this emulator also serves
    (``POST /v3/auth/tokens``, see :mod:`inventory.emulators.huawei_iam`); an unknown,
    expired or revoked token is ``APIGW.0301``;

- errors as ``{"error_code", "error_msg", "request_id"}`` with an ``X-Request-Id`` header;
  a bad parameter is HTTP 400 ``IEC.0001`` (the service's own code numbering is not
  documented on the seed page; this one is the emulator's);
- the filters of the spec (``__imagetype``, ``__isregistered``, ``__os_type``, the
  ``__support_*`` flags, ``id``, ``name``, ``protected``, ``status``, ``visibility``,
  ``virtual_env_type``) and ``sort_key`` (``name``, ``status``, ``disk_format``,
  ``created_at``) / ``sort_dir`` (default ``created_at`` ``desc``), ties broken by id;
- the listing shows public (gold) images and the account's private ones; deleted images stay
  listed with ``deleted: true`` and ``deleted_at``;
- faults from :mod:`inventory.emulators.base`; throttling is the gateway's HTTP 429
  ``APIGW.0308``.

Mutations in IEC's vocabulary: ``delete`` sets ``status: deleted``, ``deleted: true`` and
``deleted_at`` (the image stays listed); ``remove`` takes it out of the listing; ``add``
creates active private images; ``rename`` changes the name. IEC has no deprecated or
destroyed-for-good state, so ``deprecate`` and ``cease`` change nothing and return [].

Default credentials (also for ``inventory emulate huawei-iec``): access key id
``HWEMULATORACCESSKEY01``, secret ``emulator-huawei-secret-access-key``, account id
(``X-Domain-Id``) :data:`inventory.emulators.huawei_iam.DEFAULT_DOMAIN_ID`; for tokens the
IAM identity documented in :mod:`inventory.emulators.huawei_iam` (account
``emulator-account``, user ``emulator-user``, password ``emulator-password``).
"""

from __future__ import annotations

import contextlib
import hmac
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote

from inventory.emulators.base import (
    CatalogueStore,
    EmulatorServer,
    Faults,
    MutationSeeds,
    Request,
    Response,
    apply_faults,
    control_mutate,
    image_name,
    random_time,
)
from inventory.emulators.huawei_iam import DEFAULT_DOMAIN_ID, DEFAULT_PROJECTS, IamService
from inventory.providers.huawei_common import signer

DEFAULT_ACCESS_KEY_ID = "HWEMULATORACCESSKEY01"
DEFAULT_SECRET_ACCESS_KEY = "emulator-huawei-secret-access-key"  # noqa: S105 - documented
#: Private images belong to the account's project (IEC reports a tenant id as owner).
DEFAULT_OWNER = DEFAULT_PROJECTS["cn-north-4"]
GOLD_OWNER = "b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5"  # Huawei's own tenant for public images
MAX_LIMIT = 500
MAX_SKEW_S = 15 * 60
STATUSES = ("queued", "saving", "active", "killed", "deleted")
SORT_KEYS = ("name", "status", "disk_format", "created_at")
TRUE_FLAGS = (
    "__support_kvm",
    "__support_kvm_ascend_310",
    "__support_kvm_hi1822_hiovs",
    "__support_arm",
    "__support_gpu_t4",
    "__support_amd",
)
_STATUSES_DRAWN = ("active", "queued", "saving", "killed", "deleted")
_STATUS_WEIGHTS = (88, 2, 2, 3, 5)


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _make_image(rng: random.Random, owner: str, gold_share: float) -> dict[str, Any]:
    gold = rng.random() < gold_share
    name, _family, platform, os_label = image_name(rng, gold)
    created = random_time(rng)
    updated = created + timedelta(minutes=rng.randint(3, 60 * 24 * 30))
    status = rng.choices(_STATUSES_DRAWN, _STATUS_WEIGHTS)[0]
    image_id = _uuid(rng)
    image: dict[str, Any] = {
        "id": image_id,
        "name": name,
        "status": status,
        "disk_format": "zvhd2",
        "min_disk": rng.choice((40, 40, 40, 50, 100)),
        "min_ram": rng.choice((0, 0, 1024, 2048)),
        "owner": GOLD_OWNER if gold else owner,
        "protected": gold,
        "visibility": "public" if gold else "private",
        "created_at": _fmt(created),
        "updated_at": _fmt(updated),
        "self": f"/v1/self/{image_id}",
        "deleted": status == "deleted",
        "virtual_env_type": "FusionCompute",
        "deleted_at": _fmt(updated) if status == "deleted" else "",
        "relation_job_id": "" if gold else f"ff80808{rng.getrandbits(100):025x}",
        "__imagetype": "gold" if gold else "private",
        "__platform": os_label.split()[0],
        "__os_type": "Windows" if platform == "windows" else "Linux",
        "__os_version": f"{os_label} 64bit",
        "__isregistered": status == "active",
        "__support_kvm": "true",
    }
    if platform == "linux" and rng.random() < 0.1:
        image["__support_arm"] = "true"
    if rng.random() < 0.05:
        image["__support_gpu_t4"] = "true"
    if rng.random() < 0.7:
        image["hw_firmware_type"] = rng.choice(("bios", "uefi"))
    if not gold:
        image["data_source"] = f"instance:{_uuid(rng)}"
    return image


def generate_images(
    count: int, seed: int, owner: str = DEFAULT_OWNER, gold_share: float = 0.15
) -> list[dict[str, Any]]:
    """A deterministic catalogue: the same arguments give the same images."""
    rng = random.Random(seed)
    return [_make_image(rng, owner, gold_share) for _ in range(count)]


class IecCatalogue(CatalogueStore):
    """The emulated IEC image catalogue of one account: thread-safe, mutable between runs."""

    id_key = "id"

    def __init__(self, images: list[dict[str, Any]], owner: str = DEFAULT_OWNER) -> None:
        self.owner = owner
        super().__init__(images)

    @classmethod
    def generate(
        cls, count: int, seed: int, owner: str = DEFAULT_OWNER, gold_share: float = 0.15
    ) -> IecCatalogue:
        return cls(generate_images(count, seed, owner, gold_share), owner)

    def mutate(
        self,
        seed: int,
        deprecate: int = 0,  # noqa: ARG002 - IEC has no deprecated state
        cease: int = 0,  # noqa: ARG002 - nor a destroyed-for-good one
        delete: int = 0,
        remove: int = 0,
        add: int = 0,
        rename: int = 0,
        now: datetime | None = None,
    ) -> dict[str, list[str]]:
        """Change the account's private images as IEC would between two syncs (see the
        module docstring). Deterministic for a seed, state and ``now``; each image gets at
        most one change; returns the ids affected per kind."""
        rng = random.Random(seed)
        now_text = _fmt(now or datetime.now(UTC))
        out: dict[str, list[str]] = {
            k: [] for k in ("deprecate", "cease", "delete", "remove", "add", "rename")
        }
        with self._lock:
            self._changed()
            owned = [i for i in self._images.values() if i["owner"] == self.owner]
            touched: set[str] = set()

            def pick(candidates: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
                pool = [c for c in candidates if c["id"] not in touched]
                chosen = rng.sample(pool, min(n, len(pool)))
                touched.update(c["id"] for c in chosen)
                return chosen

            for image in pick([i for i in owned if i["status"] != "deleted"], delete):
                image.update(
                    status="deleted",
                    deleted=True,
                    deleted_at=now_text,
                    updated_at=now_text,
                )
                # A dict key, not a keyword: __names are mangled inside a class body.
                image["__isregistered"] = False
                out["delete"].append(image["id"])
            for image in pick(owned, remove):
                self._removed[image["id"]] = self._images.pop(image["id"])
                out["remove"].append(image["id"])
            for image in pick(owned, rename):
                image.update(name=f"{image['name']}-v{rng.randint(2, 9)}", updated_at=now_text)
                out["rename"].append(image["id"])
            while len(out["add"]) < add:
                image = _make_image(rng, self.owner, gold_share=0.0)
                if image["id"] in self._images or image["id"] in self._removed:
                    continue
                image.update(
                    status="active",
                    deleted=False,
                    deleted_at="",
                    created_at=now_text,
                    updated_at=now_text,
                )
                image["__isregistered"] = True
                self._images[image["id"]] = image
                out["add"].append(image["id"])
        return out

    def listing(
        self,
        filters: tuple[tuple[str, str], ...] = (),
        sort_key: str = "created_at",
        sort_dir: str = "desc",
    ) -> list[dict[str, Any]]:
        """The images the account sees, filtered and sorted as the API does (cached)."""
        key = (filters, sort_key, sort_dir)
        with self._lock:
            view = self._views.get(key)
            if view is None:
                view = self._build_listing(filters, sort_key, sort_dir)
                self._views[key] = view
            return view

    def _build_listing(
        self,
        filters: tuple[tuple[str, str], ...] = (),
        sort_key: str = "created_at",
        sort_dir: str = "desc",
    ) -> list[dict[str, Any]]:
        """The images the account sees, filtered and sorted as the API does."""
        f = dict(filters)
        with self._lock:
            view = [
                dict(i)
                for i in self._images.values()
                if (i["visibility"] == "public" or i["owner"] == self.owner) and _matches(i, f)
            ]
        view.sort(key=lambda i: (str(i.get(sort_key) or ""), i["id"]), reverse=sort_dir == "desc")
        return view

    def shrink(self, filters: tuple[tuple[str, str], ...], sort_key: str, sort_dir: str) -> None:
        """Remove the first image of a listing (shifts the offsets of every later item)."""
        with self._lock:
            view = self.listing(filters, sort_key, sort_dir)
            if view:
                self.remove(view[0]["id"])


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _matches(image: dict[str, Any], f: dict[str, str]) -> bool:
    return all(_text(image.get(key)) == value for key, value in f.items())


class IecError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(status: int, code: str, message: str) -> Response:
    request_id = uuid.uuid4().hex
    return Response.json(
        status,
        {"error_code": code, "error_msg": message, "request_id": request_id},
        **{"X-Request-Id": request_id},
    )


#: The gateway's own faulty answers.
_FAULT_ANSWERS: dict[str, Callable[[], Response]] = {
    "throttle": lambda: _error(
        429,
        "APIGW.0308",
        "The throttling threshold has been reached: policy user over ratelimit,limit:200,"
        "time:1 second",
    ),
}

#: Filters that compare to one attribute, and the values they accept (None = any).
_FILTERS: dict[str, tuple[str, ...] | None] = {
    "__imagetype": ("gold", "private"),
    "__isregistered": ("true", "false"),
    "__os_type": ("Linux", "Windows", "Other"),
    "__support_kvm_gpu_type": ("V100_vGPU", "RTX5000"),
    "id": None,
    "name": None,
    "protected": ("true", "false"),
    "status": STATUSES,
    "visibility": ("public", "private"),
    "virtual_env_type": ("FusionCompute",),
    **dict.fromkeys(TRUE_FLAGS, ("true",)),
}


class IecApp:
    """The request handling of the emulator; see the module docstring for the behaviour."""

    def __init__(
        self,
        catalogue: IecCatalogue,
        *,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        domain_id: str = DEFAULT_DOMAIN_ID,
        iam: IamService | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.access_key_id = access_key_id
        self._secret = secret_access_key
        self.domain_id = domain_id
        self.iam = iam or IamService(domain_id=domain_id)
        self.faults = faults or Faults()
        self._seeds = MutationSeeds()

    def __repr__(self) -> str:
        return f"IecApp(access_key_id={self.access_key_id!r}, images={len(self.catalogue)})"

    # -- App protocol ----------------------------------------------------------------------

    def mutate(self, **counts: Any) -> dict[str, list[str]]:
        """The control API's mutation (see :func:`~inventory.emulators.base.control_mutate`)."""
        return control_mutate(self.catalogue, counts, self._seeds)

    def state(self) -> dict[str, Any]:
        return {"provider": "huawei-iec", "images": len(self.catalogue), **self.iam.state()}

    def handle(self, request: Request) -> Response:
        if self.iam.handles(request):
            return self.iam.handle(request)
        try:
            return self._handle(request)
        except IecError as err:
            return _error(err.status, err.code, err.message)

    # -- internals -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/v1/images":
            raise IecError(404, "APIGW.0101", "The API does not exist or has not been published")
        if request.method != "GET":
            raise IecError(405, "APIGW.0101", "The API does not exist or has not been published")
        params = parse_qsl(request.raw_query, keep_blank_values=True)
        single = dict(params)
        offset, limit = self._paging(single)
        fault, shrink = apply_faults(self.faults, offset // limit + 1, _FAULT_ANSWERS)
        if fault is not None:
            return fault
        self._authenticate(request, params)
        filters, sort_key, sort_dir = self._filters(single)
        view = self.catalogue.listing(filters, sort_key, sort_dir)
        response = Response.json(
            200,
            {"images": view[offset : offset + limit], "total": len(view)},
            **{"X-Request-Id": uuid.uuid4().hex},
        )
        if shrink:
            self.catalogue.shrink(filters, sort_key, sort_dir)
        return response

    def _paging(self, single: dict[str, str]) -> tuple[int, int]:
        try:
            offset = int(single.get("offset", 0))
            limit = int(single.get("limit", MAX_LIMIT))
        except ValueError:
            raise IecError(400, "IEC.0001", "offset and limit must be integers") from None
        if offset < 0 or limit < 1:
            raise IecError(400, "IEC.0001", "offset must be >= 0 and limit a positive integer")
        return offset, min(limit, MAX_LIMIT)

    def _filters(self, single: dict[str, str]) -> tuple[tuple[tuple[str, str], ...], str, str]:
        out: dict[str, str] = {}
        for key, allowed in _FILTERS.items():
            if key in single:
                if allowed is not None and single[key] not in allowed:
                    raise IecError(400, "IEC.0001", f"invalid value of parameter {key}")
                out[key] = single[key]
        sort_key = single.get("sort_key", "created_at")
        sort_dir = single.get("sort_dir", "desc")
        if sort_key not in SORT_KEYS or sort_dir not in ("asc", "desc"):
            raise IecError(400, "IEC.0001", "invalid sort_key or sort_dir")
        return tuple(sorted(out.items())), sort_key, sort_dir

    def _authenticate(self, request: Request, params: list[tuple[str, str]]) -> None:
        authorization = request.headers.get("authorization")
        if authorization:
            self._verify_signature(request, params, authorization)
            return
        token = request.headers.get("x-auth-token")
        if not token:
            raise IecError(
                401,
                "APIGW.0301",
                "Incorrect IAM authentication information: x-auth-token not found",
            )
        if self.iam.check(token) is None:
            raise IecError(
                401, "APIGW.0301", "Incorrect IAM authentication information: decrypt token fail"
            )

    def _verify_signature(
        self, request: Request, params: list[tuple[str, str]], authorization: str
    ) -> None:
        parts = signer.parse_authorization(authorization)
        if parts is None:
            raise IecError(
                401,
                "APIGW.0301",
                "Incorrect IAM authentication information: unsupported authorization scheme",
            )
        if parts["Access"] != self.access_key_id:
            raise IecError(
                401, "APIGW.0301", "Incorrect IAM authentication information: ak not found"
            )
        names = parts["SignedHeaders"].split(";")
        if "host" not in names or "x-sdk-date" not in names:
            raise IecError(
                401,
                "APIGW.0301",
                "Incorrect IAM authentication information: host and x-sdk-date must be signed",
            )
        missing = [n for n in names if n not in request.headers]
        if missing:
            raise IecError(
                401,
                "APIGW.0301",
                f"Incorrect IAM authentication information: signed header {missing[0]} absent",
            )
        try:
            stamp = datetime.strptime(request.headers["x-sdk-date"], signer.DATE_FORMAT)
        except ValueError:
            raise IecError(
                401, "APIGW.0303", "Incorrect app authentication information: bad x-sdk-date"
            ) from None
        skew = abs((datetime.now(UTC) - stamp.replace(tzinfo=UTC)).total_seconds())
        if skew > MAX_SKEW_S:
            raise IecError(
                401,
                "APIGW.0303",
                "Incorrect app authentication information: signature expired",
            )
        payload = request.headers.get("x-sdk-content-sha256")
        body_sha = payload if payload == signer.UNSIGNED_PAYLOAD else signer.body_hash(request.body)
        canonical, _ = signer.canonical_request(
            request.method,
            unquote(request.path),
            params,
            {name: request.headers[name] for name in names},
            body_sha,
        )
        expected = signer.signature(
            self._secret, signer.string_to_sign(request.headers["x-sdk-date"], canonical)
        )
        if not hmac.compare_digest(expected.encode(), parts["Signature"].encode()):
            raise IecError(
                401,
                "APIGW.0301",
                "Incorrect IAM authentication information: verify aksk signature fail",
            )
        # IEC is account-level: the gateway needs the account id next to a global AK/SK.
        if request.headers.get("x-domain-id") != self.domain_id:
            raise IecError(
                401,
                "APIGW.0301",
                "Incorrect IAM authentication information: x-domain-id missing or not this "
                "account's",
            )


def make_server(
    *,
    port: int = 0,
    images: int = 1000,
    seed: int = 1,
    access_key_id: str = DEFAULT_ACCESS_KEY_ID,
    secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
    gold_share: float = 0.15,
    iam: IamService | None = None,
) -> EmulatorServer:
    catalogue = IecCatalogue.generate(images, seed, gold_share=gold_share)
    app = IecApp(
        catalogue, access_key_id=access_key_id, secret_access_key=secret_access_key, iam=iam
    )
    return EmulatorServer(app, port)


def serve(
    *,
    port: int = 8100,
    images: int = 1000,
    seed: int = 1,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> None:
    """Run the emulator in the foreground until interrupted (``inventory emulate huawei-iec``).

    Credentials left as None are the documented defaults."""
    access_key_id = access_key_id or DEFAULT_ACCESS_KEY_ID
    server = make_server(
        port=port,
        images=images,
        seed=seed,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key or DEFAULT_SECRET_ACCESS_KEY,
    )
    app = server.app
    assert isinstance(app, IecApp)
    print(
        f"Huawei IEC emulator: {server.url} (GET /v1/images; {images} images, seed {seed}); "
        f"access key id {access_key_id}, X-Domain-Id {app.domain_id}; IAM tokens at "
        f"{server.url}/v3/auth/tokens for user {app.iam.username} of {app.iam.domain_name}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
