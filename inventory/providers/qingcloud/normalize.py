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
    optional_word_size,
    required_str,
)
from inventory.records import ImageRecord, ImageStatus

#: ``architecture`` is not on the DescribeImages page, but QingCloud's Go SDK models it on
#: an image; where it is sent, these spellings map to the usual (``uname -m``) names.
ARCHITECTURE_MAP: dict[str, str] = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "i386": "i386",
    "i686": "i386",
}

STATUS_MAP: dict[str, ImageStatus] = {
    "pending": ImageStatus.PENDING,
    "available": ImageStatus.AVAILABLE,
    "deprecated": ImageStatus.DEPRECATED,
    "suspended": ImageStatus.SUSPENDED,
    "deleted": ImageStatus.DELETED,
    "ceased": ImageStatus.CEASED,
}

#: The field of a listed image that holds its id (what is stored as provider_image_id).
ID_FIELD = "image_id"


def normalize(raw: dict[str, Any]) -> ImageRecord:
    raw_status = required_str(raw, "status")
    status = ImageStatus.mapped(STATUS_MAP, raw_status)
    return ImageRecord(
        provider_image_id=required_str(raw, ID_FIELD),
        status=status,
        raw_status=raw_status,
        name=optional_str(raw, "image_name"),
        description=optional_str(raw, "description"),
        os_family=optional_str(raw, "os_family", lower=True),
        os_name=optional_str(raw, "image_name") if raw.get("provider") == "system" else None,
        platform=optional_str(raw, "platform", lower=True),
        # processor_type (64bit/32bit) is the word size, not the instruction set: an ARM
        # image is "64bit" too, so the architecture is only what the image itself says.
        architecture=_architecture(raw),
        word_size=optional_word_size(raw, "processor_type"),
        size_gb=optional_decimal(raw, "size"),
        visibility=optional_str(raw, "visibility", lower=True),
        owner=optional_str(raw, "owner"),
        image_type=optional_str(raw, "provider", lower=True),
        provider_created_at=optional_time(raw, "create_time"),
        tags=_tags(raw.get("tags")),
        raw=raw,
    )


def _architecture(raw: dict[str, Any]) -> str | None:
    arch = optional_str(raw, "architecture", lower=True)
    return ARCHITECTURE_MAP.get(arch, arch) if arch else None


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
