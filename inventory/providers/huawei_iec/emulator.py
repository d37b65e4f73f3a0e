"""Huawei Cloud IEC ListImages emulator dialect: AK/SK or IAM token, offset paging, error_code.

What it serves and accepts: docs/providers/huawei-iec.md ("Emulator"); the rest is the engine's.
"""

from __future__ import annotations

import hmac
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from inventory.emulation import Call, EmulatedSource, traits
from inventory.emulation.messages import Request, Response
from inventory.providers.huawei_common import signer
from inventory.providers.huawei_common.emulator import IAM_REFUSED, GatewayApp, GatewayCatalogue

DEFAULT_ACCESS_KEY_ID = "HWEMULATORACCESSKEY01"
DEFAULT_SECRET_ACCESS_KEY = "emulator-huawei-secret-access-key"  # noqa: S105 - documented
#: Private images belong to the account's project (IEC reports a tenant id as owner).
DEFAULT_OWNER = GatewayCatalogue.default_owner
GOLD_OWNER = "b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5"  # Huawei's own tenant for public images
MAX_LIMIT = 500
STATUSES = ("queued", "saving", "active", "killed", "deleted")
SORT_KEYS = ("name", "status", "disk_format", "created_at")
_FLAGS = "kvm kvm_ascend_310 kvm_hi1822_hiovs arm gpu_t4 amd"  # __support_<flag>: only ever "true"

Image = dict[str, Any]
Filters = tuple[tuple[str, str], ...]


def _make_images(
    rng: random.Random, count: int, owner: str, gold_share: float, now: datetime | None = None
) -> list[Image]:
    """``count`` images in ListImages' shape, drawn from ``rng`` in bulk; with ``now`` new
    ones: active, created and last updated then (to the second)."""
    created_at = None if now is None else int(now.timestamp())
    drawn = traits.draw_traits(rng, count, gold_share, created_at)
    statuses = traits.draw_choices(rng, STATUSES, count, (2, 2, 88, 3, 5))
    ages = traits.draw_ints(rng, 180, 30 * 86400, count)  # seconds to the last update
    min_disks = traits.draw_choices(rng, (40, 40, 40, 50, 100), count)
    min_rams = traits.draw_choices(rng, (0, 0, 1024, 2048), count)
    firmware = traits.draw_choices(rng, ("", "bios", "uefi"), count, (30, 35, 35))  # "": unset
    gpu = traits.draw_choices(rng, (False, True), count, (95, 5))
    if created_at is not None:
        statuses = ["active"] * count
        ages = [0] * count
    images: list[Image] = []
    for i, t in enumerate(drawn):
        image_id = traits.uuid4(rng)
        gold = t.system
        status = statuses[i]
        updated = traits.iso_z(t.created + ages[i])
        deleted = status == "deleted"
        bits = "32bit" if t.architecture == "i386" else "64bit"
        image: Image = {
            "id": image_id, "name": t.name, "status": status, "disk_format": "zvhd2",
            "min_disk": min_disks[i], "min_ram": min_rams[i],
            "owner": GOLD_OWNER if gold else owner, "protected": gold,
            "visibility": "public" if gold else "private",
            "created_at": traits.iso_z(t.created), "updated_at": updated,
            "self": f"/v1/self/{image_id}", "deleted": deleted,
            "virtual_env_type": "FusionCompute", "deleted_at": updated if deleted else "",
            "relation_job_id": "" if gold else f"ff80808{rng.getrandbits(100):025x}",
            "__imagetype": "gold" if gold else "private", "__platform": t.os.distro.split()[0],
            "__os_type": "Windows" if t.os.platform == "windows" else "Linux",
            "__os_version": f"{t.os.label} {bits}", "__isregistered": status == "active",
            "__support_kvm": "true",
        }  # fmt: skip
        flags = {"__support_arm": t.architecture == "arm64", "__support_gpu_t4": gpu[i]}
        image.update((flag, "true") for flag, supported in flags.items() if supported)
        if firmware[i]:
            image["hw_firmware_type"] = firmware[i]
        if not gold:
            image["data_source"] = f"instance:{traits.uuid4(rng)}"
        images.append(image)
    return images


