"""QingCloud DescribeImages emulator: signature v1, ret_code envelope, offset paging.

It behaves as the real API documented in shared/providers/qingcloud.md:

- ``GET /iaas/?action=DescribeImages&zone=...`` (``/iaas`` too; a form-encoded POST is
  accepted as well, its signature then covering the body parameters with verb POST);
- every request must carry ``access_key_id``, ``time_stamp``, ``version``,
  ``signature_method``, ``signature_version`` and ``signature`` (else ret_code 1100); the
  signature is recomputed from the query exactly as received, with the product's own signer,
  and compared in constant time; an unknown key or a wrong signature is answered, like every
  QingCloud error, with HTTP 200 and ``{"ret_code": 1200, "message": ...}``;
- ``time_stamp`` more than ``clock_skew_s`` off, or a past ``expires``: ret_code 1300;
- ``action`` must be DescribeImages and ``zone`` a known zone (else 1100); every zone
  serves the same catalogue;
- ``offset``/``limit`` (default 20, capped at 100) with ``total_count``; a negative or
  non-integer value is 1100, ``limit=0`` answers only the count (an empty ``image_set``);
  the order is the catalogue's (creation order, new images last);
- the filters ``images.N`` (an unknown id is an error, 2100), ``status.N`` (an invalid
  value is an error, 1100), ``processor_type``, ``os_family``, ``visibility``, ``provider``,
  ``owner``, ``search_word``, ``tags.N``, ``verbose`` (only 0); with none of ``images.N``,
  ``provider``, ``visibility`` or ``owner`` the caller sees only the images it owns;
- faults from :mod:`inventory.emulators.base`: throttling is ret_code 2500, ``internal``
  5000 and ``server_busy`` 5100, all in an HTTP 200 body.

Default credentials (also for ``inventory emulate qingcloud``): access key id
``QYEMULATORACCESSKEY``, secret ``emulator-secret-access-key``; the caller's user id
(owner of its own images) is ``usr-emulator``; zones pek3a, sh1a, gd2 and ap2a.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import random
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

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
    draw_choices,
    draw_fractions,
    draw_ints,
    draw_traits,
    iso_z,
    paused_gc,
    random_ids,
)
from inventory.providers.qingcloud.auth import canonical_query, sign

DEFAULT_ACCESS_KEY_ID = "QYEMULATORACCESSKEY"
DEFAULT_SECRET_ACCESS_KEY = "emulator-secret-access-key"  # noqa: S105 - a documented test key
DEFAULT_OWNER = "usr-emulator"
#: Owner of the platform images, as QingCloud reports it.
SYSTEM_OWNER = "system"
DEFAULT_ZONES = frozenset({"pek3a", "sh1a", "gd2", "ap2a"})
DEFAULT_SYSTEM_SHARE = 0.15
STATUSES = ("pending", "available", "deprecated", "suspended", "deleted", "ceased")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
FAULT_KINDS = COMMON_FAULT_KINDS | {"internal", "server_busy"}

#: Status mix of generated images: mostly usable, some retired, a few in other states.
_OWN_STATUSES = ("available", "deprecated", "pending", "suspended", "deleted")
_OWN_WEIGHTS = (86, 6, 2, 2, 4)
_SYSTEM_STATUSES = ("available", "deprecated")
_SYSTEM_WEIGHTS = (80, 20)
_LINUX_TYPES = ("small_b", "medium_b", "large_b", "c1m1", "c1m2", "c2m4")
_WINDOWS_TYPES = ("medium_b", "large_b", "c2m4", "c4m8")
_TAG_COLORS = ("#9999CC", "#E6A23C", "#67C23A", "#F56C6C", "#409EFF")
_STATUS_AGE_S = 180 * 86400  # how long after creation a later status change may come
_MAX_VIEWS = 64  # cached filtered listings kept; a view of 100,000 images is ~1 MB


def _now_text(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_pool(owner: str) -> list[dict[str, Any]]:
    """The account's tags: a handful, reused across its images as in a real account (so a
    ``tags.N`` filter matches several images). Derived from ``owner`` alone."""
    rng = random.Random(f"qingcloud-tags:{owner}")
    pairs = (
        ("env", "prod"),
        ("env", "staging"),
        ("env", "dev"),
        ("team", "platform"),
        ("team", "data"),
        ("app", "web"),
        ("cost-center", "finance"),
        ("owner", "ops"),
    )
    ids = random_ids(rng, "tag-", len(pairs))
    return [
        {
            "tag_id": tag_id,
            "tag_key": key,
            # Older QingCloud tags had only a name; newer ones a key and a value.
            "tag_name": key,
            "tag_value": value,
            "color": _TAG_COLORS[n % len(_TAG_COLORS)],
            "owner": owner,
        }
        for n, (tag_id, (key, value)) in enumerate(zip(ids, pairs, strict=True))
    ]


def _make_images(
    rng: random.Random,
    count: int,
    owner: str,
    system_share: float,
    taken: Collection[str] = (),
    created_at: int | None = None,
) -> list[dict[str, Any]]:
    """``count`` raw images in DescribeImages' shape, drawn from ``rng`` in bulk."""
    with paused_gc():
        return _draw_images(rng, count, owner, system_share, taken, created_at)


