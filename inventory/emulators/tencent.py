"""Tencent Cloud CVM DescribeImages emulator: TC3 signatures, Response.Error, Offset/Limit.

It behaves as the real API documented in shared/providers/tencent-cvm.md:

- ``POST /`` with a JSON body (``Content-Type: application/json``, optionally with a
  charset) and the headers ``X-TC-Action: DescribeImages``, ``X-TC-Version: 2017-03-12``,
  ``X-TC-Region`` and ``X-TC-Timestamp``; GET requests are not served (the real API takes
  them, the product never sends them);
- every request must carry a TC3-HMAC-SHA256 ``Authorization`` header; it is recomputed with
  the shared signer over the signed-header list the header names (``content-type;host``
  and ``content-type;host;x-tc-action`` both pass) and compared in constant time. Like
  every Tencent error, a refusal is HTTP 200 with ``{"Response": {"Error": {"Code",
  "Message"}, "RequestId"}}``: ``AuthFailure.InvalidAuthorization`` (missing or malformed
  header), ``AuthFailure.SecretIdNotFound``, ``AuthFailure.SignatureExpire`` (timestamp more
  than ``clock_skew_s``, default 300 s, off), ``AuthFailure.SignatureFailure``;
- ``InvalidAction``, ``NoSuchVersion``, ``MissingParameter``, ``UnsupportedRegion`` for the
  common headers, ``UnknownParameter`` for a body parameter DescribeImages does not have;
- ``Offset`` (default 0) / ``Limit`` (default 20, above 100 refused with
  ``InvalidParameterValue``) with ``TotalCount`` on every page;
- ``ImageIds`` (malformed ids: ``InvalidImageId.Malformed``; unknown ids are simply not
  listed) or ``Filters`` — never both: ``InvalidParameter.InvalidParameterCoexistImageIdsFilters``.
  Filters ``image-id``, ``image-type``, ``image-name`` and ``platform`` (both fuzzy,
  case-insensitive), ``tag-key``, ``tag-value``, ``tag:<key>``; filters are ANDed, values
  ORed; more than 10 filters (``InvalidParameterValue.LimitExceeded``) or 5 values
  (``InvalidFilterValue.LimitExceeded``) are refused, an unknown name is ``InvalidFilter``.
  ``InstanceType`` is accepted and ignored. With neither, every image the caller can see is
  listed: Tencent's public images, the account's own and those shared with it;
- a deleted image leaves the listing (Tencent has no deleted state); deprecation is the
  boolean ``ImageDeprecated``;
- faults from :mod:`inventory.emulators.base` (checked before the signature, as a gateway
  would); throttling (``throttle``) is ``RequestLimitExceeded`` inside HTTP 200,
  ``internal`` is ``InternalError``, ``server_busy`` is ``ServiceUnavailable`` and
  ``malformed`` a ``Response`` cut off mid-way. With ``rate_limit_per_s`` set, more calls
  than that within one second (of the app's ``clock``) are answered
  ``RequestLimitExceeded.UinLimitExceeded``.

The catalogue is drawn from a seed with :func:`inventory.emulators.base.draw_traits`:
``public_share`` Tencent public images (``ImageCreator`` null, some ``ImageDeprecated``), and
of the rest ``shared_share`` shared by other accounts, the others the account's own, in
every documented ``ImageState``.

Default credentials (also for ``inventory emulate tencent``): SecretId
``AKIDEMULATORTENCENT00000000000000000``, SecretKey ``emulator-tencent-secret-key``; the
account uin is ``100000000001``; regions ap-guangzhou, ap-shanghai, ap-beijing,
ap-chengdu, ap-hongkong, ap-singapore.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from inventory.emulators.base import (
    COMMON_FAULT_KINDS,
    MUTATIONS,
    CatalogueStore,
    EmulatorServer,
    Faults,
    MutationSeeds,
    Request,
    Response,
    apply_faults,
    control_mutate,
    draw_traits,
    iso_z,
    random_ids,
)
from inventory.providers.tencent.auth import (
    ACTION,
    API_VERSION,
    SERVICE,
    parse_authorization,
    sign,
    utc_date,
)

DEFAULT_SECRET_ID = "AKIDEMULATORTENCENT00000000000000000"  # noqa: S105 - documented
DEFAULT_SECRET_KEY = "emulator-tencent-secret-key"  # noqa: S105 - a documented test key
DEFAULT_UIN = "100000000001"
DEFAULT_REGIONS = frozenset(
    {"ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-chengdu", "ap-hongkong", "ap-singapore"}
)
DEFAULT_PUBLIC_SHARE = 0.15
DEFAULT_SHARED_SHARE = 0.05
STATES = ("CREATING", "NORMAL", "CREATEFAILED", "SYNCING", "IMPORTING", "IMPORTFAILED")
IMAGE_TYPES = ("PRIVATE_IMAGE", "PUBLIC_IMAGE", "SHARED_IMAGE")
FILTER_NAMES = frozenset(
    {"image-id", "image-type", "image-name", "platform", "tag-key", "tag-value"}
)
PARAMETERS = frozenset({"ImageIds", "Filters", "Offset", "Limit", "InstanceType"})
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_FILTERS = 10
MAX_FILTER_VALUES = 5
MAX_IMAGE_IDS = 100
FAULT_KINDS = COMMON_FAULT_KINDS | {"internal", "server_busy"}
_IMAGE_ID = re.compile(r"^img-[a-z0-9]{8}$")
_MAX_VIEWS = 64  # cached filtered listings kept

#: State mix of the account's own images: mostly usable, a few in flight or failed.
_OWN_STATES = ("NORMAL", "CREATING", "SYNCING", "IMPORTING", "CREATEFAILED", "IMPORTFAILED")
_OWN_WEIGHTS = (88, 3, 3, 2, 2, 2)
#: Share of usable images flagged ImageDeprecated: Tencent retires old official releases.
_PUBLIC_DEPRECATED = 0.10
_OWN_DEPRECATED = 0.05
#: base.OsRelease.family -> Tencent's ``Platform`` spelling.
_PLATFORMS = {
    "centos": "CentOS",
    "ubuntu": "Ubuntu",
    "debian": "Debian",
    "rocky": "Rocky Linux",
    "almalinux": "AlmaLinux",
    "opensuse": "OpenSUSE",
    "fedora": "Fedora",
    "kylin": "Kylin",
    "euleros": "OpenEuler",
    "windows": "Windows",
}
#: Tencent writes ``arm`` for its 64-bit ARM images.
_ARCHITECTURES = {"x86_64": "x86_64", "arm64": "arm", "i386": "i386"}
_TAG_PAIRS = (
    ("env", "prod"),
    ("env", "staging"),
    ("env", "dev"),
    ("team", "platform"),
    ("team", "data"),
    ("app", "web"),
    ("cost-center", "finance"),
    ("owner", "ops"),
)
#: Accounts that share images with the emulated one.
_SHARERS = ("100000000207", "100000000318", "100000000429")

Filters = tuple[tuple[str, tuple[str, ...]], ...]


def created_time(seconds: int) -> str:
    """``CreatedTime`` as the API samples write it: ``2020-09-22T00:00:00+00:00``."""
    return iso_z(seconds)[:-1] + "+00:00"


def _make_images(
    rng: random.Random,
    count: int,
    uin: str,
    public_share: float,
    shared_share: float,
    taken: Collection[str] = (),
    created_at: int | None = None,
) -> list[dict[str, Any]]:
    """``count`` raw images in DescribeImages' shape, drawn from ``rng`` in bulk."""
    traits = draw_traits(rng, count, public_share, created_at=created_at)
    ids = random_ids(rng, "img-", count, taken=taken)
    snapshot_ids = random_ids(rng, "snap-", count)
    shared_rolls = [rng.random() for _ in range(count)]
    states = rng.choices(_OWN_STATES, _OWN_WEIGHTS, k=count)
    deprecated_rolls = [rng.random() for _ in range(count)]
    import_rolls = [rng.random() for _ in range(count)]
    sync_percents = rng.choices(range(1, 100), k=count)
    sharers = rng.choices(_SHARERS, k=count)
    tag_rolls = [rng.random() for _ in range(count)]
    first_tags = rng.choices(range(len(_TAG_PAIRS)), k=count)
    second_tags = rng.choices(range(len(_TAG_PAIRS)), k=count)

    images: list[dict[str, Any]] = []
    for i, t in enumerate(traits):
        arch = _ARCHITECTURES.get(t.architecture, t.architecture)
        bits = "32位" if arch == "i386" else "64位"
        if t.system:
            image_type, creator, state, source = "PUBLIC_IMAGE", None, "NORMAL", "OFFICIAL"
            deprecated = deprecated_rolls[i] < _PUBLIC_DEPRECATED
        else:
            shared = shared_rolls[i] < shared_share
            image_type = "SHARED_IMAGE" if shared else "PRIVATE_IMAGE"
            creator = sharers[i] if shared else uin
            state = "NORMAL" if shared else states[i]
            imported = state in ("IMPORTING", "IMPORTFAILED") or import_rolls[i] < 0.1
            source = "EXTERNAL_IMPORT" if imported else "CREATE_IMAGE"
            deprecated = state == "NORMAL" and deprecated_rolls[i] < _OWN_DEPRECATED
        tags: list[dict[str, str]] = []
        if not t.system and tag_rolls[i] < 0.3:
            key, value = _TAG_PAIRS[first_tags[i]]
            tags.append({"Key": key, "Value": value})
            other_key, other_value = _TAG_PAIRS[second_tags[i]]
            if tag_rolls[i] < 0.08 and other_key != key:
                tags.append({"Key": other_key, "Value": other_value})
        windows = t.os.platform == "windows"
        images.append(
            {
                "ImageId": ids[i],
                "OsName": f"{t.os.label} {bits}",
                "ImageType": image_type,
                "CreatedTime": created_time(t.created),
                # Official images are named after the OS, like "CentOS 7.6 64位".
                "ImageName": f"{t.name} {bits}" if t.system else t.name,
                "ImageDescription": t.description or "",
                "ImageSize": t.size_gb,
                "Architecture": arch,
                "ImageState": state,
                "Platform": _PLATFORMS.get(t.os.family, t.os.family),
                "ImageCreator": creator,
                "ImageSource": source,
                "SyncPercent": sync_percents[i] if state == "SYNCING" else None,
                "IsSupportCloudinit": not windows,
                "SnapshotSet": (
                    [
                        {
                            "SnapshotId": snapshot_ids[i],
                            "DiskUsage": "SYSTEM_DISK",
                            "DiskSize": t.size_gb,
                        }
                    ]
                    if source == "CREATE_IMAGE"
                    else []
                ),
                "Tags": tags,
                "LicenseType": "TencentCloud",
                "ImageFamily": "",
                "ImageDeprecated": deprecated,
            }
        )
    return images