def generate_images(
    count: int, seed: int, owner: str = DEFAULT_OWNER, gold_share: float = 0.15
) -> list[Image]:
    """A deterministic catalogue: the same arguments give the same images."""
    with traits.paused_gc():
        return _make_images(random.Random(seed), count, owner, gold_share)


def _deleted(_image: Image, now: datetime) -> Image:
    at = traits.utc_text(now)
    return dict(status="deleted", deleted=True, deleted_at=at, updated_at=at, __isregistered=False)


class IecCatalogue(GatewayCatalogue):
    """One account's IEC images; only its private ones change. IEC has no deprecated or
    destroyed-for-good state, so ``deprecate`` and ``cease`` change nothing."""

    transitions = {"delete": (lambda i: i["status"] != "deleted", _deleted)}
    draw = staticmethod(generate_images)
    make = staticmethod(_make_images)
    stamp = staticmethod(traits.utc_text)

    def owned(self, image: Image) -> bool:
        return bool(image["owner"] == self.owner)

    def listing(
        self, filters: Filters = (), sort_key: str = "created_at", sort_dir: str = "desc"
    ) -> Sequence[Image]:
        """Public images and the account's, filtered and sorted as the API does (cached)."""

        def build(images: Iterable[Image]) -> Sequence[Image]:
            mine = (i for i in images if i["visibility"] == "public" or i["owner"] == self.owner)
            view = [i for i in mine if all(_text(i.get(k)) == v for k, v in filters)]
            view.sort(key=lambda i: (str(i.get(sort_key) or ""), i["id"]))
            return tuple(reversed(view) if sort_dir == "desc" else view)

        return self.view((filters, sort_key, sort_dir), build)


def _text(value: object) -> str:
    """A field as a query value compares with it: booleans as "true"/"false", null as ""."""
    return str(value).lower() if isinstance(value, bool) else "" if value is None else str(value)


#: Filters that compare to one attribute, and the values they accept (None = any).
_FILTERS: dict[str, tuple[str, ...] | None] = {
    "__imagetype": ("gold", "private"), "__isregistered": ("true", "false"),
    "__os_type": ("Linux", "Windows", "Other"), "__support_kvm_gpu_type": ("V100_vGPU", "RTX5000"),
    "id": None, "name": None, "protected": ("true", "false"), "status": STATUSES,
    "visibility": ("public", "private"), "virtual_env_type": ("FusionCompute",),
    **{f"__support_{flag}": ("true",) for flag in _FLAGS.split()},
}  # fmt: skip
#: IEC's refusals besides the gateway's: (HTTP status, error_code, error_msg; {} a detail).
ERRORS: dict[str, tuple[int, str, str]] = {
    "not_int": (400, "IEC.0001", "offset and limit must be integers"),
    "paging": (400, "IEC.0001", "offset must be >= 0 and limit a positive integer"),
    "filter": (400, "IEC.0001", "invalid value of parameter {}"),
    "sort": (400, "IEC.0001", "invalid sort_key or sort_dir"),
    "scheme": (401, "APIGW.0301", IAM_REFUSED + "unsupported authorization scheme"),
    "ak": (401, "APIGW.0301", IAM_REFUSED + "ak not found"),
    "unsigned": (401, "APIGW.0301", IAM_REFUSED + "host and x-sdk-date must be signed"),
    "absent": (401, "APIGW.0301", IAM_REFUSED + "signed header {} absent"),
    "date": (401, "APIGW.0303", "Incorrect app authentication information: bad x-sdk-date"),
    "expired": (401, "APIGW.0303", "Incorrect app authentication information: signature expired"),
    "signature": (401, "APIGW.0301", IAM_REFUSED + "verify aksk signature fail"),
    "domain": (401, "APIGW.0301", IAM_REFUSED + "x-domain-id missing or not this account's"),
}


