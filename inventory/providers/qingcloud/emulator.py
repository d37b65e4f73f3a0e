"""QingCloud DescribeImages emulator dialect: signature v1, ret_code envelope, offset paging.

What it serves and accepts: docs/providers/qingcloud.md ("Emulator"); the rest is the engine's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import random
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from inventory.emulation import Call, Catalogue, EmulatedSource, EmulatorApp, Refusal, traits
from inventory.emulation.app import refusal_table
from inventory.emulation.messages import Request, Response
from inventory.providers.qingcloud.auth import canonical_query

DEFAULT_ACCESS_KEY_ID = "QYEMULATORACCESSKEY"
DEFAULT_SECRET_ACCESS_KEY = "emulator-secret-access-key"  # noqa: S105 - a documented test key
DEFAULT_OWNER = "usr-emulator"
DEFAULT_ZONES = frozenset({"pek3a", "sh1a", "gd2", "ap2a"})
DEFAULT_SYSTEM_SHARE = 0.15
STATUSES = ("pending", "available", "deprecated", "suspended", "deleted", "ceased")
MAX_LIMIT, DEFAULT_LIMIT = 100, 20

#: The status mix of generated images, status: weight.
_OWN_MIX = {"available": 86, "deprecated": 6, "pending": 2, "suspended": 2, "deleted": 4}
_SYSTEM_MIX = {"available": 80, "deprecated": 20}
_LINUX_TYPES = ("small_b", "medium_b", "large_b", "c1m1", "c1m2", "c2m4")
_WINDOWS_TYPES = ("medium_b", "large_b", "c2m4", "c4m8")
_TAG_COLORS = ("#9999CC", "#E6A23C", "#67C23A", "#F56C6C", "#409EFF")
_STATUS_AGE_S = 180 * 86400  # how long after creation a later status change may come
_FORM = "application/x-www-form-urlencoded"
_TIME = "%Y-%m-%dT%H:%M:%SZ"  # time_stamp and expires, in UTC
#: Every answer but the listing (HTTP 200): key, ret_code, message (a str.format template).
_ANSWERS = """
throttle    2500 QuotaExceeded, api request too frequently
error       5000 InternalError, please try again later
internal    5000 InternalError, please try again later
server_busy 5100 ServerBusy, please try again later
empty       1100 parameter [{}] should not be empty
invalid     1100 invalid {} [{}]
not_int     1100 parameter [{}] should be an integer
negative    1100 parameter [{}] should not be negative
verbose     1100 invalid verbose [{}]: only 0
action      1100 invalid action [{}]: this emulator serves DescribeImages and DescribeZones
zone        1100 zone [{}] is not available
key         1200 access key [{}] not found
signature   1200 signature not matched
expired     1300 message expired: {} [{}]
resource    2100 resource [{}] not found
"""
_REFUSALS = refusal_table(_ANSWERS, 200)
#: The common parameters, in the order they are checked.
_SIGNATURE_PARAMS = ("signature_method", "signature_version", "signature")
_REQUIRED = ("access_key_id", "time_stamp", "version", *_SIGNATURE_PARAMS)
#: The filters an image's field of the same name must equal.
_EQUAL_FILTERS = ("processor_type", "os_family", "visibility", "provider", "owner")
Filters = tuple[tuple[str, Any], ...]


def tag_pool(owner: str) -> list[dict[str, Any]]:
    """The account's tags, one per ``traits.TAG_PAIRS`` pair, derived from ``owner`` alone."""
    ids = traits.random_ids(random.Random(f"qingcloud-tags:{owner}"), "tag-", len(traits.TAG_PAIRS))
    tags = zip(ids, traits.TAG_PAIRS, itertools.cycle(_TAG_COLORS), strict=False)
    # Older QingCloud tags had only a name; newer ones a key and a value.
    return [
        dict(tag_id=tag_id, tag_key=key, tag_name=key, tag_value=value, color=color, owner=owner)
        for tag_id, (key, value), color in tags
    ]


def _make_images(
    rng: random.Random,
    count: int,
    owner: str,
    system_share: float,
    taken: Collection[str] = (),
    created_at: int | None = None,
) -> Iterator[dict[str, Any]]:
    """``count`` raw images in DescribeImages' shape, drawn from ``rng`` in bulk."""
    drawn = traits.draw_traits(rng, count, system_share, created_at=created_at)
    ids = traits.random_ids(rng, "img-", count, taken=taken)
    own_status = traits.draw_choices(rng, tuple(_OWN_MIX), count, tuple(_OWN_MIX.values()))
    system_status = traits.draw_choices(rng, tuple(_SYSTEM_MIX), count, tuple(_SYSTEM_MIX.values()))
    ages = traits.draw_ints(rng, 3600, _STATUS_AGE_S, count)
    linux_types = traits.draw_choices(rng, _LINUX_TYPES, count)
    windows_types = traits.draw_choices(rng, _WINDOWS_TYPES, count)
    tag_picks = traits.draw_tag_picks(rng, count)
    pool = tag_pool(owner)
    for i, t in enumerate(drawn):
        # QingCloud's processor_type is the word size; its ARM images are 64-bit too.
        bits = "32bit" if t.architecture == "i386" else "64bit"
        status = system_status[i] if t.system else own_status[i]
        create_time = traits.iso_z(t.created)
        # The initial statuses date from creation, as on the real API; others came later.
        initial = status in ("available", "pending")
        yield {
            "image_id": ids[i], "image_name": f"{t.name} {bits}" if t.system else t.name,
            "description": t.description, "size": t.size_gb, "processor_type": bits,
            "platform": t.os.platform, "os_family": t.os.family,
            "visibility": "public" if t.system else "private",
            "provider": "system" if t.system else "self", "owner": "system" if t.system else owner,
            "recommended_type": (windows_types if t.os.platform == "windows" else linux_types)[i],
            "status": status, "transition_status": "creating" if status == "pending" else "",
            "create_time": create_time,
            "status_time": create_time if initial else traits.iso_z(t.created + ages[i]),
            "tags": [] if t.system else [pool[n] for n in tag_picks[i]], "sub_code": 0,
        }  # fmt: skip


