"""Kingsoft Cloud (KSyun) KEC DescribeImages emulator: SigV4, one response, Error envelope.

It behaves as the real API documented in shared/providers/ksyun.md:

- ``GET /?Action=DescribeImages&Version=2016-03-04`` (a form-encoded POST is accepted too;
  the body is then hashed into the signature, as SigV4 does);
- every request must be signed with AWS Signature V4 for service ``kec``, either in the
  ``Authorization`` header (as KSyun's SDKs do) or presigned in the query
  (``X-Amz-Algorithm``, ``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-SignedHeaders``,
  ``X-Amz-Signature``, as KSyun's public-parameter page shows). The signature is recomputed
  with the provider's own signer and compared in constant time. The region comes from the
  credential scope (KEC's host name carries none) and must be one of ``regions``;
- ``X-Amz-Date`` (or, failing that, ``Date``) more than ``clock_skew_s`` (default 900 s, as
  AWS) from the emulator's clock is refused with ``RequestExpired``;
- errors are KSyun's envelope ``{"RequestId", "Error": {"Code", "Message"}}`` with a 4xx/5xx
  status: ``MissingAuthenticationToken`` 403 (no signature), ``IncompleteSignature`` 400,
  ``InvalidClientTokenId`` 403 (unknown access key), ``SignatureDoesNotMatch`` 403,
  ``RequestExpired`` 400, ``InvalidRegion`` 400, ``MissingParameter`` / ``InvalidAction`` /
  ``InvalidParameterValue`` 400, ``ImageIdInvalidParameterValue`` 400. The codes follow the
  botocore-style set KSyun's SDK understands; KSyun's exact statuses for the signature
  errors are not published (the emulator's choice, documented in docs/providers/ksyun.md);
- no paging at all: one response holds the whole ``ImagesSet`` (no total count), whatever
  paging-looking parameters are sent;
- the documented filters: ``ImageId`` (one id; a malformed or unknown id is
  ``ImageIdInvalidParameterValue``, as the seed lists it) and ``ImageType``, which is
  interpreted as the image's ``ImageSource`` category (``system``, ``import``, ``copy``,
  ``share``, ``extend``; anything else is ``InvalidParameterValue``). KSyun publishes no
  enumeration for ImageType beyond the sample ``system``, so this reading is an assumption;
- faults from :mod:`inventory.emulators.base`, every rule applying to "page" 1 (the only
  one). Throttling is KEC's own form: HTTP 503 with code ``RequestLimitExceeded`` (the KEC
  entry of the SDK's retry table). Extra kinds: ``internal`` (HTTP 400 ``InternalError``)
  and ``server_busy`` (HTTP 400 ``ServiceUnavailable``), both as DescribeImages lists them;
  ``malformed`` is a KSyun body cut off mid-listing.

The catalogue holds KSyun's standard images (``Type`` ``CommonImage``, public, ``ovf``) and
the account's custom images (``CustomImage``, private, ``assembled_image``), all listed
together as DescribeImages does. Every generated image is ``active``: it is the only
``ImageState`` KSyun documents. :meth:`KsyunCatalogue.mutate` interprets the common
mutation kinds in KEC's vocabulary: ``remove`` (an image deleted: KEC stops listing it),
``add`` (a new active custom image) and ``rename`` (a new ``Name``) are expressible;
``deprecate``, ``cease`` and ``delete`` are not (KEC has no such listed states, and a
deleted image is simply absent) and always come back empty.

Default credentials (also for ``inventory emulate ksyun``): access key id
``AKLTKSEMULATORKEY``, secret ``ksyun-emulator-secret-access-key``; regions
``cn-beijing-6``, ``cn-shanghai-2``, ``cn-guangzhou-1``, ``cn-hongkong-2``.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import hmac
import random
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from inventory.emulators.base import (
    COMMON_FAULT_KINDS,
    CatalogueStore,
    EmulatorServer,
    Faults,
    ImageTraits,
    MutationSeeds,
    OsRelease,
    Request,
    Response,
    apply_faults,
    control_mutate,
    draw_traits,
    iso_z,
)
from inventory.providers.ksyun.auth import ALGORITHM, AMZ_DATE_FORMAT, SERVICE, TERMINATOR, sign

DEFAULT_ACCESS_KEY_ID = "AKLTKSEMULATORKEY"
DEFAULT_SECRET_ACCESS_KEY = "ksyun-emulator-secret-access-key"  # noqa: S105 - a documented test key
DEFAULT_REGIONS = frozenset({"cn-beijing-6", "cn-shanghai-2", "cn-guangzhou-1", "cn-hongkong-2"})
DEFAULT_PORT = 8103
ACTION = "DescribeImages"
API_VERSION = "2016-03-04"
#: The ImageSource vocabulary (docs list import/copy/share; KSyun tooling adds extend and
#: system), which the emulator also accepts as ImageType values.
IMAGE_SOURCES = ("system", "import", "copy", "share", "extend")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: The fault kinds of this emulator: the common ones plus KSyun's two documented
#: server-side errors.
FAULT_KINDS = COMMON_FAULT_KINDS | {"internal", "server_busy"}
_VOLUME_TYPES = ("SSD3.0", "EHDD", "ESSD_PL1")


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid(rng: random.Random) -> str:
    # KEC ids (images, instances, snapshots) are UUIDs, not prefixed short ids.
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _platform(release: OsRelease) -> str:
    """KSyun's ``Platform`` style, ``centos-7.9``: the family and the version number."""
    words = release.version.split()
    version = next((w for w in words if any(c.isdigit() for c in w)), words[-1])
    return f"{release.family}-{version.lower()}"


