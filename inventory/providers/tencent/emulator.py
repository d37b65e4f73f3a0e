"""Tencent Cloud CVM DescribeImages emulator dialect: TC3 signatures, Response.Error, Offset/Limit.

What it serves and accepts is in docs/providers/tencent.md ("Emulator"); the request
pipeline, faults and control API are the engine's (:mod:`inventory.emulation`).
"""

from __future__ import annotations

import hmac
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from inventory.emulation import Call, Catalogue, EmulatorApp, Refusal, Request, Response
from inventory.emulation.sources import EmulatedSource
from inventory.emulation.traits import draw_traits, iso_z, random_ids, renamed
from inventory.providers.tencent import auth as tc3

DEFAULT_SECRET_ID = "AKIDEMULATORTENCENT00000000000000000"  # noqa: S105 - documented
DEFAULT_SECRET_KEY = "emulator-tencent-secret-key"  # noqa: S105 - a documented test key
DEFAULT_UIN = "100000000001"
DEFAULT_REGIONS = frozenset(
    {"ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-chengdu", "ap-hongkong", "ap-singapore"}
)
DEFAULT_PUBLIC_SHARE = 0.15
DEFAULT_SHARED_SHARE = 0.05
IMAGE_TYPES = ("PRIVATE_IMAGE", "PUBLIC_IMAGE", "SHARED_IMAGE")
FILTER_NAMES = ("image-id", "image-type", "image-name", "platform", "tag-key", "tag-value")
PARAMETERS = frozenset({"ImageIds", "Filters", "Offset", "Limit", "InstanceType"})
MAX_LIMIT, DEFAULT_LIMIT = 100, 20
MAX_FILTERS, MAX_FILTER_VALUES, MAX_IMAGE_IDS = 10, 5, 100
_IMAGE_ID = re.compile(r"^img-[a-z0-9]{8}$")

#: State mix of the account's own images: mostly usable, a few in flight or failed.
_OWN_STATES = ("NORMAL", "CREATING", "SYNCING", "IMPORTING", "CREATEFAILED", "IMPORTFAILED")
_OWN_WEIGHTS = (88, 3, 3, 2, 2, 2)
#: Share of usable images flagged ImageDeprecated: Tencent retires old official releases.
_PUBLIC_DEPRECATED, _OWN_DEPRECATED = 0.10, 0.05
#: traits.OsRelease.family -> Tencent's ``Platform`` spelling.
_PLATFORMS = {"opensuse": "OpenSUSE", "euleros": "OpenEuler", "rocky": "Rocky Linux"}
#: Tencent writes ``arm`` for its 64-bit ARM images.
_ARCHITECTURES = {"x86_64": "x86_64", "arm64": "arm", "i386": "i386"}
_TAG_PAIRS = (
    *(("env", env) for env in ("prod", "staging", "dev")),
    *(("team", team) for team in ("platform", "data")),
    *(("app", "web"), ("cost-center", "finance"), ("owner", "ops")),
)
#: The throttling fault's message (the documented per-account limit is 40 requests/s).
THROTTLED = "Your current request times equals to `41` in a second"
#: Accounts that share images with the emulated one.
_SHARERS = ("100000000207", "100000000318", "100000000429")

#: Every refusal is HTTP 200 with ``Response.Error``; one a line: key, Code, Message.
_REFUSALS = """\
protocol UnsupportedProtocol this emulator serves POST with a JSON body only
no_auth AuthFailure.InvalidAuthorization Authorization header is missing.
bad_auth AuthFailure.InvalidAuthorization Authorization is not a valid TC3-HMAC-SHA256 header.
scope AuthFailure.InvalidAuthorization Credential scope must end with /{}/tc3_request.
missing MissingParameter The request is missing a required parameter `{}`.
stamp InvalidParameter The parameter `Timestamp` is not an integer: {}.
secret_id AuthFailure.SecretIdNotFound The SecretId is not found, please ensure that your \
SecretId is correct.
expired AuthFailure.SignatureExpire Signature expired. Timestamp: {}; server time: {}; \
allowed skew {:g} s.
signed AuthFailure.InvalidAuthorization SignedHeaders must name content-type and host, and \
only headers present.
signature AuthFailure.SignatureFailure The provided credentials could not be validated. \
Please check your signature is correct.
action InvalidAction The action `{}` is not supported.
version NoSuchVersion The version `{}` does not exist.
region UnsupportedRegion The region `{}` is not supported.
json UnsupportedProtocol POST requests must send Content-Type application/json.
rate RequestLimitExceeded.UinLimitExceeded Your current request times equals to `{}` in a \
second, which exceeds the frequency limit `{:g}`.
body InvalidParameter the request body is not a JSON object
unknown UnknownParameter The parameter `{}` is not recognized.
integer InvalidParameter The parameter `{}` must be an integer.
offset InvalidParameterValue The value of `Offset` must be >= 0.
limit InvalidParameterValue The value of `Limit` must be between 1 and {}, got {}.
coexist InvalidParameter.InvalidParameterCoexistImageIdsFilters ImageIds and Filters cannot \
be specified at the same time.
instance InvalidInstanceType.Malformed InstanceType must be a string.
ids InvalidParameter `ImageIds` must be an array of strings.
many_ids InvalidParameterValue.LimitExceeded At most {} ImageIds per request.
bad_id InvalidImageId.Malformed The image id `{}` is malformed.
filters InvalidParameter `Filters` must be an array of Filter.
many_filters InvalidParameterValue.LimitExceeded At most {} Filters allowed.
filter InvalidFilter The filter `{}` is not supported.
values InvalidParameter Filter `{}`: Values must be an array of strings.
many_values InvalidFilterValue.LimitExceeded Filter `{}` takes at most {} values.
image_type InvalidParameterValue Invalid image-type value `{}`.
"""
#: key -> (Code, Message template).
ERR = {key: (code, text) for key, code, text in (r.split(" ", 2) for r in _REFUSALS.splitlines())}

