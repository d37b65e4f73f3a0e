"""Huawei IMS OpenStack-native v1.1 emulator dialect: ``GET /v1.1/images/detail`` (Glance v1).

What it serves and accepts: docs/providers/huawei-ims-v1.md ("Emulator"); the rest is the engine's.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from inventory.emulation import Call, EmulatedSource, traits
from inventory.emulation.messages import Request, Response
from inventory.providers.fields import parse_time
from inventory.providers.huawei_common.emulator import GatewayApp, GatewayCatalogue

DEFAULT_REGION = "cn-north-4"
PUBLIC_OWNER = "b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5"  # Huawei's own tenant for public images
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
_TEXT_FILTERS = ("name", "status", "container_format", "disk_format")
SORT_KEYS = (*_TEXT_FILTERS, "size", "id", "created_at", "updated_at")
#: Glance v1's times: no zone, microseconds (the time is UTC).
_glance_time = partial(traits.utc_text, fmt="%Y-%m-%dT%H:%M:%S.%f")
_STATUSES = ("active", "queued", "saving", "killed")
#: IMS's refusals of a bad request (HTTP 400, code IMG.0001).
_BAD = {
    "limit": "limit param must be an integer",
    "negative": "limit param must be positive",
    "size": "Invalid {key} value: {value!r}",
    "since": "Unrecognized changes-since value",
    "sort_key": "Unsupported sort_key. Acceptable values: " + ", ".join(SORT_KEYS),
    "sort_dir": "Unsupported sort_dir. Acceptable values: asc, desc",
    "bad_marker": "Invalid marker",  # a marker not in the listing (e.g. deleted meanwhile)
}

Image = dict[str, Any]


def _glance_stamp(seconds: int, microsecond: int) -> str:
    """Unix seconds and a microsecond in Glance v1's form, cheaply for a big catalogue."""
    return f"{traits.iso_z(seconds)[:-1]}.{microsecond:06d}"


def _make_images(
    rng: random.Random, count: int, owner: str, public_share: float, now: datetime | None = None
) -> list[Image]:
    """``count`` images in Glance v1's shape, drawn from ``rng`` in bulk; with ``now`` new
    ones: active, created and last updated then."""
    created_at = None if now is None else int(now.timestamp())
    drawn = traits.draw_traits(rng, count, public_share, created_at)
    statuses = traits.draw_choices(rng, _STATUSES, count, (92, 2, 2, 4))
    microseconds = traits.draw_ints(rng, 0, 1_000_000, count)
    ages = traits.draw_ints(rng, 2, 30 * 86400, count)  # seconds to the last update
    sizes = traits.draw_ints(rng, 300, 20_000, count)  # MiB, of an uploaded image
    disk_formats = traits.draw_choices(rng, ("zvhd2", "zvhd2", "qcow2", "vhd", "raw"), count)
    min_rams = traits.draw_choices(rng, (0, 0, 1024, 2048), count)
    min_disks = traits.draw_choices(rng, (40, 40, 40, 50, 100), count)
    firmware = traits.draw_choices(rng, ("", "bios", "uefi"), count, (2, 1, 1))  # "": unset
    if now is not None:
        statuses = ["active"] * count
        ages = [0] * count
        microseconds = [now.microsecond] * count
    images: list[Image] = []
    for i, t in enumerate(drawn):
        image_id = traits.uuid4(rng)
        public = t.system
        status = statuses[i]
        created = _glance_stamp(t.created, microseconds[i])
        updated = _glance_stamp(t.created + ages[i], microseconds[i])
        uploaded = status == "active"
        bits = "32" if t.architecture == "i386" else "64"
        properties = {
            "__os_version": f"{t.os.label} {bits}bit", "__platform": t.os.distro.split()[0],
            "__os_type": "Windows" if t.os.platform == "windows" else "Linux", "__os_bit": bits,
            "__imagetype": "gold" if public else "private",
            "__isregistered": "true" if uploaded else "false", "virtual_env_type": "FusionCompute",
            "architecture": "arm" if t.architecture == "arm64" else "x86",
        }  # fmt: skip
        if firmware[i]:
            properties["hw_firmware_type"] = firmware[i]
        md5 = hashlib.md5(image_id.encode(), usedforsecurity=False).hexdigest()
        images.append({  # in Glance v1's order
            "status": status, "virtual_size": None, "name": t.name, "deleted": False,
            "container_format": "bare", "created_at": created, "disk_format": disk_formats[i],
            "updated_at": updated, "properties": properties,
            "owner": PUBLIC_OWNER if public else owner, "protected": public,
            "min_ram": min_rams[i], "checksum": md5 if uploaded else None,
            "min_disk": min_disks[i], "is_public": public, "deleted_at": None,
            "id": image_id, "size": sizes[i] * 1024 * 1024 if uploaded else None,
        })  # fmt: skip
    return images


def generate_images(count: int, seed: int, owner: str, public_share: float = 0.15) -> list[Image]:
    """A deterministic catalogue: the same arguments give the same images."""
    with traits.paused_gc():
        return _make_images(random.Random(seed), count, owner, public_share)


def _listed(image: Mapping[str, Any]) -> bool:
    return bool((image.get("properties") or {}).get("__os_type") != "Windows")