def _make_image(rng: random.Random, traits: ImageTraits) -> dict[str, Any]:
    """One ImagesSet item from provider-neutral traits, in KEC's field names and types."""
    system = traits.system
    image_id = _uuid(rng)
    linux = traits.os.platform == "linux"
    source = "system" if system else rng.choices(("import", "copy", "share"), (70, 20, 10))[0]
    image: dict[str, Any] = {
        "ImageId": image_id,
        "Name": traits.name,
        "Type": "CommonImage" if system else "CustomImage",
        "ImageState": "active",
        "CreationDate": iso_z(traits.created),
        "Platform": _platform(traits.os),
        "IsPublic": system,
        "ContainerFormat": "ovf" if system else "assembled_image",
        "InstantAccess": rng.random() < 0.3,
        "IsNpe": rng.random() < 0.8,
        "UserCategory": "common" if system or source == "share" else source,
        "SysDisk": traits.size_gb,
        "Progress": "100",  # a string, as KSyun sends it
        "ImageSource": source,
        "CloudInitSupport": linux,
        "Ipv6Support": rng.random() < 0.6,
        "IsModifyType": rng.random() < 0.7,
        "Architecture": traits.architecture,
        "FastBoot": rng.random() < 0.2,
        "IsCloudMarket": False,
        "RealImageId": image_id,
        "OnlineExpansion": linux,
        "ImageMode": rng.choice(("legacy", "legacy", "uefi")),
        "SnapshotSet": [],
    }
    if not system:
        image["InstanceId"] = _uuid(rng)
        image["SnapshotSet"] = [
            {
                "SnapshotId": _uuid(rng),
                "DiskType": "SystemDisk",
                "DiskSize": traits.size_gb,
                "Type": "CommonSnapshot",
                "VolumeType": rng.choice(_VOLUME_TYPES),
                "AvailabilityZone": "cn-beijing-6" + rng.choice("abcd"),
            }
        ]
        if source == "copy":
            image["OriginalImageId"] = _uuid(rng)
    return image


def generate_images(count: int, seed: int, system_share: float = 0.2) -> list[dict[str, Any]]:
    """A deterministic catalogue: the same arguments give the same images."""
    rng = random.Random(seed)
    images: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(images) < count:
        for traits in draw_traits(rng, count - len(images), system_share):
            image = _make_image(rng, traits)
            if image["ImageId"] not in seen:
                seen.add(image["ImageId"])
                images.append(image)
    return images