Filters = tuple[tuple[str, tuple[str, ...]], ...]


def generate_images(
    count: int,
    seed: int | random.Random,
    uin: str = DEFAULT_UIN,
    public_share: float = DEFAULT_PUBLIC_SHARE,
    shared_share: float = DEFAULT_SHARED_SHARE,
    taken: Collection[str] = (),
    created_at: int | None = None,
) -> list[dict[str, Any]]:
    """``count`` images in DescribeImages' shape, deterministic for ``seed`` (or drawn from
    a Random): ``public_share`` Tencent public images; of the rest, ``shared_share`` shared
    by other accounts, the others the account's own (``uin``); ids not in ``taken``."""
    if count < 0:
        raise ValueError(f"image count must be 0 or more, not {count}")
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
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
        snap = {"SnapshotId": snapshot_ids[i], "DiskUsage": "SYSTEM_DISK", "DiskSize": t.size_gb}
        images.append(
            {
                "ImageId": ids[i],
                "OsName": f"{t.os.label} {bits}",
                "ImageType": image_type,
                "CreatedTime": iso_z(t.created)[:-1] + "+00:00",  # as in the API's samples
                # Official images are named after the OS, like "CentOS 7.6 64位".
                "ImageName": f"{t.name} {bits}" if t.system else t.name,
                "ImageDescription": t.description or "",
                "ImageSize": t.size_gb,
                "Architecture": arch,
                "ImageState": state,
                "Platform": _PLATFORMS.get(t.os.family, t.os.distro.split()[0]),
                "ImageCreator": creator,
                "ImageSource": source,
                "SyncPercent": sync_percents[i] if state == "SYNCING" else None,
                "IsSupportCloudinit": t.os.platform != "windows",
                "SnapshotSet": [snap] if source == "CREATE_IMAGE" else [],
                "Tags": tags,
                "LicenseType": "TencentCloud",
                "ImageFamily": "",
                "ImageDeprecated": deprecated,
            }
        )
    return images


def _matches(image: dict[str, Any], filters: Filters, wanted: Collection[str] | None) -> bool:
    """Whether ``image`` is one of ``wanted`` (the ImageIds) and passes every filter."""
    if wanted is not None and image["ImageId"] not in wanted:
        return False
    return all(_passes(image, name, values) for name, values in filters)


def _passes(image: dict[str, Any], name: str, values: tuple[str, ...]) -> bool:
    if name in ("image-id", "image-type"):
        return image.get("ImageId" if name == "image-id" else "ImageType") in values
    if name in ("image-name", "platform"):  # both documented as fuzzy matches
        field = str(image.get("ImageName" if name == "image-name" else "Platform") or "").lower()
        return any(v.lower() in field for v in values)
    key = None if name in ("tag-key", "tag-value") else name[len("tag:") :]
    by = "Key" if name == "tag-key" else "Value"
    tags = image.get("Tags") or []
    return any((key is None or t.get("Key") == key) and t.get(by) in values for t in tags)