def _deleted(_image: Image, now: datetime) -> Image:
    moment = _glance_time(now)
    return {"status": "deleted", "deleted": True, "deleted_at": moment, "updated_at": moment}


class ImsCatalogue(GatewayCatalogue):
    """One project's images. Mutations change its own listed ones; Glance has no deprecated
    or ceased state, so ``deprecate`` and ``cease`` change nothing."""

    transitions = {"delete": (lambda _image: True, _deleted)}
    draw = staticmethod(generate_images)
    make = staticmethod(_make_images)
    stamp = staticmethod(_glance_time)

    def owned(self, image: Image) -> bool:
        return image["owner"] == self.owner and _listed(image)

    def listing(
        self, filters: tuple[Any, ...] = (), sort_key: str = "created_at", sort_dir: str = "desc"
    ) -> Sequence[Image]:
        """The images the project sees, filtered and sorted as Glance does (cached; read only)."""
        f = dict(filters)

        def key(image: Image) -> tuple[Any, ...]:
            value = image.get(sort_key)  # nulls first, as PostgreSQL-backed Glance sorts
            text = value or 0 if sort_key == "size" else str(value or "")
            return (value is not None, text, image["created_at"], image["id"])

        def build(images: Iterable[Image]) -> list[Image]:
            mine = (i for i in images if i["is_public"] or i["owner"] == self.owner)
            view = [i for i in mine if _listed(i) and _matches(i, f)]
            return sorted(view, key=key, reverse=sort_dir == "desc")

        return self.view((filters, sort_key, sort_dir), build)

    def drop(self, image_id: str) -> None:
        # Glance deletes rather than purges: the image still shows with changes-since.
        with self._lock:
            if image_id in self._images:
                self.edit(image_id, status="deleted", deleted=True)


def _matches(image: Image, f: Image) -> bool:
    since = f.get("changes-since")
    if since is None and image.get("deleted"):
        return False
    if since is not None and not ((t := parse_time(image.get("updated_at"))) and t > since):
        return False
    if any(key in f and image.get(key) != f[key] for key in _TEXT_FILTERS):
        return False
    size = image.get("size")
    if "size_min" in f and (size is None or size < f["size_min"]):
        return False
    return not ("size_max" in f and (size is None or size > f["size_max"]))


class ImsApp(GatewayApp):
    """IMS v1.1 behind Huawei's API gateway: the gateway's and IMS's own error shapes."""

    provider = "huawei-ims-v1"
    catalogue_class = ImsCatalogue
    paging = "marker"
    # The gateway's refusals, and IMS's own of a bad request: HTTP 400, code IMG.0001.
    refusals = {**GatewayApp.refusals, **{key: (400, "IMG.0001", msg) for key, msg in _BAD.items()}}
    region = DEFAULT_REGION  # a token must be scoped to this region's project
    id_header = "X-Openstack-Request-Id"
    catalogue: ImsCatalogue

    def accept(self, key_id: str | None, secret: str | None) -> None:
        # No AK/SK on this API: the IAM user name and password to accept.
        self.iam.accept(key_id, secret)

    def credentials(self) -> dict[str, str]:
        return {"username": self.iam.username, "password": self.iam.password}

    def source_options(self, url: str) -> dict[str, Any]:
        # The emulator answers Keystone's POST /v3/auth/tokens on its own port too.
        return {"domain_name": self.iam.domain_name, "iam_endpoint": url}

    def banner(self) -> str:
        return f"region {self.region}; {super().banner()}"

    def request_id(self) -> str:
        return f"req-{uuid.uuid4()}"

    def envelope(self, status: int, code: Any, message: str) -> Response:
        if str(code).startswith("APIGW."):  # the gateway's own refusal
            return super().envelope(status, code, message)
        return self.reply(status, {"error": {"code": code, "message": message}})

    def read(self, request: Request) -> Call:
        # As IMS does: limit and filters are checked before the token, the marker after it.
        self.check(request.path.rstrip("/") == "/v1.1/images/detail", "path")
        self.check(request.method == "GET", "path")  # the gateway's 404 for a wrong verb too
        single = dict(parse_qsl(request.raw_query, keep_blank_values=True))
        limit = self.integer(single.get("limit", str(DEFAULT_LIMIT)), "limit")
        self.check(limit >= 0, "negative")
        f: Image = {k: single[k] for k in _TEXT_FILTERS if k in single}
        for k in ("size_min", "size_max"):
            if k in single:
                f[k] = self.integer(single[k], "size", key=k, value=single[k])
        if "changes-since" in single:
            f["changes-since"] = parse_time(single["changes-since"])
            self.check(f["changes-since"], "since")
        sort_key, sort_dir = single.get("sort_key", "created_at"), single.get("sort_dir", "desc")
        self.check(sort_key in SORT_KEYS, "sort_key")
        self.check(sort_dir in ("asc", "desc"), "sort_dir")
        selection = (tuple(sorted(f.items())), sort_key, sort_dir)
        limit = max(1, min(limit, MAX_LIMIT))
        return Call(limit=limit, marker=single.get("marker"), selection=selection)

    def page(self, items: list[Image], total: int, call: Call) -> Response:
        return self.reply(200, {"images": items})


EMULATED = EmulatedSource(ImsApp, "Huawei IMS v1.1", ("region", "cn-north-4"), path="")
make_server = EMULATED.make_server
