"""QingCloud DescribeImages emulator: signature v1, ret_code envelope, offset paging.

It behaves as the real API documented in shared/providers/qingcloud.md:

- ``GET /iaas/?action=DescribeImages&zone=...`` (a form-encoded POST is accepted too; the
  signature then covers the body parameters with verb POST);
- every request must carry ``access_key_id``, ``time_stamp``, ``signature_method``,
  ``signature_version`` and ``signature``; the signature is recomputed with the shared
  signer and compared in constant time; a bad one is answered, like every QingCloud
  error, with HTTP 200 and ``{"ret_code": 1200, "message": ...}``;
- ``time_stamp`` more than ``clock_skew_s`` off, or a past ``expires``: ret_code 1300;
- ``offset``/``limit`` (default 20, capped at 100) with ``total_count``;
- the filters ``images.N`` (an unknown id is an error, 2100), ``status.N`` (an invalid
  value is an error, 1100), ``processor_type``, ``os_family``, ``visibility``, ``provider``,
  ``owner``, ``search_word``, ``tags.N``, ``verbose`` (only 0); with none of ``images.N``,
  ``provider``, ``visibility`` or ``owner`` the caller sees only the images it owns;
- faults from :mod:`inventory.emulators.base`, throttling as ret_code 2500.

Default credentials (also for ``inventory emulate qingcloud``): access key id
``QYEMULATORACCESSKEY``, secret ``emulator-secret-access-key``, owner ``usr-emulator``.
"""

from __future__ import annotations

import contextlib
import hmac
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from inventory.emulators.base import (
    EmulatorServer,
    Faults,
    Request,
    Response,
    apply_faults,
    image_name,
    random_id,
    random_time,
)
from inventory.providers.qingcloud.auth import sign

DEFAULT_ACCESS_KEY_ID = "QYEMULATORACCESSKEY"
DEFAULT_SECRET_ACCESS_KEY = "emulator-secret-access-key"  # noqa: S105 - a documented test key
DEFAULT_OWNER = "usr-emulator"
DEFAULT_ZONES = frozenset({"pek3a", "sh1a", "gd2", "ap2a"})
STATUSES = ("pending", "available", "deprecated", "suspended", "deleted", "ceased")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20

#: How often each status is drawn for a generated image (percent).
_STATUSES_DRAWN = ("available", "deprecated", "pending", "suspended", "deleted")
_STATUS_WEIGHTS = (86, 8, 2, 2, 2)
_INSTANCE_TYPES = ("small_b", "medium_b", "large_b", "c1m1", "c2m4", "c4m8")
_TAG_COLORS = ("#9999CC", "#E6A23C", "#67C23A", "#F56C6C")


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _make_image(rng: random.Random, owner: str, system_share: float = 0.15) -> dict[str, Any]:
    system = rng.random() < system_share
    name, family, platform, _ = image_name(rng, system)
    created = random_time(rng)
    status = rng.choices(_STATUSES_DRAWN, _STATUS_WEIGHTS)[0]
    tags: list[dict[str, Any]] = []
    if not system and rng.random() < 0.3:
        key = rng.choice(("env", "team", "app"))
        tags.append(
            {
                "tag_id": random_id(rng, "tag-"),
                "tag_key": key,
                "tag_name": key,
                "tag_value": rng.choice(("prod", "dev", "platform", "data", "web")),
                "color": rng.choice(_TAG_COLORS),
                "owner": owner,
            }
        )
    return {
        "image_id": random_id(rng, "img-"),
        "image_name": name,
        "description": None if rng.random() < 0.4 else f"{name} image",
        "size": rng.choice((20, 20, 40, 50, 100)) if platform == "linux" else rng.choice((50, 100)),
        "processor_type": "64bit" if rng.random() < 0.97 else "32bit",
        "platform": platform,
        "os_family": family,
        "visibility": "public" if system else "private",
        "provider": "system" if system else "self",
        "owner": "system" if system else owner,
        "recommended_type": rng.choice(_INSTANCE_TYPES),
        "status": status,
        "transition_status": "",
        "create_time": _fmt(created),
        "status_time": _fmt(created + timedelta(days=rng.randint(0, 300))),
        "tags": tags,
        "sub_code": 0,
    }