class TencentCatalogue(Catalogue):
    """One account's view: public, shared and own images. Mutations change only its own
    private images; a deleted image leaves the listing (Tencent has no deleted state),
    deprecation sets ``ImageDeprecated`` on a NORMAL image, and nothing is ever ceased."""

    id_key = "ImageId"
    transitions = {
        "deprecate": (
            lambda i: i["ImageState"] == "NORMAL" and not i["ImageDeprecated"],
            lambda _i, _now: {"ImageDeprecated": True},
        ),
        "delete": (lambda _i: True, lambda _i, _now: None),
    }

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

    def owned(self, image: dict[str, Any]) -> bool:
        return image["ImageType"] == "PRIVATE_IMAGE" and image.get("ImageCreator") == self.uin

    def renamed(self, image: dict[str, Any], rng: random.Random, now: datetime) -> dict[str, Any]:
        name = renamed(image["ImageName"] or "image", rng)
        return {"ImageName": name, "ImageDescription": f"rebuilt {now:%Y-%m-%d}"}

    def new_images(
        self, rng: random.Random, count: int, now: datetime, taken: Iterable[str]
    ) -> list[dict[str, Any]]:
        images = generate_images(count, rng, self.uin, 0.0, 0.0, set(taken), int(now.timestamp()))
        usable = {"ImageState": "NORMAL", "ImageSource": "CREATE_IMAGE", "SyncPercent": None}
        return [{**image, **usable, "ImageDeprecated": False} for image in images]

    def listing(
        self, filters: Filters = (), image_ids: tuple[str, ...] | None = None
    ) -> Sequence[dict[str, Any]]:
        """The images matching ``Filters`` (or ``ImageIds``), in catalogue order (cached;
        do not modify)."""
        wanted = set(image_ids) if image_ids is not None else None
        return self.view(
            (filters, image_ids),
            lambda images: tuple(i for i in images if _matches(i, filters, wanted)),
        )


