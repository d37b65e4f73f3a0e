"""Huawei IMS OpenStack-native v1.1 emulator: ``GET /v1.1/images/detail`` (Glance v1).

It behaves as the API documented in shared/providers/huawei-openstack-v1.md:

- ``X-Auth-Token`` required: a project-scoped token from the IAM endpoint this emulator
  also serves (``POST /v3/auth/tokens``, :mod:`inventory.emulators.huawei_iam`), for the
  project of the emulated region. A missing, unknown, expired, revoked or wrongly scoped
  token is answered as Huawei's gateway does: HTTP 401 ``{"error_code": "APIGW.0301",
  "error_msg", "request_id"}``;
- Glance v1 paging: ``limit`` (default 25, clamped to 1000) and ``marker`` (the id of the
  last image of the previous page); no total, no next link. A marker that is not in the
  listing (unknown, or an image deleted meanwhile) is HTTP 400 "Invalid marker";
- ``sort_key`` (``name``, ``status``, ``container_format``, ``disk_format``, ``size``,
  ``id``, ``created_at``, ``updated_at``; default ``created_at``) and ``sort_dir``
  (default ``desc``), ties broken by ``created_at`` then ``id`` as Glance does;
- the documented filters ``name``, ``container_format``, ``disk_format``, ``status``,
  ``size_min``, ``size_max`` (bytes) and ``changes-since`` (images updated after it,
  deleted ones included); without ``changes-since`` deleted images are hidden;
- Windows images exist in the catalogue but are never listed (Huawei stopped returning them
  from this API);
- times without a zone and with microseconds, ``properties`` holding Huawei's ``__*``
  attributes as strings, ``X-Openstack-Request-Id`` on every answer;
- IMS errors (a bad filter or marker) as HTTP 400 ``{"error": {"code": "IMG.0001",
  "message"}}`` (the code number is the emulator's; Huawei's table is not on the seed page);
- faults from :mod:`inventory.emulators.base`; throttling is the gateway's HTTP 429
  ``APIGW.0308``; ``shrink`` deletes the last image of the page it answers, so the next
  page's marker names a deleted image (what a deletion during a marker listing looks like).

Mutations in Glance's vocabulary: ``delete`` sets ``status: deleted``, ``deleted: true``,
``deleted_at`` and ``updated_at`` (the image leaves the default listing and shows only with
``changes-since``); ``remove`` purges it; ``add`` creates active private images; ``rename``
changes the name. Glance has no deprecated or ceased state: ``deprecate`` and ``cease``
change nothing and return [].

Default credentials (also for ``inventory emulate huawei-ims-v1``): the IAM identity of
:mod:`inventory.emulators.huawei_iam`: account ``emulator-account``, user
``emulator-user``, password ``emulator-password``; region ``cn-north-4``. This API takes no
AK/SK: ``serve``'s ``access_key_id``/``secret_access_key`` set the IAM user name and
password instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

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
from inventory.emulators.huawei_iam import DEFAULT_PASSWORD, DEFAULT_USERNAME, IamService
from inventory.providers.fields import parse_time

DEFAULT_REGION = "cn-north-4"
PUBLIC_OWNER = "b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5"  # Huawei's own tenant for public images
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
SORT_KEYS = (
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
)
_STATUSES_DRAWN = ("active", "queued", "saving", "killed")
_STATUS_WEIGHTS = (92, 2, 2, 4)


def _fmt(moment: datetime) -> str:
    """Glance v1's format: no zone, microseconds (the time is UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _make_image(rng: random.Random, owner: str, public_share: float) -> dict[str, Any]:
    public = rng.random() < public_share
    name, _family, platform, os_label = image_name(rng, public)
    created = random_time(rng) + timedelta(microseconds=rng.randrange(1_000_000))
    updated = created + timedelta(seconds=rng.randint(2, 3600 * 24 * 30))
    status = rng.choices(_STATUSES_DRAWN, _STATUS_WEIGHTS)[0]
    uploaded = status == "active"
    size = rng.randint(300, 20_000) * 1024 * 1024 if uploaded else None
    image_id = _uuid(rng)
    properties = {
        "__os_version": f"{os_label} 64bit",
        "__platform": os_label.split()[0],
        "__os_type": "Windows" if platform == "windows" else "Linux",
        "__os_bit": "64",
        "__imagetype": "gold" if public else "private",
        "__isregistered": "true" if uploaded else "false",
        "virtual_env_type": "FusionCompute",
        "architecture": "arm" if platform == "linux" and rng.random() < 0.1 else "x86",
    }
    if rng.random() < 0.5:
        properties["hw_firmware_type"] = rng.choice(("bios", "uefi"))
    return {
        "status": status,
        "virtual_size": None,
        "name": name,
        "deleted": False,
        "container_format": "bare",
        "created_at": _fmt(created),
        "disk_format": rng.choice(("zvhd2", "zvhd2", "qcow2", "vhd", "raw")),
        "updated_at": _fmt(updated),
        "properties": properties,
        "owner": PUBLIC_OWNER if public else owner,
        "protected": public,
        "min_ram": rng.choice((0, 0, 1024, 2048)),
        "checksum": hashlib.md5(image_id.encode(), usedforsecurity=False).hexdigest()
        if uploaded
        else None,
        "min_disk": rng.choice((40, 40, 40, 50, 100)),
        "is_public": public,
        "deleted_at": None,
        "id": image_id,
        "size": size,
    }