def _draw_images(
    rng: random.Random,
    count: int,
    owner: str,
    system_share: float,
    taken: Collection[str],
    created_at: int | None,
) -> list[dict[str, Any]]:
    traits = draw_traits(rng, count, system_share, created_at=created_at)
    ids = random_ids(rng, "img-", count, taken=taken)
    own_status = draw_choices(rng, _OWN_STATUSES, count, _OWN_WEIGHTS)
    system_status = draw_choices(rng, _SYSTEM_STATUSES, count, _SYSTEM_WEIGHTS)
    ages = draw_ints(rng, 3600, _STATUS_AGE_S, count)
    linux_types = draw_choices(rng, _LINUX_TYPES, count)
    windows_types = draw_choices(rng, _WINDOWS_TYPES, count)
    tag_rolls = draw_fractions(rng, count)
    pool = tag_pool(owner)
    first_tags = draw_choices(rng, range(len(pool)), count)
    second_tags = draw_choices(rng, range(len(pool)), count)

    images: list[dict[str, Any]] = []
    for i, t in enumerate(traits):
        # QingCloud's processor_type is the word size; its ARM images are 64-bit too.
        bits = "32bit" if t.architecture == "i386" else "64bit"
        status = system_status[i] if t.system else own_status[i]
        create_time = iso_z(t.created)
        # A status other than the initial one came later; the initial ones date from
        # creation, as on the real API.
        changed_later = status not in ("available", "pending")
        tags: list[dict[str, Any]] = []
        if not t.system and tag_rolls[i] < 0.3:
            tags.append(pool[first_tags[i]])
            if tag_rolls[i] < 0.08 and second_tags[i] != first_tags[i]:
                tags.append(pool[second_tags[i]])
        windows = t.os.platform == "windows"
        images.append(
            {
                "image_id": ids[i],
                "image_name": f"{t.name} {bits}" if t.system else t.name,
                "description": t.description,
                "size": t.size_gb,
                "processor_type": bits,
                "platform": t.os.platform,
                "os_family": t.os.family,
                "visibility": "public" if t.system else "private",
                "provider": "system" if t.system else "self",
                "owner": SYSTEM_OWNER if t.system else owner,
                "recommended_type": windows_types[i] if windows else linux_types[i],
                "status": status,
                "transition_status": "creating" if status == "pending" else "",
                "create_time": create_time,
                "status_time": iso_z(t.created + ages[i]) if changed_later else create_time,
                "tags": tags,
                "sub_code": 0,
            }
        )
    return images


