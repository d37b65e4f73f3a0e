"""QingCloud image dict -> ImageRecord.

The status table below is the whole mapping; docs/normalization.md shows it beside the other
providers'. ``deleted`` is recoverable on QingCloud (the image may still be listed for a
while), ``ceased`` is destroyed for good, so they stay distinct.

Left out of the fingerprint on purpose (volatile): ``status_time`` (moves with every status
transition, including in-flight ones), ``transition_status`` (an operation in progress,
not a state), ``sub_code`` (undocumented). They stay in ``raw``.
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
    "pending": ImageStatus.PENDING,
    "available": ImageStatus.AVAILABLE,
    "deprecated": ImageStatus.DEPRECATED,
    "suspended": ImageStatus.SUSPENDED,
    "deleted": ImageStatus.DELETED,
    "ceased": ImageStatus.CEASED,
}

#: ``processor_type`` names the word size, not the ISA; QingCloud's x86 images are the
#: only ones it documents, so 64bit/32bit map to the usual architecture names.
ARCHITECTURE_MAP: dict[str, str] = {"64bit": "x86_64", "32bit": "i386"}


def normalize(raw: dict[str, Any]) -> ImageRecord:
    raw_status = required_str(raw, "status")
    status = ImageStatus.mapped(STATUS_MAP, raw_status)
    processor = optional_str(raw, "processor_type")
    return ImageRecord(
        provider_image_id=required_str(raw, "image_id"),
        status=status,
        raw_status=raw_status,
        name=optional_str(raw, "image_name"),
        description=optional_str(raw, "description"),
        os_family=optional_str(raw, "os_family", lower=True),
        os_name=optional_str(raw, "image_name") if raw.get("provider") == "system" else None,
        platform=optional_str(raw, "platform", lower=True),
        architecture=ARCHITECTURE_MAP.get(processor, processor) if processor else None,
        size_gb=optional_decimal(raw, "size"),
        visibility=optional_str(raw, "visibility", lower=True),
        owner=optional_str(raw, "owner"),
        image_type=optional_str(raw, "provider", lower=True),
        provider_created_at=optional_time(raw, "create_time"),
        tags=_tags(raw.get("tags")),
        raw=raw,
    )


def _tags(value: object) -> dict[str, str]:
    """QingCloud tags are objects ``{tag_id, tag_key, tag_name, tag_value, ...}``.

    The key is ``tag_key`` where set, else ``tag_name`` (older tags have only a name);
    a tag without a value maps to "".
    """
    tags: dict[str, str] = {}
    if not isinstance(value, list):
        return tags
    for tag in value:
        if not isinstance(tag, dict):
            continue
        key = tag.get("tag_key") or tag.get("tag_name") or tag.get("tag_id")
        if isinstance(key, str) and key:
            tag_value = tag.get("tag_value")
            tags[key] = tag_value if isinstance(tag_value, str) else ""
    return tags
