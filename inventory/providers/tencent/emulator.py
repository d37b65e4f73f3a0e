"""Tencent Cloud CVM DescribeImages emulator dialect: TC3 signatures, Response.Error, Offset/Limit.

What it serves and accepts: docs/providers/tencent.md ("Emulator"); the rest is the engine's.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import random
import re
import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from inventory.emulation import Call, Catalogue, EmulatedSource, EmulatorApp, Refusal, traits
from inventory.emulation.app import refusal_table
from inventory.emulation.messages import Request, Response
from inventory.providers.tencent import auth as tc3

DEFAULT_SECRET_ID = "AKIDEMULATORTENCENT00000000000000000"  # noqa: S105 - documented
DEFAULT_SECRET_KEY = "emulator-tencent-secret-key"  # noqa: S105 - a documented test key
DEFAULT_UIN = "100000000001"
DEFAULT_REGIONS = frozenset(
    {"ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-chengdu", "ap-hongkong", "ap-singapore"}
)
IMAGE_TYPES = ("PRIVATE_IMAGE", "PUBLIC_IMAGE", "SHARED_IMAGE")
#: Filters matching one field exactly, and the two documented as fuzzy (case-insensitive).
_EXACT_FILTERS = {"image-id": "ImageId", "image-type": "ImageType"}
_FUZZY_FILTERS = {"image-name": "ImageName", "platform": "Platform"}
FILTER_NAMES = (*_EXACT_FILTERS, *_FUZZY_FILTERS, "tag-key", "tag-value")
MAX_LIMIT, DEFAULT_LIMIT = 100, 20
MAX_FILTERS, MAX_FILTER_VALUES, MAX_IMAGE_IDS = 10, 5, 100

#: State mix of the account's own images: mostly usable, a few in flight or failed.
_OWN_STATES = ("NORMAL", "CREATING", "SYNCING", "IMPORTING", "CREATEFAILED", "IMPORTFAILED")
_OWN_WEIGHTS = (88, 3, 3, 2, 2, 2)
#: traits.OsRelease.family -> Tencent's ``Platform`` spelling.
_PLATFORMS = {"opensuse": "OpenSUSE", "euleros": "OpenEuler", "rocky": "Rocky Linux"}

#: Every answer but the listing (HTTP 200, ``Response.Error``): key, Code, Message template.
#: The first three answer faults; 41 because Tencent documents 40 requests a second.
_ERRORS_TABLE = """\
throttle RequestLimitExceeded Your current request times equals to `41` in a second
error InternalError An internal error has occurred.
server_busy ServiceUnavailable Service is unavailable now.
protocol UnsupportedProtocol this emulator serves POST with a JSON body only
no_auth AuthFailure.InvalidAuthorization Authorization header is missing.
bad_auth AuthFailure.InvalidAuthorization Authorization is not a valid TC3-HMAC-SHA256 header.
scope AuthFailure.InvalidAuthorization Credential scope must end with /{}/tc3_request.
missing MissingParameter The request is missing a required parameter `{}`.
stamp InvalidParameter The parameter `Timestamp` is not an integer: {}.
secret_id AuthFailure.SecretIdNotFound The SecretId is not found, please ensure that your SecretId is correct.
expired AuthFailure.SignatureExpire Signature expired. Timestamp: {}; server time: {}; allowed skew {:g} s.
signed AuthFailure.InvalidAuthorization SignedHeaders must name content-type and host, and only headers present.
signature AuthFailure.SignatureFailure The provided credentials could not be validated. Please check your signature is correct.
action InvalidAction The action `{}` is not supported.
version NoSuchVersion The version `{}` does not exist.
region UnsupportedRegion The region `{}` is not supported.
json UnsupportedProtocol POST requests must send Content-Type application/json.
rate RequestLimitExceeded.UinLimitExceeded Your current request times equals to `{}` in a second, which exceeds the frequency limit `{:g}`.
body InvalidParameter the request body is not a JSON object
unknown UnknownParameter The parameter `{}` is not recognized.
integer InvalidParameter The parameter `{}` must be an integer.
offset InvalidParameterValue The value of `Offset` must be >= 0.
limit InvalidParameterValue The value of `Limit` must be between 1 and {}, got {}.
coexist InvalidParameter.InvalidParameterCoexistImageIdsFilters ImageIds and Filters cannot be specified at the same time.
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
"""  # noqa: E501 - a table
_REFUSALS = refusal_table(_ERRORS_TABLE, status=200)

#: (name, values) pairs; ``ImageIds`` are an ``image-id`` filter with a set of values.
Filters = tuple[tuple[str, Collection[str]], ...]


def generate_images(
    count: int,
    seed: int | random.Random,
    uin: str = DEFAULT_UIN,
    public_share: float = 0.15,
    shared_share: float = 0.05,
    taken: Collection[str] = (),
    created_at: int | None = None,
) -> list[dict[str, Any]]:
    """``count`` images in DescribeImages' shape, deterministic for ``seed`` (or drawn from
    a Random): ``public_share`` Tencent public images; of the rest, ``shared_share`` shared
    by other accounts, the others the account's own (``uin``); ids not in ``taken``."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    drawn = traits.draw_traits(rng, count, public_share, created_at=created_at)
    ids = traits.random_ids(rng, "img-", count, taken=taken)
    snapshot_ids = traits.random_ids(rng, "snap-", count)
    shared = [roll < shared_share for roll in traits.draw_fractions(rng, count)]
    sharers = traits.draw_choices(rng, ("100000000207", "100000000318", "100000000429"), count)
    own_states = traits.draw_choices(rng, _OWN_STATES, count, _OWN_WEIGHTS)
    sync_percents = traits.draw_ints(rng, 1, 100, count)
    deprecated_rolls = traits.draw_fractions(rng, count)
    import_rolls = traits.draw_fractions(rng, count)
    tag_picks = traits.draw_tag_picks(rng, count)

    images: list[dict[str, Any]] = []
    for i, facts in enumerate(drawn):
        kind = "PUBLIC_IMAGE" if facts.system else "SHARED_IMAGE" if shared[i] else "PRIVATE_IMAGE"
        creator = None if facts.system else sharers[i] if shared[i] else uin
        state = own_states[i] if kind == "PRIVATE_IMAGE" else "NORMAL"
        imported = state in ("IMPORTING", "IMPORTFAILED") or import_rolls[i] < 0.1
        source = "OFFICIAL" if facts.system else "EXTERNAL_IMPORT" if imported else "CREATE_IMAGE"
        # Tencent retires old official releases more often than accounts retire their own.
        deprecated = deprecated_rolls[i] < (0.10 if facts.system else 0.05)
        bits = "32位" if facts.architecture == "i386" else "64位"
        # A resource's tag keys are unique: two picks with one key make one tag.
        tags = {} if facts.system else dict(traits.TAG_PAIRS[pick] for pick in tag_picks[i])
        snap = dict(SnapshotId=snapshot_ids[i], DiskUsage="SYSTEM_DISK", DiskSize=facts.size_gb)
        images.append({
            "ImageId": ids[i], "OsName": f"{facts.os.label} {bits}", "ImageType": kind,
            "CreatedTime": traits.iso_z(facts.created)[:-1] + "+00:00",  # as in API samples
            # Official images are named after the OS, like "CentOS 7.6 64位".
            "ImageName": f"{facts.name} {bits}" if facts.system else facts.name,
            "ImageDescription": facts.description or "", "ImageSize": facts.size_gb,
            "Architecture": "arm" if facts.architecture == "arm64" else facts.architecture,
            "ImageState": state,
            "Platform": _PLATFORMS.get(facts.os.family, facts.os.distro.split()[0]),
            "ImageCreator": creator, "ImageSource": source,
            "SyncPercent": sync_percents[i] if state == "SYNCING" else None,
            "IsSupportCloudinit": facts.os.platform != "windows",
            "SnapshotSet": [snap] if source == "CREATE_IMAGE" else [],
            "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
            "LicenseType": "TencentCloud", "ImageFamily": "",
            "ImageDeprecated": state == "NORMAL" and deprecated,
        })  # fmt: skip
    return images