def generate_images(
    count: int, seed: int, owner: str = DEFAULT_OWNER, system_share: float = DEFAULT_SYSTEM_SHARE
) -> list[dict[str, Any]]:
    """A deterministic catalogue: the same arguments give the same images, in order.

    ``system_share`` of them are platform images (public, provider "system", owner
    "system"), the rest the caller's own (private, provider "self", owner ``owner``)."""
    if count < 0:
        raise ValueError(f"image count must be 0 or more, not {count}")
    return _make_images(random.Random(seed), count, owner, system_share)


Filters = tuple[tuple[str, Any], ...]


class QingCloudCatalogue(CatalogueStore):
    """The emulated image catalogue of one account: thread-safe, mutable between listings.

    Images are never changed in place: an edit stores a new dict. A listing being
    serialised in another thread therefore shows each image wholly before or wholly after
    a change, never half of it.
    """

    id_key = "image_id"

    def __init__(self, images: Iterable[dict[str, Any]], owner: str = DEFAULT_OWNER) -> None:
        self.owner = owner
        super().__init__(images)

    @classmethod
    def generate(
        cls,
        count: int,
        seed: int,
        owner: str = DEFAULT_OWNER,
        system_share: float = DEFAULT_SYSTEM_SHARE,
    ) -> QingCloudCatalogue:
        return cls(generate_images(count, seed, owner, system_share), owner)

    def mutate(
        self,
        seed: int,
        deprecate: int = 0,
        cease: int = 0,
        delete: int = 0,
        remove: int = 0,
        add: int = 0,
        rename: int = 0,
        now: datetime | None = None,
    ) -> dict[str, list[str]]:
        """Change the catalogue as a provider would between two syncs; returns the ids
        affected per kind.

        Only the account's own images change (those a default listing shows), each at most
        once: ``deprecate`` available → deprecated, ``cease`` deprecated or deleted →
        ceased, ``delete`` any but ceased → deleted, ``remove`` drops images from the
        listing, ``rename`` changes name and description, ``add`` captures new available
        images. Fewer are changed when fewer qualify. Deterministic for a given seed, state
        and ``now`` (the time written into ``status_time`` and new images; default the
        clock), which also dates the new images' names.
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
        now_text = _now_text(moment)
        out: dict[str, list[str]] = {kind: [] for kind in MUTATIONS}
        with self._lock:
            images = self._images
            owned = [iid for iid, image in images.items() if image["owner"] == self.owner]
            touched: set[str] = set()

            def pick(n: int, wanted: Callable[[dict[str, Any]], bool]) -> list[str]:
                if n == 0:
                    return []
                pool = [iid for iid in owned if iid not in touched and wanted(images[iid])]
                chosen = rng.sample(pool, min(n, len(pool)))
                touched.update(chosen)
                return chosen

            def set_status(kind: str, chosen: list[str], status: str) -> None:
                for iid in chosen:
                    images[iid] = {**images[iid], "status": status, "status_time": now_text}
                    out[kind].append(iid)

            set_status(
                "deprecate", pick(deprecate, lambda i: i["status"] == "available"), "deprecated"
            )
            set_status(
                "cease",
                pick(cease, lambda i: i["status"] in ("deprecated", "deleted")),
                "ceased",
            )
            set_status("delete", pick(delete, lambda i: i["status"] != "ceased"), "deleted")
            for iid in pick(remove, lambda _: True):
                self._removed[iid] = images.pop(iid)
                out["remove"].append(iid)
            for iid in pick(rename, lambda _: True):
                image = images[iid]
                images[iid] = {
                    **image,
                    "image_name": _renamed(image["image_name"] or "image", rng),
                    "description": f"rebuilt {now_text[:10]}",
                }
                out["rename"].append(iid)
            if add:
                taken = images.keys() | self._removed.keys()
                created = int(moment.timestamp())
                for image in _make_images(rng, add, self.owner, 0.0, taken, created):
                    image.update(status="available", transition_status="", status_time=now_text)
                    images[image["image_id"]] = image
                    out["add"].append(image["image_id"])
            self._changed()
        return out

    def listing(self, filters: Filters) -> Sequence[dict[str, Any]]:
        """The images matching a filter set, in catalogue order; cached until a change, so
        paging through a listing costs one scan, not one scan a page. Do not modify."""
        with self._lock:
            view = self._views.get(filters)
            if view is None:
                wanted = dict(filters)
                view = tuple(i for i in self._images.values() if _matches(i, wanted))
                if len(self._views) >= _MAX_VIEWS:
                    del self._views[next(iter(self._views))]  # the oldest
                self._views[filters] = view
            return view

    def shrink(self, filters: Filters) -> None:
        """Remove the first image of a listing (shifts the offsets of every later item)."""
        with self._lock:
            view = self.listing(filters)
            if view:
                self.remove(view[0]["image_id"])


def _renamed(name: str, rng: random.Random) -> str:
    """``name`` with a new ``-vN`` suffix (replacing an earlier one), never the same name."""
    stem, dash_v, number = name.rpartition("-v")
    if not (dash_v and number.isdigit()):
        stem, number = name, ""
    choices = [n for n in range(2, 10) if str(n) != number]
    return f"{stem}-v{rng.choice(choices)}"


def _matches(image: dict[str, Any], f: dict[str, Any]) -> bool:
    if "images" in f and image["image_id"] not in f["images"]:
        return False
    if "status" in f and image["status"] not in f["status"]:
        return False
    for key in ("processor_type", "os_family", "visibility", "provider", "owner"):
        if key in f and image.get(key) != f[key]:
            return False
    if "search_word" in f:
        word = f["search_word"].lower()
        if (
            word not in image["image_id"].lower()
            and word not in (image["image_name"] or "").lower()
        ):
            return False
    if "tags" in f:
        tag_ids = {t.get("tag_id") for t in image.get("tags") or []}
        if not tag_ids & set(f["tags"]):
            return False
    return True


class QingCloudError(Exception):
    """A refusal the real API answers with HTTP 200 and ``{"ret_code", "message"}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _ret_code(code: int, message: str) -> Callable[[], Response]:
    return lambda: Response.json(200, {"ret_code": code, "message": message})


