"""Tencent Cloud CVM image dict -> ImageRecord.

The status table below is the whole mapping of ``ImageState``; docs/normalization.md shows
it beside the other providers'. Two Tencent quirks shape it:

- there is no deprecated *state*: deprecation is the separate boolean ``ImageDeprecated``
  (a newer field). ``ImageDeprecated: true`` makes the status ``deprecated`` whatever the
  state says, while ``raw_status`` keeps the raw ``ImageState`` (e.g. ``NORMAL``);
- there is no deleted or ceased state either: a deleted image simply leaves the listing,
  which the store records as ``gone`` after a complete run.

Left out of the fingerprint on purpose (volatile, kept only in ``raw``): ``SyncPercent``
(moves while an image is copied between regions), ``CdcCacheStatus`` (the cache state of a
CDC cluster, which changes without the image changing). Fields that are durable but have no
ImageRecord column (``SnapshotSet``, ``IsSupportCloudinit``, ``LicenseType``,
``ImageFamily``) are kept in ``raw`` too; a change to them alone is not reported.
"""

from __future__ import annotations

from typing import Any

from inventory.providers.fields import (
    optional_decimal,
    optional_str,
    optional_time,
    required_str,
)
from inventory.records import ImageRecord, ImageStatus

STATUS_MAP: dict[str, ImageStatus] = {
    "CREATING": ImageStatus.PENDING,
    "NORMAL": ImageStatus.AVAILABLE,
    "CREATEFAILED": ImageStatus.FAILED,
    # Being copied into this region from another one: listed but not launchable yet.
    "SYNCING": ImageStatus.PENDING,
    "IMPORTING": ImageStatus.PENDING,
    "IMPORTFAILED": ImageStatus.FAILED,
}

#: ``ImageType`` is who may see the image, i.e. the visibility.
VISIBILITY_MAP: dict[str, str] = {
    "PUBLIC_IMAGE": "public",
    "PRIVATE_IMAGE": "private",
    "SHARED_IMAGE": "shared",
}

#: Tencent writes ``arm`` for its 64-bit ARM images; the other names are already the
#: usual ones (``uname -m`` spelling).
ARCHITECTURE_MAP: dict[str, str] = {"x86_64": "x86_64", "arm": "aarch64", "i386": "i386"}

#: ``Platform`` is the OS family (``CentOS``, ``TencentOS``...); these prefixes (lower-case)
#: say which are not Linux. Anything else Tencent lists as a CVM platform is a Linux.
_NON_LINUX_PLATFORMS: dict[str, str] = {"windows": "windows", "freebsd": "freebsd"}

#: The field of a listed image that holds its id (what is stored as provider_image_id).
ID_FIELD = "ImageId"


def normalize(raw: dict[str, Any]) -> ImageRecord:
    raw_status = required_str(raw, "ImageState")
    status = ImageStatus.mapped(STATUS_MAP, raw_status)
    if raw.get("ImageDeprecated") is True:
        status = ImageStatus.DEPRECATED
    family = optional_str(raw, "Platform")
    image_type = optional_str(raw, "ImageType")
    architecture = optional_str(raw, "Architecture")
    return ImageRecord(
        provider_image_id=required_str(raw, ID_FIELD),
        status=status,
        raw_status=raw_status,
        name=optional_str(raw, "ImageName"),
        description=optional_str(raw, "ImageDescription"),
        os_family=family.lower() if family else None,
        os_name=optional_str(raw, "OsName"),
        platform=_platform(family),
        architecture=ARCHITECTURE_MAP.get(architecture, architecture) if architecture else None,
        size_gb=optional_decimal(raw, "ImageSize"),
        visibility=VISIBILITY_MAP.get(image_type, image_type.lower()) if image_type else None,
        # The account uin for private images; null for Tencent's own public images.
        owner=optional_str(raw, "ImageCreator"),
        image_type=optional_str(raw, "ImageSource", lower=True),
        provider_created_at=optional_time(raw, "CreatedTime"),
        tags=_tags(raw.get("Tags")),
        raw=raw,
    )


def _platform(family: str | None) -> str | None:
    if not family:
        return None
    lowered = family.lower()
    for prefix, platform in _NON_LINUX_PLATFORMS.items():
        if lowered.startswith(prefix):
            return platform
    return "linux"


def _tags(value: object) -> dict[str, str]:
    """Tencent tags are ``[{"Key": ..., "Value": ...}]``; a tag without a value maps to ""."""
    tags: dict[str, str] = {}
    if not isinstance(value, list):
        return tags
    for tag in value:
        if not isinstance(tag, dict):
            continue
        key = tag.get("Key")
        if isinstance(key, str) and key:
            tag_value = tag.get("Value")
            tags[key] = tag_value if isinstance(tag_value, str) else ""
    return tags