def generate_images(
    count: int,
    seed: int,
    uin: str = DEFAULT_UIN,
    public_share: float = DEFAULT_PUBLIC_SHARE,
    shared_share: float = DEFAULT_SHARED_SHARE,
) -> list[dict[str, Any]]:
    """A deterministic catalogue: the same arguments give the same images, in order.

    ``public_share`` of them are Tencent's public images; of the rest, ``shared_share`` are
    shared by other accounts and the others are the account's own (``ImageCreator`` =
    ``uin``)."""
    if count < 0:
        raise ValueError(f"image count must be 0 or more, not {count}")
    return _make_images(random.Random(seed), count, uin, public_share, shared_share)


def _tag_match(image: dict[str, Any], key: str | None, values: tuple[str, ...], by: str) -> bool:
    for tag in image.get("Tags") or []:
        if key is not None and tag.get("Key") != key:
            continue
        if tag.get(by) in values:
            return True
    return False


def _matches(image: dict[str, Any], name: str, values: tuple[str, ...]) -> bool:
    if name == "image-id":
        return bool(image["ImageId"] in values)
    if name == "image-type":
        return bool(image.get("ImageType") in values)
    if name in ("image-name", "platform"):
        # Both are documented as fuzzy matches.
        field = str(image.get("ImageName" if name == "image-name" else "Platform") or "").lower()
        return any(v.lower() in field for v in values)
    if name == "tag-key":
        return _tag_match(image, None, values, "Key")
    if name == "tag-value":
        return _tag_match(image, None, values, "Value")
    return _tag_match(image, name[len("tag:") :], values, "Value")