class IecApp(GatewayApp):
    """ListImages behind the API gateway: gateway and IEC errors in one error_code shape."""

    provider = "huawei-iec"
    catalogue_class = IecCatalogue
    # AK/SK signing for the demo (the IMS emulator shows the IAM token flow).
    default_key = dict(
        access_key_id=DEFAULT_ACCESS_KEY_ID, secret_access_key=DEFAULT_SECRET_ACCESS_KEY
    )
    clock_skew_s = 15 * 60.0  # beyond it the gateway answers APIGW.0303
    refusals = {**GatewayApp.refusals, **ERRORS}
    catalogue: IecCatalogue

    def source_options(self, url: str) -> dict[str, Any]:
        return {"domain_id": self.iam.domain_id}

    def banner(self) -> str:
        keys = f"access key id {self.key_id}, X-Domain-Id {self.iam.domain_id}"
        return f"GET /v1/images; {keys}; {super().banner()}"

    def read(self, request: Request) -> Call:
        """Route, and read the paging strictly (refused before any fault)."""
        self.check(request.path.rstrip("/") == "/v1/images", "path")
        self.check(request.method == "GET", "verb")
        # As the gateway reads it: literally, so a '+' is a plus sign, never a space.
        pairs = (item.partition("=") for item in request.raw_query.split("&") if item)
        params = [(unquote(name), unquote(value)) for name, _, value in pairs]
        single = dict(params)
        offset = self.integer(single.get("offset", "0"), "not_int")
        limit = self.integer(single.get("limit", str(MAX_LIMIT)), "not_int")
        self.check(offset >= 0 and limit >= 1, "paging")
        return Call(offset=offset, limit=min(limit, MAX_LIMIT), extra=params)

    def select(self, request: Request, call: Call) -> Call:
        single = dict(call.extra)
        for key, allowed in _FILTERS.items():
            self.check(key not in single or not allowed or single[key] in allowed, "filter", key)
        filters = tuple(sorted((k, v) for k, v in single.items() if k in _FILTERS))
        sort_key, sort_dir = single.get("sort_key", "created_at"), single.get("sort_dir", "desc")
        self.check(sort_key in SORT_KEYS and sort_dir in ("asc", "desc"), "sort")
        return replace(call, selection=(filters, sort_key, sort_dir))

    def page(self, items: list[Image], total: int, call: Call) -> Response:
        return self.reply(200, {"images": items, "total": total})

    def authenticate(self, request: Request, call: Call) -> None:
        authorization = request.headers.get("authorization")
        if not authorization:  # not signed: the gateway's IAM token check
            super().authenticate(request, call)
            return
        parts = signer.parse_authorization(authorization) or {}
        self.check(parts, "scheme")
        self.check(parts["Access"] == self.key_id, "ak")
        names = parts["SignedHeaders"].split(";")
        self.check("host" in names and "x-sdk-date" in names, "unsigned")
        missing = [n for n in names if n not in request.headers]
        self.check(not missing, "absent", *missing[:1])
        date = request.headers["x-sdk-date"]
        skew = abs((self.now() - self.moment(date, signer.DATE_FORMAT, "date")).total_seconds())
        self.check(skew <= self.clock_skew_s, "expired")
        payload = request.headers.get("x-sdk-content-sha256")
        body_sha = payload if payload == signer.UNSIGNED_PAYLOAD else signer.body_hash(request.body)
        headers = {name: request.headers[name] for name in names}
        path = unquote(request.path)
        canonical, _ = signer.canonical_request(request.method, path, call.extra, headers, body_sha)
        sig = signer.signature(self._secret, signer.string_to_sign(date, canonical))
        self.check(hmac.compare_digest(sig.encode(), parts["Signature"].encode()), "signature")
        # IEC is account-level: the gateway needs the account id next to a global AK/SK.
        self.check(request.headers.get("x-domain-id") == self.iam.domain_id, "domain")


EMULATED = EmulatedSource(IecApp, "Huawei IEC", ("region", "cn-north-4"))
make_server = EMULATED.make_server