def generate_images(
    count: int, seed: int, owner: str, public_share: float = 0.15
) -> list[dict[str, Any]]:
    """A deterministic catalogue: the same arguments give the same images."""
    rng = random.Random(seed)
    return [_make_image(rng, owner, public_share) for _ in range(count)]


class ImsCatalogue(CatalogueStore):
    """The emulated image catalogue of one project: thread-safe, mutable between runs."""

    id_key = "id"

    def __init__(self, images: list[dict[str, Any]], owner: str) -> None:
        self.owner = owner
        super().__init__(images)

    @classmethod
    def generate(
        cls, count: int, seed: int, owner: str, public_share: float = 0.15
    ) -> ImsCatalogue:
        return cls(generate_images(count, seed, owner, public_share), owner)

    def mutate(
        self,
        seed: int,
        deprecate: int = 0,  # noqa: ARG002 - Glance has no deprecated state
        cease: int = 0,  # noqa: ARG002 - nor a ceased one
        delete: int = 0,
        remove: int = 0,
        add: int = 0,
        rename: int = 0,
        now: datetime | None = None,
    ) -> dict[str, list[str]]:
        """Change the project's own listed images as IMS would between two syncs (see the
        module docstring). Deterministic for a seed, state and ``now``; each image gets at
        most one change; returns the ids affected per kind."""
        rng = random.Random(seed)
        now_text = _fmt(now or datetime.now(UTC))
        out: dict[str, list[str]] = {
            k: [] for k in ("deprecate", "cease", "delete", "remove", "add", "rename")
        }
        with self._lock:
            self._changed()
            owned = [i for i in self._images.values() if i["owner"] == self.owner and _listed(i)]
            touched: set[str] = set()

            def pick(candidates: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
                pool = [c for c in candidates if c["id"] not in touched]
                chosen = rng.sample(pool, min(n, len(pool)))
                touched.update(c["id"] for c in chosen)
                return chosen

            for image in pick(owned, delete):
                image.update(status="deleted", deleted=True, deleted_at=now_text)
                image["updated_at"] = now_text
                out["delete"].append(image["id"])
            for image in pick(owned, remove):
                self._removed[image["id"]] = self._images.pop(image["id"])
                out["remove"].append(image["id"])
            for image in pick(owned, rename):
                image.update(name=f"{image['name']}-v{rng.randint(2, 9)}", updated_at=now_text)
                out["rename"].append(image["id"])
            while len(out["add"]) < add:
                image = _make_image(rng, self.owner, public_share=0.0)
                if (
                    image["id"] in self._images
                    or image["id"] in self._removed
                    or not _listed(image)
                ):
                    continue
                image.update(status="active", created_at=now_text, updated_at=now_text)
                image["size"] = image["size"] or 1024 * 1024 * 1024
                self._images[image["id"]] = image
                out["add"].append(image["id"])
        return out

    def listing(
        self,
        filters: tuple[tuple[str, Any], ...] = (),
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
        filters: tuple[tuple[str, Any], ...] = (),
        sort_key: str = "created_at",
        sort_dir: str = "desc",
    ) -> list[dict[str, Any]]:
        """Every image the project sees with these filters, sorted as Glance sorts."""
        f = dict(filters)
        with self._lock:
            view = [
                dict(i)
                for i in self._images.values()
                if _listed(i) and (i["is_public"] or i["owner"] == self.owner) and _matches(i, f)
            ]

        def key(image: dict[str, Any]) -> tuple[Any, ...]:
            value = image.get(sort_key)
            # Nulls first, as PostgreSQL-backed Glance sorts them ascending.
            return (
                value is not None,
                value or 0 if sort_key == "size" else str(value or ""),
                image["created_at"],
                image["id"],
            )

        view.sort(key=key, reverse=sort_dir == "desc")
        return view

    def visible_ids(self) -> set[str]:
        """The ids a default listing (no filters) returns."""
        return {i["id"] for i in self.listing()}


def _listed(image: dict[str, Any]) -> bool:
    # Huawei no longer returns Windows images from this API.
    props = image.get("properties") or {}
    return props.get("__os_type") != "Windows"


def _matches(image: dict[str, Any], f: dict[str, Any]) -> bool:
    since = f.get("changes-since")
    if since is None:
        if image.get("deleted"):
            return False
    else:
        updated = parse_time(image.get("updated_at"))
        if updated is None or updated <= since:
            return False
    for key in ("name", "container_format", "disk_format", "status"):
        if key in f and image.get(key) != f[key]:
            return False
    size = image.get("size")
    if "size_min" in f and (size is None or size < f["size_min"]):
        return False
    return not ("size_max" in f and (size is None or size > f["size_max"]))


class ImsError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


def _request_id() -> str:
    return f"req-{uuid.uuid4()}"


def _gateway_error(status: int, code: str, message: str) -> Response:
    rid = _request_id()
    return Response.json(
        status,
        {"error_code": code, "error_msg": message, "request_id": rid},
        **{"X-Request-Id": rid},
    )


_position_cache: tuple[list[dict[str, Any]], dict[str, int]] | None = None
_position_lock = threading.Lock()


def _positions(view: list[dict[str, Any]]) -> dict[str, int]:
    """Image id -> index in a cached listing view, built once per view (views are replaced,
    never changed, when the catalogue changes), so a marker lookup is O(1) per page."""
    global _position_cache
    with _position_lock:
        if _position_cache is None or _position_cache[0] is not view:
            _position_cache = (view, {image["id"]: n for n, image in enumerate(view)})
        return _position_cache[1]


def _ims_error(status: int, code: str, message: str) -> Response:
    return Response.json(
        status,
        {"error": {"code": code, "message": message}},
        **{"X-Openstack-Request-Id": _request_id()},
    )


_FAULT_ANSWERS: dict[str, Callable[[], Response]] = {
    "throttle": lambda: _gateway_error(
        429,
        "APIGW.0308",
        "The throttling threshold has been reached: policy user over ratelimit,limit:200,"
        "time:1 second",
    ),
}


class ImsApp:
    """The request handling of the emulator; see the module docstring for the behaviour."""

    def __init__(
        self,
        catalogue: ImsCatalogue,
        *,
        region: str = DEFAULT_REGION,
        iam: IamService | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.region = region
        self.iam = iam or IamService()
        self.faults = faults or Faults()
        self._seeds = MutationSeeds()

    @property
    def project_id(self) -> str:
        return self.iam.projects[self.region]

    def __repr__(self) -> str:
        return f"ImsApp(region={self.region!r}, images={len(self.catalogue)})"

    # -- App protocol ----------------------------------------------------------------------

    def mutate(self, **counts: Any) -> dict[str, list[str]]:
        """The control API's mutation (see :func:`~inventory.emulators.base.control_mutate`)."""
        return control_mutate(self.catalogue, counts, self._seeds)

    def state(self) -> dict[str, Any]:
        return {"provider": "huawei-ims-v1", "images": len(self.catalogue), **self.iam.state()}

    def handle(self, request: Request) -> Response:
        if self.iam.handles(request):
            return self.iam.handle(request)
        try:
            return self._handle(request)
        except ImsError as err:
            return err.response

    # -- internals -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/v1.1/images/detail" or request.method != "GET":
            raise ImsError(
                _gateway_error(
                    404, "APIGW.0101", "The API does not exist or has not been published"
                )
            )
        single = dict(parse_qsl(request.raw_query, keep_blank_values=True))
        limit = self._limit(single)
        filters, sort_key, sort_dir = self._filters(single)
        self._authenticate(request)
        view = self.catalogue.listing(filters, sort_key, sort_dir)
        start = 0
        marker = single.get("marker")
        if marker is not None:
            index = _positions(view).get(marker)
            if index is None:
                raise ImsError(_ims_error(400, "IMG.0001", "Invalid marker"))
            start = index + 1
        fault, shrink = apply_faults(self.faults, start // limit + 1, _FAULT_ANSWERS)
        if fault is not None:
            return fault
        page = view[start : start + limit]
        response = Response.json(200, {"images": page}, **{"X-Openstack-Request-Id": _request_id()})
        if shrink and page:
            # Marker paging does not shift when an earlier image goes; what hurts it is the
            # marker image itself being deleted before the next page is asked for.
            self.catalogue.edit(page[-1]["id"], status="deleted", deleted=True)
        return response

    def _limit(self, single: dict[str, str]) -> int:
        try:
            limit = int(single.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise ImsError(_ims_error(400, "IMG.0001", "limit param must be an integer")) from None
        if limit < 0:
            raise ImsError(_ims_error(400, "IMG.0001", "limit param must be positive"))
        return max(1, min(limit, MAX_LIMIT))

    def _filters(self, single: dict[str, str]) -> tuple[tuple[tuple[str, Any], ...], str, str]:
        f: dict[str, Any] = {}
        for key in ("name", "container_format", "disk_format", "status"):
            if key in single:
                f[key] = single[key]
        for key in ("size_min", "size_max"):
            if key in single:
                try:
                    f[key] = int(single[key])
                except ValueError:
                    raise ImsError(
                        _ims_error(400, "IMG.0001", f"Invalid {key} value: {single[key]!r}")
                    ) from None
        if "changes-since" in single:
            since = parse_time(single["changes-since"])
            if since is None:
                raise ImsError(_ims_error(400, "IMG.0001", "Unrecognized changes-since value"))
            f["changes-since"] = since
        sort_key = single.get("sort_key", "created_at")
        sort_dir = single.get("sort_dir", "desc")
        if sort_key not in SORT_KEYS:
            raise ImsError(
                _ims_error(
                    400,
                    "IMG.0001",
                    f"Unsupported sort_key. Acceptable values: {', '.join(SORT_KEYS)}",
                )
            )
        if sort_dir not in ("asc", "desc"):
            raise ImsError(
                _ims_error(400, "IMG.0001", "Unsupported sort_dir. Acceptable values: asc, desc")
            )
        return tuple(sorted(f.items())), sort_key, sort_dir

    def _authenticate(self, request: Request) -> None:
        token = request.headers.get("x-auth-token")
        if not token:
            raise ImsError(
                _gateway_error(
                    401,
                    "APIGW.0301",
                    "Incorrect IAM authentication information: x-auth-token not found",
                )
            )
        info = self.iam.check(token)
        if info is None:
            raise ImsError(
                _gateway_error(
                    401,
                    "APIGW.0301",
                    "Incorrect IAM authentication information: decrypt token fail",
                )
            )
        if info.project_id != self.project_id:
            raise ImsError(
                _gateway_error(
                    401,
                    "APIGW.0301",
                    f"Incorrect IAM authentication information: the token is not scoped to "
                    f"project {self.region}",
                )
            )


def make_server(
    *,
    port: int = 0,
    images: int = 1000,
    seed: int = 1,
    region: str = DEFAULT_REGION,
    public_share: float = 0.15,
    iam: IamService | None = None,
) -> EmulatorServer:
    iam = iam or IamService()
    catalogue = ImsCatalogue.generate(images, seed, iam.projects[region], public_share)
    return EmulatorServer(ImsApp(catalogue, region=region, iam=iam), port)


def serve(
    *,
    port: int = 8100,
    images: int = 1000,
    seed: int = 1,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> None:
    """Run the emulator in the foreground until interrupted (``inventory emulate
    huawei-ims-v1``). This API has no AK/SK: ``access_key_id`` / ``secret_access_key`` name
    the IAM user and password to accept; None = the documented defaults."""
    iam = IamService(
        username=access_key_id or DEFAULT_USERNAME, password=secret_access_key or DEFAULT_PASSWORD
    )
    server = make_server(port=port, images=images, seed=seed, iam=iam)
    print(
        f"Huawei IMS v1.1 emulator: {server.url} (GET /v1.1/images/detail; {images} images, "
        f"seed {seed}; region {DEFAULT_REGION}); IAM tokens at {server.url}/v3/auth/tokens for "
        f"user {iam.username} of {iam.domain_name}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