def _passes(image: dict[str, Any], name: str, values: Collection[str]) -> bool:
    """Whether ``image`` passes one filter: has one of its values."""
    if name in _EXACT_FILTERS:
        return image.get(_EXACT_FILTERS[name]) in values
    if name in _FUZZY_FILTERS:
        field = str(image.get(_FUZZY_FILTERS[name]) or "").lower()
        return any(value.lower() in field for value in values)
    key = name.removeprefix("tag:") if name.startswith("tag:") else None
    by = "Key" if name == "tag-key" else "Value"
    tags = image.get("Tags") or []
    return any((key is None or t.get("Key") == key) and t.get(by) in values for t in tags)


class TencentCatalogue(Catalogue):
    """One account's view: public, shared and own images. Mutations change only its own
    private images; a deleted image leaves the listing (Tencent has no deleted state),
    deprecation sets ``ImageDeprecated`` on a NORMAL image, and nothing is ever ceased."""

    id_key = "ImageId"
    transitions = {
        "deprecate": (lambda i: i["ImageState"] == "NORMAL" and not i["ImageDeprecated"],
                      lambda _i, _now: {"ImageDeprecated": True}),
        "delete": (lambda _i: True, lambda _i, _now: None),
    }  # fmt: skip

    default_owner = DEFAULT_UIN
    draw = staticmethod(generate_images)
    name_field, description_field = "ImageName", "ImageDescription"

    def owned(self, image: dict[str, Any]) -> bool:
        return image["ImageType"] == "PRIVATE_IMAGE" and image.get("ImageCreator") == self.owner

    def new_images(
        self, rng: random.Random, count: int, now: datetime, taken: Iterable[str]
    ) -> list[dict[str, Any]]:
        images = generate_images(count, rng, self.owner, 0.0, 0.0, set(taken), int(now.timestamp()))
        usable = {"ImageState": "NORMAL", "ImageSource": "CREATE_IMAGE", "SyncPercent": None}
        return [{**image, **usable, "ImageDeprecated": False} for image in images]

    def listing(self, filters: Filters = ()) -> Sequence[dict[str, Any]]:
        """The images passing every filter, in catalogue order (cached; do not modify)."""
        return self.view(
            filters, lambda images: tuple(i for i in images if all(_passes(i, *f) for f in filters))
        )