def _renamed(name: str, rng: random.Random) -> str:
    """``name`` with a new ``-vN`` suffix (replacing an earlier one), never the same name."""
    stem, dash_v, number = name.rpartition("-v")
    if not (dash_v and number.isdigit()):
        stem, number = name, ""
    return f"{stem}-v{rng.choice([n for n in range(2, 10) if str(n) != number])}"


class TencentCatalogue(CatalogueStore):
    """The emulated image catalogue one account sees: thread-safe, mutable between listings.

    Images are never changed in place: an edit stores a new dict, so a listing being
    serialised in another thread shows each image wholly before or wholly after a change.
    """

    id_key = "ImageId"

    def __init__(self, images: Iterable[dict[str, Any]], uin: str = DEFAULT_UIN) -> None:
        self.uin = uin
        super().__init__(images)

    @classmethod
    def generate(
        cls,
        count: int,
        seed: int,
        uin: str = DEFAULT_UIN,
        public_share: float = DEFAULT_PUBLIC_SHARE,
        shared_share: float = DEFAULT_SHARED_SHARE,
    ) -> TencentCatalogue:
        return cls(generate_images(count, seed, uin, public_share, shared_share), uin)

    def owned(self) -> list[str]:
        """The ids of the account's own images (the ones :meth:`mutate` changes)."""
        with self._lock:
            return [
                iid
                for iid, i in self._images.items()
                if i["ImageType"] == "PRIVATE_IMAGE" and i.get("ImageCreator") == self.uin
            ]

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
        """Change the account's own images as Tencent would between two syncs; returns the
        ids affected per kind.

        Each image changes at most once; fewer change when fewer qualify. In Tencent's
        vocabulary: ``deprecate`` sets ``ImageDeprecated`` on a NORMAL image (the state
        stays NORMAL); ``delete`` and ``remove`` both take images out of the listing, since
        Tencent lists no deleted images; ``cease`` has no Tencent equivalent and always
        returns an empty list; ``rename`` changes ``ImageName`` and ``ImageDescription``;
        ``add`` creates NORMAL private images. Deterministic for a given seed, state and
        ``now`` (the creation time of added images; default the clock).
        """
        counts = {
            "deprecate": deprecate,
            "cease": cease,
            "delete": delete,
            "remove": remove,
            "add": add,
            "rename": rename,
        }
        for kind, n in counts.items():
            # Checked before anything changes, so a bad request leaves the catalogue alone.
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"mutation count {kind} must be 0 or more, not {n!r}")
        rng = random.Random(seed)
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        out: dict[str, list[str]] = {kind: [] for kind in MUTATIONS}
        with self._lock:
            images = self._images
            owned = self.owned()
            touched: set[str] = set()

            def pick(n: int, wanted: Callable[[dict[str, Any]], bool]) -> list[str]:
                if n == 0:
                    return []
                pool = [iid for iid in owned if iid not in touched and wanted(images[iid])]
                chosen = rng.sample(pool, min(n, len(pool)))
                touched.update(chosen)
                return chosen

            usable = pick(
                deprecate, lambda i: i["ImageState"] == "NORMAL" and not i["ImageDeprecated"]
            )
            for iid in usable:
                images[iid] = {**images[iid], "ImageDeprecated": True}
                out["deprecate"].append(iid)
            for kind, n in (("delete", delete), ("remove", remove)):
                for iid in pick(n, lambda _: True):
                    self._removed[iid] = images.pop(iid)
                    out[kind].append(iid)
            for iid in pick(rename, lambda _: True):
                image = images[iid]
                images[iid] = {
                    **image,
                    "ImageName": _renamed(image["ImageName"] or "image", rng),
                    "ImageDescription": f"rebuilt {moment:%Y-%m-%d}",
                }
                out["rename"].append(iid)
            if add:
                taken = images.keys() | self._removed.keys()
                created = int(moment.timestamp())
                for image in _make_images(rng, add, self.uin, 0.0, 0.0, taken, created):
                    image.update(
                        ImageState="NORMAL",
                        ImageSource="CREATE_IMAGE",
                        ImageDeprecated=False,
                        SyncPercent=None,
                    )
                    images[image["ImageId"]] = image
                    out["add"].append(image["ImageId"])
            self._changed()
        return out

    def listing(
        self, filters: Filters = (), image_ids: tuple[str, ...] | None = None
    ) -> Sequence[dict[str, Any]]:
        """The images matching ``Filters`` (or ``ImageIds``), in catalogue order; cached
        until a change, so paging costs one scan, not one a page. Do not modify."""
        key = (filters, image_ids)
        with self._lock:
            view = self._views.get(key)
            if view is None:
                wanted = set(image_ids) if image_ids is not None else None
                view = tuple(
                    i
                    for i in self._images.values()
                    if (wanted is None or i["ImageId"] in wanted)
                    and all(_matches(i, name, values) for name, values in filters)
                )
                if len(self._views) >= _MAX_VIEWS:
                    del self._views[next(iter(self._views))]  # the oldest
                self._views[key] = view
            return view

    def shrink(self, filters: Filters = (), image_ids: tuple[str, ...] | None = None) -> None:
        """Remove the first image of a listing (shifts the offsets of every later item)."""
        with self._lock:
            view = self.listing(filters, image_ids)
            if view:
                self.remove(view[0]["ImageId"])