class KsyunCatalogue(CatalogueStore):
    """The emulated KEC image catalogue of one account: thread-safe, mutable between runs."""

    id_key = "ImageId"

    @classmethod
    def generate(cls, count: int, seed: int, system_share: float = 0.2) -> KsyunCatalogue:
        return cls(generate_images(count, seed, system_share))

    def mutate(
        self,
        seed: int,
        *,
        deprecate: int = 0,
        cease: int = 0,
        delete: int = 0,
        remove: int = 0,
        add: int = 0,
        rename: int = 0,
        now: datetime | None = None,
    ) -> dict[str, list[str]]:
        """Change the catalogue as KSyun would between two syncs; deterministic for a seed,
        state and ``now``. Only the account's custom images change. ``deprecate``,
        ``cease`` and ``delete`` cannot be expressed in KEC's vocabulary and stay empty."""
        del deprecate, cease, delete  # no listed state for them in KEC (see module doc)
        rng = random.Random(seed)
        now_text = _fmt(now or datetime.now(UTC))
        out: dict[str, list[str]] = {
            k: [] for k in ("deprecate", "cease", "delete", "remove", "add", "rename")
        }
        with self._lock:
            owned = [i for i in self._images.values() if i["Type"] == "CustomImage"]
            touched: set[str] = set()

            def pick(n: int) -> list[dict[str, Any]]:
                pool = [c for c in owned if c["ImageId"] not in touched]
                chosen = rng.sample(pool, min(n, len(pool)))
                touched.update(c["ImageId"] for c in chosen)
                return chosen

            for image in pick(remove):
                self._removed[image["ImageId"]] = self._images.pop(image["ImageId"])
                out["remove"].append(image["ImageId"])
            for image in pick(rename):
                image["Name"] = f"{image['Name']}-v{rng.randint(2, 9)}"
                out["rename"].append(image["ImageId"])
            while len(out["add"]) < add:
                image = _make_image(rng, draw_traits(rng, 1, system_share=0.0)[0])
                if image["ImageId"] in self._images or image["ImageId"] in self._removed:
                    continue
                image["CreationDate"] = now_text
                self._images[image["ImageId"]] = image
                out["add"].append(image["ImageId"])
            self._changed()
        return out

    def listing(self, filters: tuple[tuple[str, str], ...] = ()) -> list[dict[str, Any]]:
        """The images matching ``(("ImageId", id), ("ImageType", source))`` filters, in
        catalogue order; cached until a change."""
        with self._lock:
            view = self._views.get(filters)
            if view is None:
                wanted = dict(filters)
                view = [
                    i
                    for i in self._images.values()
                    if ("ImageId" not in wanted or i["ImageId"] == wanted["ImageId"])
                    and ("ImageType" not in wanted or i.get("ImageSource") == wanted["ImageType"])
                ]
                self._views[filters] = view
            return view


class KsyunError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _envelope(status: int, code: str, message: str) -> Response:
    return Response.json(
        status, {"RequestId": str(uuid.uuid4()), "Error": {"Code": code, "Message": message}}
    )


#: KSyun's own faulty answers (see the module docstring).
_FAULT_ANSWERS: dict[str, Callable[[], Response]] = {
    "throttle": lambda: _envelope(
        503, "RequestLimitExceeded", "Request limit exceeded, please try again later."
    ),
    "internal": lambda: _envelope(400, "InternalError", "Internal Error"),
    "server_busy": lambda: _envelope(
        400,
        "ServiceUnavailable",
        'I/O error on GET request for "http://image-backend/v2/images": connect timed out',
    ),
    "malformed": lambda: Response(
        200, b'{"RequestId":"3ce9fdc9-dd6a-4685","ImagesSet":[{"ImageId":"31c78c89-98bd'
    ),
}