def generate_images(
    count: int, seed: int, owner: str = DEFAULT_OWNER, system_share: float = DEFAULT_SYSTEM_SHARE
) -> list[dict[str, Any]]:
    """A deterministic catalogue: the same arguments give the same images, in order;
    ``system_share`` of them are platform images (public, provider "system", owner
    "system"), the rest the caller's own (private, provider "self", owner ``owner``)."""
    with traits.paused_gc():
        return list(_make_images(random.Random(seed), count, owner, system_share))


def _status(status: str) -> Any:
    return lambda _image, now: {"status": status, "status_time": traits.utc_text(now)}


class QingCloudCatalogue(Catalogue):
    """The emulated image catalogue of one account. Only the account's own images (those a
    default listing shows) change; ``cease`` takes deprecated or deleted ones."""

    id_key = "image_id"
    transitions = {
        "deprecate": (lambda i: i["status"] == "available", _status("deprecated")),
        "cease": (lambda i: i["status"] in ("deprecated", "deleted"), _status("ceased")),
        "delete": (lambda i: i["status"] != "ceased", _status("deleted")),
    }
    default_owner = DEFAULT_OWNER
    draw = staticmethod(generate_images)
    name_field, description_field = "image_name", "description"

    def owned(self, image: dict[str, Any]) -> bool:
        return bool(image["owner"] == self.owner)

    def new_images(
        self, rng: random.Random, count: int, now: datetime, taken: Iterable[str]
    ) -> list[dict[str, Any]]:
        images = list(_make_images(rng, count, self.owner, 0.0, set(taken), int(now.timestamp())))
        for image in images:
            image.update(status="available", transition_status="", status_time=traits.utc_text(now))
        return images

    def listing(self, filters: Filters) -> Sequence[dict[str, Any]]:
        """The images matching a filter set, in catalogue order (cached; do not modify)."""
        wanted = dict(filters)
        return self.view(filters, lambda images: tuple(i for i in images if _matches(i, wanted)))


def _matches(image: dict[str, Any], f: dict[str, Any]) -> bool:
    word = f.get("search_word", "").lower()  # "" is in every name
    return (
        ("images" not in f or image["image_id"] in f["images"])
        and ("status" not in f or image["status"] in f["status"])
        and all(image.get(key) == f[key] for key in _EQUAL_FILTERS if key in f)
        and (word in image["image_id"].lower() or word in (image["image_name"] or "").lower())
        and ("tags" not in f or any(t.get("tag_id") in f["tags"] for t in image.get("tags") or []))
    )