#: QingCloud's own faulty answers: errors travel in the body of an HTTP 200.
_FAULT_ANSWERS: dict[str, Callable[[], Response]] = {
    "throttle": _ret_code(2500, "QuotaExceeded, api request too frequently"),
    "internal": _ret_code(5000, "InternalError, please try again later"),
    "server_busy": _ret_code(5100, "ServerBusy, please try again later"),
    # A body cut off mid-way, as when a proxy drops the upstream connection.
    "malformed": lambda: Response(
        200, b'{"action":"DescribeImagesResponse","total_count":3,"image_set":[{"image_id":"img-'
    ),
}

_REQUIRED = (
    "access_key_id",
    "time_stamp",
    "version",
    "signature_method",
    "signature_version",
    "signature",
)
_LIST_PARAMS = ("images", "status", "tags")
_VALUE_FILTERS = ("processor_type", "os_family", "visibility", "provider", "owner", "search_word")


class QingCloudApp:
    """The request handling of the emulator; see the module docstring for the behaviour."""

    fault_kinds = FAULT_KINDS

    def __init__(
        self,
        catalogue: QingCloudCatalogue,
        *,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        zones: Collection[str] = DEFAULT_ZONES,
        clock_skew_s: float = 60.0,
        faults: Faults | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.access_key_id = access_key_id
        self._secret = secret_access_key
        self.zones = frozenset(zones)
        self.clock_skew_s = clock_skew_s
        self.faults = faults if faults is not None else Faults()
        self._seeds = MutationSeeds()

    def __repr__(self) -> str:
        return f"QingCloudApp(access_key_id={self.access_key_id!r}, images={len(self.catalogue)})"

    # -- App protocol ----------------------------------------------------------------------

    def mutate(self, **counts: Any) -> dict[str, list[str]]:
        """The control API's mutation (see :func:`~inventory.emulators.base.control_mutate`)."""
        return control_mutate(self.catalogue, counts, self._seeds)

    def state(self) -> dict[str, Any]:
        return {
            "provider": "qingcloud",
            "images": len(self.catalogue),
            "owned": len(self.catalogue.listing((("owner", self.catalogue.owner),))),
            "owner": self.catalogue.owner,
            "zones": sorted(self.zones),
        }

    def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except QingCloudError as err:
            return Response.json(200, {"ret_code": err.code, "message": err.message})

    # -- internals -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        if request.path not in ("/iaas/", "/iaas"):
            return Response.text(
                404, "<html><body><h1>404 Not Found</h1></body></html>", "text/html"
            )
        if request.method not in ("GET", "POST"):
            return Response.text(405, "Method Not Allowed")
        params = parse_qsl(request.raw_query, keep_blank_values=True)
        if request.method == "POST" and _is_form(request):
            params += parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        single = dict(params)

        # Faults come first: a gateway error or a throttle does not wait for the signature.
        fault, shrink = apply_faults(self.faults, _page_number(single), _FAULT_ANSWERS)
        if fault is not None:
            return fault
        self._authenticate(request, params, single)

        action = single.get("action")
        if not action:
            raise QingCloudError(1100, "parameter [action] should not be empty")
        if action != "DescribeImages":
            raise QingCloudError(
                1100, f"invalid action [{action}]: this emulator serves DescribeImages only"
            )
        zone = single.get("zone")
        if not zone:
            raise QingCloudError(1100, "parameter [zone] should not be empty")
        if zone not in self.zones:
            raise QingCloudError(1100, f"zone [{zone}] is not available")
        offset, limit = _paging(single)
        filters = self._filters(params, single)
        view = self.catalogue.listing(filters)
        response = Response.json(
            200,
            {
                "action": "DescribeImagesResponse",
                "image_set": list(view[offset : offset + limit]),
                "total_count": len(view),
                "ret_code": 0,
            },
        )
        if shrink:
            self.catalogue.shrink(filters)
        return response

    def _authenticate(
        self, request: Request, params: list[tuple[str, str]], single: dict[str, str]
    ) -> None:
        for name in _REQUIRED:
            if not single.get(name):
                raise QingCloudError(1100, f"parameter [{name}] should not be empty")
        method = single["signature_method"]
        if method not in ("HmacSHA256", "HmacSHA1"):
            raise QingCloudError(1100, f"invalid signature_method [{method}]")
        if single["signature_version"] != "1":
            raise QingCloudError(1100, f"invalid signature_version [{single['signature_version']}]")
        if single["version"] != "1":
            raise QingCloudError(1100, f"invalid version [{single['version']}]")
        if single["access_key_id"] != self.access_key_id:
            raise QingCloudError(1200, f"access key [{single['access_key_id']}] not found")
        expected = _signature(params, self._secret, method, request.method, request.path)
        if not hmac.compare_digest(expected.encode(), single["signature"].encode()):
            raise QingCloudError(1200, "signature not matched")
        now = datetime.now(UTC)
        stamp = _parse_time(single["time_stamp"])
        if stamp is None:
            raise QingCloudError(1100, f"invalid time_stamp [{single['time_stamp']}]")
        if abs((now - stamp).total_seconds()) > self.clock_skew_s:
            raise QingCloudError(1300, f"message expired: time_stamp [{single['time_stamp']}]")
        if "expires" in single:
            expires = _parse_time(single["expires"])
            if expires is None:
                raise QingCloudError(1100, f"invalid expires [{single['expires']}]")
            if expires < now:
                raise QingCloudError(1300, f"message expired: expires [{single['expires']}]")

    def _filters(self, params: list[tuple[str, str]], single: dict[str, str]) -> Filters:
        lists: dict[str, list[str]] = {}
        for key, value in params:
            base, _, index = key.partition(".")
            if base in _LIST_PARAMS and index.isdigit() and value:
                lists.setdefault(base, []).append(value)
        if single.get("verbose", "0") not in ("", "0"):
            raise QingCloudError(1100, f"invalid verbose [{single['verbose']}]: only 0")
        for status in lists.get("status", []):
            if status not in STATUSES:
                raise QingCloudError(1100, f"invalid status [{status}]")
        for image_id in lists.get("images", []):
            if self.catalogue.get(image_id) is None:
                raise QingCloudError(2100, f"resource [{image_id}] not found")
        f: dict[str, Any] = {k: tuple(sorted(set(v))) for k, v in lists.items()}
        for key in _VALUE_FILTERS:
            if single.get(key):
                f[key] = single[key]
        if not any(k in f for k in ("images", "provider", "visibility", "owner")):
            f["owner"] = self.catalogue.owner  # no filter: the caller's own images
        return tuple(sorted(f.items()))


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "application/x-www-form-urlencoded")
    return content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"