class TencentError(Exception):
    """A refusal the real API answers with HTTP 200 and ``Response.Error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error(code: str, message: str) -> Response:
    """Tencent's error envelope: HTTP 200, the error inside ``Response``."""
    return Response.json(
        200,
        {
            "Response": {
                "Error": {"Code": code, "Message": message},
                "RequestId": str(uuid.uuid4()),
            }
        },
    )


#: Tencent's own faulty answers: errors travel in the body of an HTTP 200.
_FAULT_ANSWERS: dict[str, Callable[[], Response]] = {
    "throttle": lambda: _error(
        "RequestLimitExceeded", "Your current request times equals to `41` in a second"
    ),
    "internal": lambda: _error("InternalError", "An internal error has occurred."),
    "server_busy": lambda: _error("ServiceUnavailable", "Service is unavailable now."),
    # A body cut off mid-way, as when a proxy drops the upstream connection.
    "malformed": lambda: Response(200, b'{"Response":{"TotalCount":3,"ImageSet":[{"ImageId":"img-'),
}


class TencentApp:
    """The request handling of the emulator; see the module docstring for the behaviour."""

    fault_kinds = FAULT_KINDS

    def __init__(
        self,
        catalogue: TencentCatalogue,
        *,
        secret_id: str = DEFAULT_SECRET_ID,
        secret_key: str = DEFAULT_SECRET_KEY,
        regions: Collection[str] = DEFAULT_REGIONS,
        clock_skew_s: float = 300.0,
        faults: Faults | None = None,
        rate_limit_per_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalogue = catalogue
        self.secret_id = secret_id
        self._secret = secret_key
        self.regions = frozenset(regions)
        self.clock_skew_s = clock_skew_s
        self.faults = faults if faults is not None else Faults()
        self.rate_limit_per_s = rate_limit_per_s
        self._clock = clock
        self._calls: deque[float] = deque()
        self._calls_lock = threading.Lock()
        self._seeds = MutationSeeds()

    def __repr__(self) -> str:
        return f"TencentApp(secret_id={self.secret_id!r}, images={len(self.catalogue)})"

    # -- App protocol ----------------------------------------------------------------------

    def mutate(self, **counts: Any) -> dict[str, list[str]]:
        """The control API's mutation (see :func:`~inventory.emulators.base.control_mutate`)."""
        return control_mutate(self.catalogue, counts, self._seeds)

    def state(self) -> dict[str, Any]:
        return {
            "provider": "tencent",
            "images": len(self.catalogue),
            "owned": len(self.catalogue.owned()),
            "uin": self.catalogue.uin,
            "regions": sorted(self.regions),
        }

    def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except TencentError as err:
            return _error(err.code, err.message)

    # -- internals -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        if request.path != "/":
            return Response.text(
                404, "<html><body><h1>404 Not Found</h1></body></html>", "text/html"
            )
        if request.method != "POST":
            raise TencentError(
                "UnsupportedProtocol", "this emulator serves POST with a JSON body only"
            )
        body = self._body(request)
        # Faults come first: a gateway error or a throttle does not wait for the signature.
        page = self._page_of(body)
        fault, shrink = apply_faults(self.faults, page, _FAULT_ANSWERS)
        if fault is not None:
            return fault
        self._authenticate(request)
        self._check_common(request)
        self._throttle()
        if body is None:
            raise TencentError("InvalidParameter", "the request body is not a JSON object")
        offset, limit = self._paging(body)
        filters, image_ids = self._selection(body)
        view = self.catalogue.listing(filters, image_ids)
        response = Response.json(
            200,
            {
                "Response": {
                    "TotalCount": len(view),
                    "ImageSet": list(view[offset : offset + limit]),
                    "RequestId": str(uuid.uuid4()),
                }
            },
        )
        if shrink:
            self.catalogue.shrink(filters, image_ids)
        return response

    @staticmethod
    def _body(request: Request) -> dict[str, Any] | None:
        try:
            parsed = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        return parsed if isinstance(parsed, dict) else None

    @staticmethod
    def _page_of(body: dict[str, Any] | None) -> int:
        """The 1-based page a request asks for, for fault rules (1 when unreadable)."""
        if body is None:
            return 1
        offset, limit = body.get("Offset", 0), body.get("Limit", DEFAULT_LIMIT)
        if isinstance(offset, int) and isinstance(limit, int) and offset >= 0 and limit >= 1:
            return offset // limit + 1
        return 1

    def _authenticate(self, request: Request) -> None:
        headers = request.headers
        header = headers.get("authorization")
        if not header:
            raise TencentError(
                "AuthFailure.InvalidAuthorization", "Authorization header is missing."
            )
        auth = parse_authorization(header)
        if auth is None:
            raise TencentError(
                "AuthFailure.InvalidAuthorization",
                "Authorization is not a valid TC3-HMAC-SHA256 header.",
            )
        if auth.service != SERVICE or auth.terminator != "tc3_request":
            raise TencentError(
                "AuthFailure.InvalidAuthorization",
                f"Credential scope must end with /{SERVICE}/tc3_request.",
            )
        stamp_text = headers.get("x-tc-timestamp")
        if not stamp_text:
            raise TencentError(
                "MissingParameter", "The request is missing a required parameter `Timestamp`."
            )
        try:
            stamp = int(stamp_text)
        except ValueError:
            raise TencentError(
                "InvalidParameter", f"The parameter `Timestamp` is not an integer: {stamp_text}."
            ) from None
        if auth.secret_id != self.secret_id:
            raise TencentError(
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found, please ensure that your SecretId is correct.",
            )
        now = int(self._clock())
        if abs(now - stamp) > self.clock_skew_s:
            raise TencentError(
                "AuthFailure.SignatureExpire",
                f"Signature expired. Timestamp: {stamp}; server time: {now}; "
                f"allowed skew {self.clock_skew_s:g} s.",
            )
        signed = set(auth.signed_headers)
        missing = [h for h in auth.signed_headers if h not in headers]
        if not {"content-type", "host"} <= signed or missing:
            raise TencentError(
                "AuthFailure.InvalidAuthorization",
                "SignedHeaders must name content-type and host, and only headers present.",
            )
        expected = sign(
            secret_key=self._secret,
            method=request.method,
            headers=headers,
            signed_headers=auth.signed_headers,
            body=request.body,
            timestamp=stamp,
            query=request.raw_query,
        )
        # The scope date must be the UTC date of the timestamp (a signer using local time
        # fails around midnight); the real API refuses that as a signature failure too.
        if auth.date != utc_date(stamp) or not hmac.compare_digest(
            expected.signature.encode(), auth.signature.encode()
        ):
            raise TencentError(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. "
                "Please check your signature is correct.",
            )

    def _check_common(self, request: Request) -> None:
        headers = request.headers
        for header, name in (
            ("x-tc-action", "Action"),
            ("x-tc-version", "Version"),
            ("x-tc-region", "Region"),
        ):
            if not headers.get(header):
                raise TencentError(
                    "MissingParameter", f"The request is missing a required parameter `{name}`."
                )
        if headers["x-tc-action"] != ACTION:
            raise TencentError(
                "InvalidAction", f"The action `{headers['x-tc-action']}` is not supported."
            )
        if headers["x-tc-version"] != API_VERSION:
            raise TencentError(
                "NoSuchVersion", f"The version `{headers['x-tc-version']}` does not exist."
            )
        if headers["x-tc-region"] not in self.regions:
            raise TencentError(
                "UnsupportedRegion", f"The region `{headers['x-tc-region']}` is not supported."
            )
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise TencentError(
                "UnsupportedProtocol", "POST requests must send Content-Type application/json."
            )

    def _throttle(self) -> None:
        """The per-account request rate limit, when one is set: a sliding one-second window."""
        if self.rate_limit_per_s is None:
            return
        now = self._clock()
        with self._calls_lock:
            while self._calls and now - self._calls[0] >= 1.0:
                self._calls.popleft()
            if len(self._calls) >= self.rate_limit_per_s:
                raise TencentError(
                    "RequestLimitExceeded.UinLimitExceeded",
                    f"Your current request times equals to `{len(self._calls) + 1}` in a "
                    f"second, which exceeds the frequency limit `{self.rate_limit_per_s:g}`.",
                )
            self._calls.append(now)

    @staticmethod
    def _paging(body: dict[str, Any]) -> tuple[int, int]:
        unknown = sorted(set(body) - PARAMETERS)
        if unknown:
            raise TencentError(
                "UnknownParameter", f"The parameter `{unknown[0]}` is not recognized."
            )
        offset = body.get("Offset", 0)
        limit = body.get("Limit", DEFAULT_LIMIT)
        for name, value in (("Offset", offset), ("Limit", limit)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TencentError(
                    "InvalidParameter", f"The parameter `{name}` must be an integer."
                )
        if offset < 0:
            raise TencentError("InvalidParameterValue", "The value of `Offset` must be >= 0.")
        if not 1 <= limit <= MAX_LIMIT:
            raise TencentError(
                "InvalidParameterValue",
                f"The value of `Limit` must be between 1 and {MAX_LIMIT}, got {limit}.",
            )
        return offset, limit

    @staticmethod
    def _selection(body: dict[str, Any]) -> tuple[Filters, tuple[str, ...] | None]:
        if "ImageIds" in body and "Filters" in body:
            raise TencentError(
                "InvalidParameter.InvalidParameterCoexistImageIdsFilters",
                "ImageIds and Filters cannot be specified at the same time.",
            )
        instance_type = body.get("InstanceType")
        if instance_type is not None and not isinstance(instance_type, str):
            raise TencentError("InvalidInstanceType.Malformed", "InstanceType must be a string.")
        if "ImageIds" in body:
            ids = body["ImageIds"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise TencentError("InvalidParameter", "`ImageIds` must be an array of strings.")
            if len(ids) > MAX_IMAGE_IDS:
                raise TencentError(
                    "InvalidParameterValue.LimitExceeded",
                    f"At most {MAX_IMAGE_IDS} ImageIds per request.",
                )
            bad = [i for i in ids if not _IMAGE_ID.match(i)]
            if bad:
                raise TencentError(
                    "InvalidImageId.Malformed", f"The image id `{bad[0]}` is malformed."
                )
            return (), tuple(ids)
        raw_filters = body.get("Filters", [])
        if not isinstance(raw_filters, list):
            raise TencentError("InvalidParameter", "`Filters` must be an array of Filter.")
        if len(raw_filters) > MAX_FILTERS:
            raise TencentError(
                "InvalidParameterValue.LimitExceeded", f"At most {MAX_FILTERS} Filters allowed."
            )
        filters: list[tuple[str, tuple[str, ...]]] = []
        for item in raw_filters:
            name = item.get("Name") if isinstance(item, dict) else None
            values = item.get("Values") if isinstance(item, dict) else None
            if not isinstance(name, str) or not (
                name in FILTER_NAMES or (name.startswith("tag:") and len(name) > 4)
            ):
                raise TencentError("InvalidFilter", f"The filter `{name}` is not supported.")
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise TencentError(
                    "InvalidParameter", f"Filter `{name}`: Values must be an array of strings."
                )
            if len(values) > MAX_FILTER_VALUES:
                raise TencentError(
                    "InvalidFilterValue.LimitExceeded",
                    f"Filter `{name}` takes at most {MAX_FILTER_VALUES} values.",
                )
            if name == "image-type":
                bad = [v for v in values if v not in IMAGE_TYPES]
                if bad:
                    raise TencentError(
                        "InvalidParameterValue", f"Invalid image-type value `{bad[0]}`."
                    )
            filters.append((name, tuple(values)))
        return tuple(sorted(filters)), None


def make_server(
    *,
    port: int = 0,
    images: int = 1000,
    seed: int = 1,
    secret_id: str = DEFAULT_SECRET_ID,
    secret_key: str = DEFAULT_SECRET_KEY,
    uin: str = DEFAULT_UIN,
    public_share: float = 0.15,
    shared_share: float = 0.05,
    rate_limit_per_s: float | None = None,
) -> EmulatorServer:
    catalogue = TencentCatalogue.generate(images, seed, uin, public_share, shared_share)
    app = TencentApp(
        catalogue, secret_id=secret_id, secret_key=secret_key, rate_limit_per_s=rate_limit_per_s
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
    """Run the emulator in the foreground until interrupted (``inventory emulate tencent``).

    ``access_key_id`` / ``secret_access_key`` are the SecretId / SecretKey to accept; None
    means the documented defaults."""
    secret_id = access_key_id or DEFAULT_SECRET_ID
    secret_key = secret_access_key or DEFAULT_SECRET_KEY
    server = make_server(
        port=port, images=images, seed=seed, secret_id=secret_id, secret_key=secret_key
    )
    print(
        f"Tencent emulator: {server.url}/ ({images} images, seed {seed}); "
        f"SecretId {secret_id}; regions {', '.join(sorted(DEFAULT_REGIONS))}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