class QingCloudApp(EmulatorApp):
    """DescribeImages as QingCloud answers it: every error is HTTP 200 with a ret_code."""

    provider = "qingcloud"
    catalogue_class = QingCloudCatalogue
    default_key = dict(
        access_key_id=DEFAULT_ACCESS_KEY_ID, secret_access_key=DEFAULT_SECRET_ACCESS_KEY
    )
    clock_skew_s = 60.0  # QingCloud refuses a time_stamp further off (ret_code 1300)
    refusals = _REFUSALS
    answers = {kind: _REFUSALS[kind] for kind in ("throttle", "error", "internal", "server_busy")}
    default_locations = DEFAULT_ZONES
    catalogue: QingCloudCatalogue

    def banner(self) -> str:
        zones = ", ".join(sorted(self.locations))
        return f"access key id {self.key_id}; owner {self.catalogue.owner}; zones {zones}"

    def state(self) -> dict[str, Any]:
        owner = self.catalogue.owner
        owned = len(self.catalogue.listing((("owner", owner),)))
        zones = sorted(self.locations)
        return {**super().state(), "owned": owned, "owner": owner, "zones": zones}

    def route(self, request: Request) -> Response | None:
        """DescribeZones: signed and limited like the listing; its zones all ``active``."""
        asked = request.raw_query + "&" + request.body.decode("latin-1")
        if request.path not in ("/iaas/", "/iaas") or "DescribeZones" not in asked:
            return None  # a listing page: read once, by the listing's own pipeline
        call = self.read(request)
        if call.extra[1].get("action") != "DescribeZones":
            return None
        return self.serve_other(request, call, self._zones)

    def _zones(self, _call: Call) -> Response:
        zones = [{"zone_id": zone, "status": "active"} for zone in sorted(self.locations)]
        body = dict(action="DescribeZonesResponse", zone_set=zones, total_count=len(zones))
        return Response.json(200, {**body, "ret_code": 0})

    def envelope(self, status: int, code: Any, message: str) -> Response:
        # The table's codes are text; QingCloud's ret_code is a number.
        return Response.json(status, {"ret_code": int(code), "message": message})

    def read(self, request: Request) -> Call:
        if request.path not in ("/iaas/", "/iaas"):
            raise Refusal(Response.html(404, "404 Not Found"))
        if request.method not in ("GET", "POST"):
            raise Refusal(Response.text(405, "Method Not Allowed"))
        params = parse_qsl(request.raw_query, keep_blank_values=True)
        content_type = request.headers.get("content-type", _FORM).split(";")[0].strip().lower()
        if request.method == "POST" and content_type == _FORM:
            params += parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        single = dict(params)
        try:  # leniently, for the fault rules: the strict reading comes after the signature
            offset = max(int(single.get("offset") or 0), 0)
            limit = min(max(int(single.get("limit") or DEFAULT_LIMIT), 1), MAX_LIMIT)
        except ValueError:
            offset, limit = 0, DEFAULT_LIMIT
        return Call(offset=offset, limit=limit, extra=(params, single))

    def authenticate(self, request: Request, call: Call) -> None:
        params, single = call.extra
        for name in _REQUIRED:
            self.check(single.get(name), "empty", name)
        method = single["signature_method"]
        self.check(method in ("HmacSHA256", "HmacSHA1"), "invalid", "signature_method", method)
        for name in ("signature_version", "version"):
            self.check(single[name] == "1", "invalid", name, single[name])
        self.check(single["access_key_id"] == self.key_id, "key", single["access_key_id"])
        # HmacSHA1, which the SDK falls back to, signs the same string with another digest.
        digest = hashlib.sha256 if method == "HmacSHA256" else hashlib.sha1
        to_sign = f"{request.method.upper()}\n{request.path}\n{canonical_query(params)}"
        mac = hmac.new(self._secret.encode(), to_sign.encode(), digest)
        expected = base64.b64encode(mac.digest())
        self.check(hmac.compare_digest(expected, single["signature"].encode()), "signature")
        now, sent = self.now(), single["time_stamp"]
        skew = abs((now - self.moment(sent, _TIME, "invalid", "time_stamp", sent)).total_seconds())
        self.check(skew <= self.clock_skew_s, "expired", "time_stamp", sent)
        expires = single.get("expires")
        if expires is not None:
            until = self.moment(expires, _TIME, "invalid", "expires", expires)
            self.check(until >= now, "expired", "expires", expires)

    def select(self, request: Request, call: Call) -> Call:
        params, single = call.extra
        action, zone = single.get("action"), single.get("zone")
        self.check(action, "empty", "action")
        self.check(action == "DescribeImages", "action", action)
        self.check(zone, "empty", "zone")
        self.check(zone in self.locations, "zone", zone)
        paging: dict[str, int] = {}
        for name, default in (("offset", "0"), ("limit", str(DEFAULT_LIMIT))):
            paging[name] = self.integer(single.get(name) or default, "not_int", name)
            self.check(paging[name] >= 0, "negative", name)
        limit = min(paging["limit"], MAX_LIMIT)
        return Call(offset=paging["offset"], limit=limit, selection=self._filters(params, single))

    def _filters(self, params: list[tuple[str, str]], single: dict[str, str]) -> Filters:
        self.check(single.get("verbose", "0") in ("", "0"), "verbose", single.get("verbose"))
        lists: dict[str, list[str]] = {}
        for key, value in params:
            base, _, index = key.partition(".")
            if base in ("images", "status", "tags") and index.isdigit() and value:
                lists.setdefault(base, []).append(value)
        for status in lists.get("status", []):
            self.check(status in STATUSES, "invalid", "status", status)
        for image_id in lists.get("images", []):
            self.check(self.catalogue.get(image_id) is not None, "resource", image_id)
        f: dict[str, Any] = {key: tuple(sorted(set(values))) for key, values in lists.items()}
        f.update((key, single[key]) for key in (*_EQUAL_FILTERS, "search_word") if single.get(key))
        if not f.keys() & {"images", "provider", "visibility", "owner"}:
            f["owner"] = self.catalogue.owner  # no filter: the caller's own images
        return tuple(sorted(f.items()))

    def page(self, items: list[dict[str, Any]], total: int, call: Call) -> Response:
        body = dict(action="DescribeImagesResponse", image_set=items, total_count=total, ret_code=0)
        return Response.json(200, body)


EMULATED = EmulatedSource(QingCloudApp, "QingCloud", ("zone", "pek3a"), path="/iaas/")
make_server = EMULATED.make_server