class KsyunApp:
    """The request handling of the emulator; see the module docstring for the behaviour."""

    fault_kinds = FAULT_KINDS

    def __init__(
        self,
        catalogue: KsyunCatalogue,
        *,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        regions: frozenset[str] = DEFAULT_REGIONS,
        clock_skew_s: float = 900.0,
        faults: Faults | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.access_key_id = access_key_id
        self._secret = secret_access_key
        self.regions = regions
        self.clock_skew_s = clock_skew_s
        self.faults = faults or Faults()
        self._seeds = MutationSeeds()

    def __repr__(self) -> str:
        return f"KsyunApp(access_key_id={self.access_key_id!r}, images={len(self.catalogue)})"

    # -- App protocol ----------------------------------------------------------------------

    def mutate(self, **counts: Any) -> dict[str, list[str]]:
        """The control API's mutation (see :func:`~inventory.emulators.base.control_mutate`)."""
        return control_mutate(self.catalogue, counts, self._seeds)

    def state(self) -> dict[str, Any]:
        return {"provider": "ksyun", "images": len(self.catalogue)}

    def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except KsyunError as err:
            return _envelope(err.status, err.code, err.message)

    # -- internals -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        if request.path != "/":
            return Response.text(404, "<html><body>404 Not Found</body></html>", "text/html")
        query = parse_qsl(request.raw_query, keep_blank_values=True)
        params = list(query)
        if request.method == "POST":
            if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
                body = request.body.decode("utf-8", "replace")
                params += parse_qsl(body, keep_blank_values=True)
        elif request.method != "GET":
            return Response.text(405, "Method Not Allowed")

        # One response is the whole listing, so every fault rule is about "page" 1.
        fault, _shrink = apply_faults(self.faults, 1, _FAULT_ANSWERS)
        if fault is not None:
            return fault
        self._authenticate(request, query)

        single = dict(params)
        action = single.get("Action")
        if not action:
            raise KsyunError(400, "MissingParameter", "The request must contain Action.")
        if action != ACTION:
            raise KsyunError(
                400, "InvalidAction", f"The action {action} is not valid for this endpoint."
            )
        if single.get("Version") != API_VERSION:
            raise KsyunError(
                400,
                "InvalidParameterValue",
                f"Version {single.get('Version')!r} is not supported; use {API_VERSION}.",
            )
        filters = self._filters(single)
        return Response.json(
            200, {"RequestId": str(uuid.uuid4()), "ImagesSet": self.catalogue.listing(filters)}
        )

    def _filters(self, single: dict[str, str]) -> tuple[tuple[str, str], ...]:
        f: dict[str, str] = {}
        if "ImageId" in single:
            image_id = single["ImageId"]
            if not _UUID.match(image_id) or self.catalogue.get(image_id) is None:
                raise KsyunError(
                    400,
                    "ImageIdInvalidParameterValue",
                    'An invalid or out-of-range value was supplied for the "ImageId" parameter.',
                )
            f["ImageId"] = image_id
        if "ImageType" in single:
            if single["ImageType"] not in IMAGE_SOURCES:
                raise KsyunError(
                    400,
                    "InvalidParameterValue",
                    f'The value {single["ImageType"]!r} is not valid for "ImageType".',
                )
            f["ImageType"] = single["ImageType"]
        return tuple(sorted(f.items()))

    def _authenticate(self, request: Request, query: list[tuple[str, str]]) -> None:
        q = dict(query)
        headers = request.headers
        if "X-Amz-Algorithm" in q:
            algorithm = q["X-Amz-Algorithm"]
            credential = q.get("X-Amz-Credential", "")
            signed_headers = q.get("X-Amz-SignedHeaders", "")
            signature = q.get("X-Amz-Signature", "")
            stamp = q.get("X-Amz-Date") or headers.get("x-amz-date")
        elif "authorization" in headers:
            algorithm, _, rest = headers["authorization"].partition(" ")
            parts = dict(
                item.strip().partition("=")[::2] for item in rest.split(",") if "=" in item
            )
            credential = parts.get("Credential", "")
            signed_headers = parts.get("SignedHeaders", "")
            signature = parts.get("Signature", "")
            stamp = headers.get("x-amz-date")
        else:
            raise KsyunError(403, "MissingAuthenticationToken", "Request is missing signature.")
        if algorithm != ALGORITHM:
            raise KsyunError(
                400, "IncompleteSignature", f"Unsupported signing algorithm; use {ALGORITHM}."
            )
        if not (credential and signed_headers and signature):
            raise KsyunError(
                400,
                "IncompleteSignature",
                "The signature must contain Credential, SignedHeaders and Signature.",
            )
        moment = self._moment(stamp, headers.get("date"))
        scope = credential.split("/")
        if len(scope) != 5 or scope[4] != TERMINATOR:
            raise KsyunError(
                400,
                "IncompleteSignature",
                "Credential must have the form <AccessKeyId>/<date>/<region>/kec/aws4_request.",
            )
        key_id, date, region, service, _ = scope
        if key_id != self.access_key_id:
            raise KsyunError(
                403, "InvalidClientTokenId", "The AccessKeyId in the request does not exist."
            )
        if service != SERVICE:
            raise KsyunError(
                403,
                "SignatureDoesNotMatch",
                f"Credential should be scoped to correct service: '{SERVICE}'.",
            )
        amz_date = moment.strftime(AMZ_DATE_FORMAT)
        if date != amz_date[:8]:
            raise KsyunError(
                403,
                "SignatureDoesNotMatch",
                f"Credential should be scoped to a valid date: '{amz_date[:8]}'.",
            )
        names = signed_headers.split(";")
        if "host" not in names or any(n not in headers for n in names):
            raise KsyunError(
                403, "SignatureDoesNotMatch", "SignedHeaders must include host and be present."
            )
        expected = sign(
            method=request.method,
            path=request.path,
            params=query,
            headers=headers,
            signed_headers=names,
            payload_hash=hashlib.sha256(request.body).hexdigest(),
            secret=self._secret,
            amz_date=amz_date,
            region=region,
        )
        if not hmac.compare_digest(expected.signature.encode(), signature.encode()):
            raise KsyunError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your Secret Access Key and signing method.",
            )
        # Checked after the signature: a stale request is reported as stale only when it
        # is otherwise genuine.
        skew = abs((datetime.now(UTC) - moment).total_seconds())
        if skew > self.clock_skew_s:
            raise KsyunError(
                400,
                "RequestExpired",
                f"Request has expired: X-Amz-Date {amz_date} is {skew:.0f}s from server time.",
            )
        if region not in self.regions:
            raise KsyunError(400, "InvalidRegion", f"The region '{region}' does not exist.")

    @staticmethod
    def _moment(stamp: str | None, date_header: str | None) -> datetime:
        """X-Amz-Date, else the Date header (KSyun falls back to it)."""
        if stamp:
            try:
                return datetime.strptime(stamp, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                raise KsyunError(
                    400, "IncompleteSignature", f"X-Amz-Date {stamp!r} is not YYYYMMDDTHHMMSSZ."
                ) from None
        if date_header:
            with contextlib.suppress(TypeError, ValueError):
                return email.utils.parsedate_to_datetime(date_header).astimezone(UTC)
        raise KsyunError(
            400,
            "IncompleteSignature",
            "The request must carry an X-Amz-Date (or Date) header or parameter.",
        )


def make_server(
    *,
    port: int = 0,
    images: int = 1000,
    seed: int = 1,
    access_key_id: str = DEFAULT_ACCESS_KEY_ID,
    secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
    system_share: float = 0.2,
) -> EmulatorServer:
    catalogue = KsyunCatalogue.generate(images, seed, system_share)
    app = KsyunApp(catalogue, access_key_id=access_key_id, secret_access_key=secret_access_key)
    return EmulatorServer(app, port)


def serve(
    *,
    port: int = DEFAULT_PORT,
    images: int = 1000,
    seed: int = 1,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> None:
    """Run the emulator in the foreground until interrupted (``inventory emulate ksyun``).

    Credentials left as None are the documented defaults."""
    access_key_id = access_key_id or DEFAULT_ACCESS_KEY_ID
    secret_access_key = secret_access_key or DEFAULT_SECRET_ACCESS_KEY
    server = make_server(
        port=port,
        images=images,
        seed=seed,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
    )
    print(
        f"KSyun emulator: {server.url}/ ({images} images, seed {seed}); "
        f"access key id {access_key_id}; regions {', '.join(sorted(DEFAULT_REGIONS))}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