class TencentApp(EmulatorApp):
    """DescribeImages as Tencent answers it: every error is HTTP 200 with ``Response.Error``."""

    provider = "tencent"
    catalogue_class = TencentCatalogue
    default_key = {"secret_id": DEFAULT_SECRET_ID, "secret_key": DEFAULT_SECRET_KEY}
    clock_skew_s = 300.0
    refusals = _REFUSALS
    answers = {kind: _REFUSALS[kind] for kind in ("throttle", "error", "server_busy")}
    answers["internal"] = answers["error"]  # an extra fault kind, answered as error_200 is

    default_locations = DEFAULT_REGIONS
    _known = {"action": {tc3.ACTION, tc3.REGIONS_ACTION}, "version": {tc3.API_VERSION}}
    catalogue: TencentCatalogue

    def banner(self) -> str:
        return f"SecretId {self.key_id}; regions {', '.join(sorted(self.locations))}"

    def state(self) -> dict[str, Any]:
        owned = sum(1 for image in self.catalogue.listing() if self.catalogue.owned(image))
        regions = sorted(self.locations)
        return {**super().state(), "owned": owned, "uin": self.catalogue.owner, "regions": regions}

    def route(self, request: Request) -> Response | None:
        """DescribeRegions: signed and limited like the listing; no region, no parameters."""
        if request.path != "/" or request.headers.get("x-tc-action") != tc3.REGIONS_ACTION:
            return None
        return self.serve_other(request, self.read(request), self._regions)

    def _regions(self, call: Call) -> Response:
        body = call.extra
        self.check(isinstance(body, dict), "body")
        self.check(not body, "unknown", *sorted(body)[:1])
        regions = [
            {"Region": region, "RegionName": region, "RegionState": "AVAILABLE"}
            for region in sorted(self.locations)
        ]
        answer = {"TotalCount": len(regions), "RegionSet": regions, "RequestId": str(uuid.uuid4())}
        return Response.json(200, {"Response": answer})

    def envelope(self, status: int, code: Any, message: str) -> Response:
        error = {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}
        return Response.json(status, {"Response": error})

    def read(self, request: Request) -> Call:
        if request.path != "/":
            raise Refusal(Response.html(404, "404 Not Found"))
        self.check(request.method == "POST", "protocol")
        body = None
        with contextlib.suppress(ValueError):  # UnicodeDecodeError is one
            body = json.loads(request.body or b"{}")
        # Paging read leniently, for the fault rules (page 1 when unreadable); strictly in select().
        fields = body if isinstance(body, dict) else {}
        offset, limit = fields.get("Offset", 0), fields.get("Limit", DEFAULT_LIMIT)
        readable = isinstance(offset, int) and isinstance(limit, int) and offset >= 0 and limit >= 1
        return Call(offset, limit, extra=body) if readable else Call(extra=body)

    def authenticate(self, request: Request, call: Call) -> None:
        """The signature, then the common headers (the engine checks the rate limit next)."""
        headers = request.headers
        self.check(headers.get("authorization"), "no_auth")
        auth = tc3.parse_authorization(headers["authorization"])
        if auth is None:
            raise self.fail("bad_auth")
        ok_scope = auth.service == tc3.SERVICE and auth.terminator == "tc3_request"
        self.check(ok_scope, "scope", tc3.SERVICE)
        stamp_text = headers.get("x-tc-timestamp", "")
        self.check(stamp_text, "missing", "Timestamp")
        stamp = self.integer(stamp_text, "stamp", stamp_text)
        self.check(auth.secret_id == self.key_id, "secret_id")
        now = int(self.clock())
        self.check(abs(now - stamp) <= self.clock_skew_s, "expired", stamp, now, self.clock_skew_s)
        self.check({"content-type", "host"} <= set(auth.signed_headers) <= headers.keys(), "signed")
        expected = tc3.sign(
            secret_key=self._secret,
            method=request.method,
            headers=headers,
            signed_headers=auth.signed_headers,
            body=request.body,
            timestamp=stamp,
            query=request.raw_query,
        ).signature
        # The scope date must be the UTC date of the timestamp (a signer using local time
        # fails around midnight); the real API refuses that as a signature failure too.
        valid = hmac.compare_digest(expected.encode(), auth.signature.encode())
        self.check(auth.date == tc3.utc_date(stamp) and valid, "signature")
        for name in ("Action", "Version"):
            self.check(headers.get(f"x-tc-{name.lower()}"), "missing", name)
        for name, known in self._known.items():
            self.check(headers[f"x-tc-{name}"] in known, name, headers[f"x-tc-{name}"])
        region = headers.get("x-tc-region")
        # DescribeRegions takes no region; one given must be served all the same.
        self.check(region or headers["x-tc-action"] == tc3.REGIONS_ACTION, "missing", "Region")
        self.check(region is None or region in self.locations, "region", region)
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        self.check(media == "application/json", "json")

    def over_rate(self, calls: int) -> Refusal:
        return self.fail("rate", calls, self.rate_limit_per_s)

    def select(self, request: Request, call: Call) -> Call:
        body = call.extra
        self.check(isinstance(body, dict), "body")
        unknown = sorted(set(body) - {"ImageIds", "Filters", "Offset", "Limit", "InstanceType"})
        self.check(not unknown, "unknown", *unknown[:1])
        offset, limit = body.get("Offset", 0), body.get("Limit", DEFAULT_LIMIT)
        for name, value in (("Offset", offset), ("Limit", limit)):
            self.check(isinstance(value, int) and not isinstance(value, bool), "integer", name)
        self.check(offset >= 0, "offset")
        self.check(1 <= limit <= MAX_LIMIT, "limit", MAX_LIMIT, limit)
        self.check("ImageIds" not in body or "Filters" not in body, "coexist")
        self.check(isinstance(body.get("InstanceType"), str | None), "instance")
        filters: list[tuple[str, Collection[str]]] = []
        if "ImageIds" in body:  # then there are no Filters
            ids = body["ImageIds"]
            self.check(isinstance(ids, list) and all(isinstance(i, str) for i in ids), "ids")
            self.check(len(ids) <= MAX_IMAGE_IDS, "many_ids", MAX_IMAGE_IDS)
            bad = [i for i in ids if not re.match(r"^img-[a-z0-9]{8}$", i)]
            self.check(not bad, "bad_id", *bad[:1])
            filters.append(("image-id", frozenset(ids)))
        raw_filters = body.get("Filters", [])
        self.check(isinstance(raw_filters, list), "filters")
        self.check(len(raw_filters) <= MAX_FILTERS, "many_filters", MAX_FILTERS)
        for item in raw_filters:
            fields: Any = item if isinstance(item, dict) else {}
            name, values = fields.get("Name"), fields.get("Values")
            tag = isinstance(name, str) and name.startswith("tag:") and len(name) > 4
            self.check(isinstance(name, str) and (name in FILTER_NAMES or tag), "filter", name)
            strings = isinstance(values, list) and all(isinstance(v, str) for v in values)
            self.check(strings, "values", name)
            self.check(len(values) <= MAX_FILTER_VALUES, "many_values", name, MAX_FILTER_VALUES)
            bad = [v for v in values if v not in IMAGE_TYPES] if name == "image-type" else []
            self.check(not bad, "image_type", *bad[:1])
            filters.append((name, tuple(values)))
        return Call(offset=offset, limit=limit, selection=tuple(sorted(filters)))

    def page(self, items: list[dict[str, Any]], total: int, call: Call) -> Response:
        body = {"TotalCount": total, "ImageSet": items, "RequestId": str(uuid.uuid4())}
        return Response.json(200, {"Response": body})


EMULATED = EmulatedSource(
    TencentApp, "Tencent CVM", ("region", "ap-guangzhou"), short_label="Tencent"
)
make_server = EMULATED.make_server