class TencentApp(EmulatorApp):
    """DescribeImages as Tencent answers it: every error is HTTP 200 with ``Response.Error``."""

    provider = "tencent"
    catalogue_class = TencentCatalogue
    default_key = {"secret_id": DEFAULT_SECRET_ID, "secret_key": DEFAULT_SECRET_KEY}
    clock_skew_s = 300.0
    answers = {
        "throttle": (200, "RequestLimitExceeded", THROTTLED),
        "error": (200, "InternalError", "An internal error has occurred."),
        "internal": (200, "InternalError", "An internal error has occurred."),
        "server_busy": (200, "ServiceUnavailable", "Service is unavailable now."),
    }

    def __init__(
        self,
        catalogue: TencentCatalogue,
        *,
        regions: Collection[str] = DEFAULT_REGIONS,
        rate_limit_per_s: float | None = None,
        clock: Callable[[], float] = time.time,
        **engine: Any,  # faults
    ) -> None:
        super().__init__(catalogue, **engine)
        self.catalogue: TencentCatalogue = catalogue
        self.regions = frozenset(regions)
        self._known = {"action": {tc3.ACTION}, "version": {tc3.API_VERSION}, "region": self.regions}
        self.rate_limit_per_s = rate_limit_per_s
        self._clock = clock
        self._calls: deque[float] = deque()
        self._calls_lock = threading.Lock()

    def banner(self) -> str:
        return f"SecretId {self.key_id}; regions {', '.join(sorted(self.regions))}"

    def state(self) -> dict[str, Any]:
        private = self.catalogue.listing((("image-type", ("PRIVATE_IMAGE",)),))
        owned = sum(1 for image in private if self.catalogue.owned(image))
        regions = sorted(self.regions)
        return {**super().state(), "owned": owned, "uin": self.catalogue.uin, "regions": regions}

    def envelope(self, status: int, code: Any, message: str) -> Response:
        error = {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}
        return Response.json(status, {"Response": error})

    def _no(self, key: str, *args: Any) -> Refusal:
        code, message = ERR[key]
        return self.refuse(200, code, message.format(*args))

    def _need(self, ok: object, key: str, *args: Any) -> None:
        if not ok:
            raise self._no(key, *args)

    def read(self, request: Request) -> Call:
        if request.path != "/":
            html = "<html><body><h1>404 Not Found</h1></body></html>"
            raise Refusal(Response.text(404, html, "text/html"))
        self._need(request.method == "POST", "protocol")
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            body = None
        body = body if isinstance(body, dict) else None
        # Leniently, for the fault rules (page 1 when unreadable); strictly in select().
        offset, limit = (body or {}).get("Offset", 0), (body or {}).get("Limit", DEFAULT_LIMIT)
        if isinstance(offset, int) and isinstance(limit, int) and offset >= 0 and limit >= 1:
            return Call(offset=offset, limit=limit, extra=body)
        return Call(extra=body)

    def authenticate(self, request: Request, call: Call) -> None:
        """The signature, then the common headers, then the rate limit."""
        headers = request.headers
        self._need(headers.get("authorization"), "no_auth")
        auth = tc3.parse_authorization(headers["authorization"])
        if auth is None:
            raise self._no("bad_auth")
        ok_scope = auth.service == tc3.SERVICE and auth.terminator == "tc3_request"
        self._need(ok_scope, "scope", tc3.SERVICE)
        stamp_text = headers.get("x-tc-timestamp", "")
        self._need(stamp_text, "missing", "Timestamp")
        try:
            stamp = int(stamp_text)
        except ValueError:
            raise self._no("stamp", stamp_text) from None
        self._need(auth.secret_id == self.key_id, "secret_id")
        now = int(self._clock())
        self._need(abs(now - stamp) <= self.clock_skew_s, "expired", stamp, now, self.clock_skew_s)
        signed = auth.signed_headers
        present = all(h in headers for h in signed)
        self._need({"content-type", "host"} <= set(signed) and present, "signed")
        expected = tc3.sign(
            secret_key=self._secret,
            method=request.method,
            headers=headers,
            signed_headers=signed,
            body=request.body,
            timestamp=stamp,
            query=request.raw_query,
        ).signature
        # The scope date must be the UTC date of the timestamp (a signer using local time
        # fails around midnight); the real API refuses that as a signature failure too.
        valid = hmac.compare_digest(expected.encode(), auth.signature.encode())
        self._need(auth.date == tc3.utc_date(stamp) and valid, "signature")
        for name in ("Action", "Version", "Region"):
            self._need(headers.get(f"x-tc-{name.lower()}"), "missing", name)
        for name, known in self._known.items():
            self._need(headers[f"x-tc-{name}"] in known, name, headers[f"x-tc-{name}"])
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        self._need(media == "application/json", "json")
        if self.rate_limit_per_s is not None:  # a sliding one-second window per account
            moment = self._clock()
            with self._calls_lock:
                while self._calls and moment - self._calls[0] >= 1.0:
                    self._calls.popleft()
                calls = len(self._calls)
                self._need(calls < self.rate_limit_per_s, "rate", calls + 1, self.rate_limit_per_s)
                self._calls.append(moment)

    def select(self, request: Request, call: Call) -> Call:
        body = call.extra
        self._need(body is not None, "body")
        unknown = sorted(set(body) - PARAMETERS)
        self._need(not unknown, "unknown", *unknown[:1])
        offset, limit = body.get("Offset", 0), body.get("Limit", DEFAULT_LIMIT)
        for name, value in (("Offset", offset), ("Limit", limit)):
            self._need(isinstance(value, int) and not isinstance(value, bool), "integer", name)
        self._need(offset >= 0, "offset")
        self._need(1 <= limit <= MAX_LIMIT, "limit", MAX_LIMIT, limit)
        return Call(offset=offset, limit=limit, selection=self._selection(body))

    def _selection(self, body: dict[str, Any]) -> tuple[Filters, tuple[str, ...] | None]:
        self._need("ImageIds" not in body or "Filters" not in body, "coexist")
        instance_type = body.get("InstanceType")
        self._need(instance_type is None or isinstance(instance_type, str), "instance")
        if "ImageIds" in body:
            ids = body["ImageIds"]
            self._need(isinstance(ids, list) and all(isinstance(i, str) for i in ids), "ids")
            self._need(len(ids) <= MAX_IMAGE_IDS, "many_ids", MAX_IMAGE_IDS)
            bad = [i for i in ids if not _IMAGE_ID.match(i)]
            self._need(not bad, "bad_id", *bad[:1])
            return (), tuple(ids)
        raw_filters = body.get("Filters", [])
        self._need(isinstance(raw_filters, list), "filters")
        self._need(len(raw_filters) <= MAX_FILTERS, "many_filters", MAX_FILTERS)
        filters: list[tuple[str, tuple[str, ...]]] = []
        for item in raw_filters:
            fields: Any = item if isinstance(item, dict) else {}
            name, values = fields.get("Name"), fields.get("Values")
            tag = isinstance(name, str) and name.startswith("tag:") and len(name) > 4
            self._need(isinstance(name, str) and (name in FILTER_NAMES or tag), "filter", name)
            strings = isinstance(values, list) and all(isinstance(v, str) for v in values)
            self._need(strings, "values", name)
            self._need(len(values) <= MAX_FILTER_VALUES, "many_values", name, MAX_FILTER_VALUES)
            bad = [v for v in values if v not in IMAGE_TYPES] if name == "image-type" else []
            self._need(not bad, "image_type", *bad[:1])
            filters.append((name, tuple(values)))
        return tuple(sorted(filters)), None

    def listing(self, call: Call) -> Sequence[dict[str, Any]]:
        return self.catalogue.listing(*cast(tuple[Filters, Any], call.selection))

    def page(self, items: list[dict[str, Any]], total: int, call: Call) -> Response:
        body = {"TotalCount": total, "ImageSet": items, "RequestId": str(uuid.uuid4())}
        return Response.json(200, {"Response": body})


EMULATED = EmulatedSource(
    TencentApp, "Tencent CVM", ("region", "ap-guangzhou"), short_label="Tencent"
)
make_server = EMULATED.make_server