def generate_images(
    count: int, seed: int, owner: str = DEFAULT_OWNER, system_share: float = 0.15
) -> list[dict[str, Any]]:
    """A deterministic catalogue: the same arguments give the same images. ``system_share``
    of them are platform images (public, owned by "system"), the rest the caller's own."""
    rng = random.Random(seed)
    images: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(images) < count:
        image = _make_image(rng, owner, system_share)
        if image["image_id"] not in seen:
            seen.add(image["image_id"])
            images.append(image)
    return images


class QingCloudCatalogue:
    """The emulated image catalogue of one account: thread-safe, mutable between runs."""

    def __init__(self, images: list[dict[str, Any]], owner: str = DEFAULT_OWNER) -> None:
        self.owner = owner
        self._lock = threading.RLock()
        self._images: dict[str, dict[str, Any]] = {i["image_id"]: dict(i) for i in images}
        self._removed: dict[str, dict[str, Any]] = {}
        self._views: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._added = 0

    @classmethod
    def generate(
        cls, count: int, seed: int, owner: str = DEFAULT_OWNER, system_share: float = 0.15
    ) -> QingCloudCatalogue:
        return cls(generate_images(count, seed, owner, system_share), owner)

    def __len__(self) -> int:
        with self._lock:
            return len(self._images)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._images)

    def get(self, image_id: str) -> dict[str, Any] | None:
        with self._lock:
            image = self._images.get(image_id)
            return dict(image) if image else None

    def _changed(self) -> None:
        self._views.clear()

    def edit(self, image_id: str, **fields: Any) -> None:
        """Set raw fields of one image (None stores null), as a provider-side change."""
        with self._lock:
            self._images[image_id].update(fields)
            self._changed()

    def remove(self, image_id: str) -> None:
        with self._lock:
            self._removed[image_id] = self._images.pop(image_id)
            self._changed()

    def restore(self, image_id: str, **fields: Any) -> None:
        """Put a removed image back into the listing, optionally changed."""
        with self._lock:
            image = self._removed.pop(image_id)
            image.update(fields)
            self._images[image_id] = image
            self._changed()

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
        """Change the catalogue as a provider would between two syncs. Deterministic for a
        given seed, state and ``now`` (the time written into changed images; default the
        clock); returns the ids affected per kind. Each image gets at most one change."""
        rng = random.Random(seed)
        now_text = _fmt(now or datetime.now(UTC))
        out: dict[str, list[str]] = {
            k: [] for k in ("deprecate", "cease", "delete", "remove", "add", "rename")
        }
        with self._lock:
            owned = [i for i in self._images.values() if i["owner"] == self.owner]
            touched: set[str] = set()

            def pick(candidates: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
                pool = [c for c in candidates if c["image_id"] not in touched]
                chosen = rng.sample(pool, min(n, len(pool)))
                touched.update(c["image_id"] for c in chosen)
                return chosen

            for image in pick([i for i in owned if i["status"] == "available"], deprecate):
                image.update(status="deprecated", status_time=now_text)
                out["deprecate"].append(image["image_id"])
            for image in pick(
                [i for i in owned if i["status"] in ("deprecated", "deleted")], cease
            ):
                image.update(status="ceased", status_time=now_text)
                out["cease"].append(image["image_id"])
            for image in pick([i for i in owned if i["status"] != "ceased"], delete):
                image.update(status="deleted", status_time=now_text)
                out["delete"].append(image["image_id"])
            for image in pick(owned, remove):
                self._removed[image["image_id"]] = self._images.pop(image["image_id"])
                out["remove"].append(image["image_id"])
            for image in pick(owned, rename):
                image["image_name"] = f"{image['image_name']}-v{rng.randint(2, 9)}"
                image["description"] = f"rebuilt {now_text[:10]}"
                out["rename"].append(image["image_id"])
            while len(out["add"]) < add:
                image = _make_image(rng, self.owner, system_share=0.0)
                if image["image_id"] in self._images or image["image_id"] in self._removed:
                    continue
                image.update(status="available", create_time=now_text, status_time=now_text)
                self._images[image["image_id"]] = image
                out["add"].append(image["image_id"])
            self._changed()
        return out

    def listing(self, filters: tuple[tuple[str, Any], ...]) -> list[dict[str, Any]]:
        """The images matching a filter set, in catalogue order; cached until a change."""
        with self._lock:
            view = self._views.get(filters)
            if view is None:
                view = [i for i in self._images.values() if _matches(i, dict(filters))]
                self._views[filters] = view
            return view

    def shrink(self, filters: tuple[tuple[str, Any], ...]) -> None:
        """Remove the first image of a listing (shifts the offsets of every later item)."""
        with self._lock:
            view = self.listing(filters)
            if view:
                self.remove(view[0]["image_id"])


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


def _ret_code(code: int, message: str) -> Callable[[], Response]:
    return lambda: Response.json(200, {"ret_code": code, "message": message})


#: QingCloud's own faulty answers: errors travel in the body of an HTTP 200.
_FAULT_ANSWERS: dict[str, Callable[[], Response]] = {
    "throttle": _ret_code(2500, "QuotaExceeded, api request too frequently"),
    "internal": _ret_code(5000, "InternalError, please try again later"),
    "server_busy": _ret_code(5100, "ServerBusy, please try again later"),
}


class QingCloudError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class QingCloudApp:
    """The request handling of the emulator; see the module docstring for the behaviour."""

    def __init__(
        self,
        catalogue: QingCloudCatalogue,
        *,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        zones: frozenset[str] = DEFAULT_ZONES,
        clock_skew_s: float = 60.0,
        faults: Faults | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.access_key_id = access_key_id
        self._secret = secret_access_key
        self.zones = zones
        self.clock_skew_s = clock_skew_s
        self.faults = faults or Faults()
        self._mutations = 0

    def __repr__(self) -> str:
        return f"QingCloudApp(access_key_id={self.access_key_id!r}, images={len(self.catalogue)})"

    # -- App protocol ----------------------------------------------------------------------

    def mutate(self, **counts: int) -> dict[str, list[str]]:
        seed = counts.pop("seed", None)
        if seed is None:
            self._mutations += 1
            seed = self._mutations
        known = {"deprecate", "cease", "delete", "remove", "add", "rename"}
        unknown = set(counts) - known
        if unknown:
            raise ValueError(f"unknown mutation {sorted(unknown)[0]!r} (known: {sorted(known)})")
        return self.catalogue.mutate(
            seed,
            deprecate=counts.get("deprecate", 0),
            cease=counts.get("cease", 0),
            delete=counts.get("delete", 0),
            remove=counts.get("remove", 0),
            add=counts.get("add", 0),
            rename=counts.get("rename", 0),
        )

    def state(self) -> dict[str, Any]:
        return {"provider": "qingcloud", "images": len(self.catalogue)}

    def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except QingCloudError as err:
            return Response.json(200, {"ret_code": err.code, "message": err.message})

    # -- internals -------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        if request.path not in ("/iaas/", "/iaas"):
            return Response(404, b"<html><body>404 Not Found</body></html>", "text/html")
        if request.method == "GET":
            params = parse_qsl(request.raw_query, keep_blank_values=True)
        elif request.method == "POST":
            params = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        else:
            return Response(405, b"Method Not Allowed", "text/plain")
        single = dict(params)

        offset, limit = self._paging(single)
        page = offset // limit + 1
        fault, shrink = apply_faults(self.faults, page, _FAULT_ANSWERS)
        if fault is not None:
            return fault
        self._authenticate(request, params, single)

        action = single.get("action")
        if action != "DescribeImages":
            raise QingCloudError(
                1100, f"invalid action [{action}]: this emulator serves DescribeImages only"
            )
        zone = single.get("zone")
        if not zone:
            raise QingCloudError(1100, "parameter [zone] should not be empty")
        if zone not in self.zones:
            raise QingCloudError(1100, f"zone [{zone}] not found")
        filters = self._filters(params, single)
        view = self.catalogue.listing(filters)
        total = len(view)
        items = view[offset : offset + limit]
        response = Response.json(
            200,
            {
                "action": "DescribeImagesResponse",
                "image_set": items,
                "total_count": total,
                "ret_code": 0,
            },
        )
        if shrink:
            self.catalogue.shrink(filters)
        return response

    def _paging(self, single: dict[str, str]) -> tuple[int, int]:
        try:
            offset = int(single.get("offset", 0))
            limit = int(single.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise QingCloudError(
                1100, "parameter [offset] or [limit] should be an integer"
            ) from None
        if offset < 0 or limit < 1:
            raise QingCloudError(1100, "parameter [offset] or [limit] out of range")
        return offset, min(limit, MAX_LIMIT)

    def _authenticate(
        self, request: Request, params: list[tuple[str, str]], single: dict[str, str]
    ) -> None:
        for name in (
            "access_key_id",
            "time_stamp",
            "signature_method",
            "signature_version",
            "signature",
        ):
            if not single.get(name):
                raise QingCloudError(1100, f"parameter [{name}] should not be empty")
        if single["signature_method"] not in ("HmacSHA256", "HmacSHA1"):
            raise QingCloudError(1100, "invalid signature_method")
        if single["access_key_id"] != self.access_key_id:
            raise QingCloudError(1200, f"access key [{single['access_key_id']}] not found")
        _, expected = sign(params, self._secret, request.method, request.path)
        if not hmac.compare_digest(expected.encode(), single["signature"].encode()):
            raise QingCloudError(1200, "signature not matched")
        now = datetime.now(UTC)
        stamp = _parse_time(single["time_stamp"])
        if stamp is None or abs((now - stamp).total_seconds()) > self.clock_skew_s:
            raise QingCloudError(1300, f"message expired: time_stamp [{single['time_stamp']}]")
        if "expires" in single:
            expires = _parse_time(single["expires"])
            if expires is None or expires < now:
                raise QingCloudError(1300, f"message expired: expires [{single['expires']}]")

    def _filters(
        self, params: list[tuple[str, str]], single: dict[str, str]
    ) -> tuple[tuple[str, Any], ...]:
        lists: dict[str, list[str]] = {}
        for key, value in params:
            base, _, index = key.partition(".")
            if base in ("images", "status", "tags") and index.isdigit():
                lists.setdefault(base, []).append(value)
        if single.get("verbose", "0") != "0":
            raise QingCloudError(1100, "parameter [verbose] only supports 0")
        for status in lists.get("status", []):
            if status not in STATUSES:
                raise QingCloudError(1100, f"invalid status [{status}]")
        for image_id in lists.get("images", []):
            if self.catalogue.get(image_id) is None:
                raise QingCloudError(2100, f"resource [{image_id}] not found")
        f: dict[str, Any] = {k: tuple(v) for k, v in lists.items()}
        for key in (
            "processor_type",
            "os_family",
            "visibility",
            "provider",
            "owner",
            "search_word",
        ):
            if single.get(key):
                f[key] = single[key]
        if not any(k in f for k in ("images", "provider", "visibility", "owner")):
            f["owner"] = self.catalogue.owner  # no filter: the caller's own images
        return tuple(sorted(f.items()))


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
    system_share: float = 0.15,
) -> EmulatorServer:
    catalogue = QingCloudCatalogue.generate(images, seed, owner, system_share)
    app = QingCloudApp(catalogue, access_key_id=access_key_id, secret_access_key=secret_access_key)
    return EmulatorServer(app, port)


def serve(
    *,
    port: int = 8100,
    images: int = 1000,
    seed: int = 1,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    system_share: float = 0.15,
) -> None:
    """Run the emulator in the foreground until interrupted (``inventory emulate qingcloud``).

    Credentials left as None are the documented defaults."""
    access_key_id = access_key_id or DEFAULT_ACCESS_KEY_ID
    secret_access_key = secret_access_key or DEFAULT_SECRET_ACCESS_KEY
    server = make_server(
        port=port,
        images=images,
        seed=seed,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        system_share=system_share,
    )
    print(
        f"QingCloud emulator: {server.url}/iaas/ ({images} images, seed {seed}); "
        f"access key id {access_key_id}; zones {', '.join(sorted(DEFAULT_ZONES))}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