def _signature(
    params: list[tuple[str, str]], secret: str, method: str, verb: str, path: str
) -> str:
    if method == "HmacSHA256":
        return sign(params, secret, verb, path)[1]
    # HmacSHA1, which the SDK falls back to: same string to sign, other digest.
    string_to_sign = f"{verb.upper()}\n{path}\n{canonical_query(params)}"
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _page_number(single: dict[str, str]) -> int:
    """The 1-based page a request asks for, leniently: faults apply before validation."""
    try:
        offset = max(int(single.get("offset") or 0), 0)
        limit = min(max(int(single.get("limit") or DEFAULT_LIMIT), 1), MAX_LIMIT)
    except ValueError:
        return 1
    return offset // limit + 1


def _paging(single: dict[str, str]) -> tuple[int, int]:
    values: dict[str, int] = {}
    for name, default in (("offset", 0), ("limit", DEFAULT_LIMIT)):
        text = single.get(name) or ""
        try:
            values[name] = int(text) if text else default
        except ValueError:
            raise QingCloudError(1100, f"parameter [{name}] should be an integer") from None
        if values[name] < 0:
            raise QingCloudError(1100, f"parameter [{name}] should not be negative")
    return values["offset"], min(values["limit"], MAX_LIMIT)


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def make_server(
    *,
    port: int = 0,
    images: int = 1000,
    seed: int = 1,
    access_key_id: str = DEFAULT_ACCESS_KEY_ID,
    secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
    owner: str = DEFAULT_OWNER,
    system_share: float = DEFAULT_SYSTEM_SHARE,
    zones: Collection[str] = DEFAULT_ZONES,
    verbose: bool = False,
) -> EmulatorServer:
    """A ready (not yet started) emulator with a generated catalogue."""
    catalogue = QingCloudCatalogue.generate(images, seed, owner, system_share)
    app = QingCloudApp(
        catalogue, access_key_id=access_key_id, secret_access_key=secret_access_key, zones=zones
    )
    return EmulatorServer(app, port, verbose=verbose)


def serve(
    *,
    port: int = 8100,
    images: int = 1000,
    seed: int = 1,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    owner: str = DEFAULT_OWNER,
    system_share: float = DEFAULT_SYSTEM_SHARE,
    verbose: bool = False,
) -> None:
    """Run the emulator in the foreground until Ctrl-C (``inventory emulate qingcloud``).

    Credentials left as None are the documented defaults. The first line printed is
    ``QingCloud emulator: <url>/iaas/ (...)``, written once the port listens, so a parent
    process can read the URL from it (port 0 picks a free port)."""
    access_key_id = access_key_id or DEFAULT_ACCESS_KEY_ID
    secret_access_key = secret_access_key or DEFAULT_SECRET_ACCESS_KEY
    server = make_server(
        port=port,
        images=images,
        seed=seed,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        owner=owner,
        system_share=system_share,
        verbose=verbose,
    )
    print(
        f"QingCloud emulator: {server.url}/iaas/ ({images} images, seed {seed}); "
        f"access key id {access_key_id}; owner {owner}; "
        f"zones {', '.join(sorted(DEFAULT_ZONES))}; control API {server.url}/_emulator/",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
