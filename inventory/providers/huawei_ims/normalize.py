"""Huawei IMS v1.1 (Glance v1) image dict -> ImageRecord.

The status table below is the whole mapping. Huawei documents queued, saving, active,
killed and deleted; the others are upstream Glance values a Glance-backed listing can show
(``pending_delete`` after a delayed delete, ``deactivated`` after an admin deactivation,
``uploading``/``importing`` from the v2 import flow), mapped so they are not "unknown".

The ``deleted`` flag wins over ``status`` (Glance v1 sets it in the same row update as the
deletion; deleted images are listed only with ``changes-since``), and ``raw_status`` keeps
what ``status`` said. An ``active`` image whose ``properties.__isregistered`` is
``"false"`` is not usable yet, so it is ``pending``.

Sizes: ``size`` is the image file in bytes (null until uploaded), stored as ``size_gb`` in
GB of 2**30 bytes; ``min_disk`` (GB) is the smallest system disk, ``min_disk_gb``.
``properties.__os_bit`` (``"64"``/``"32"``) is the word size.

Times come without a zone (``2016-05-22T06:04:20.425843``); Glance writes UTC, so a naive
time is read as UTC. Huawei's own attributes (``__os_version``, ``__platform``,
``__imagetype``...) live in ``properties``, all as strings.

Left out of the fingerprint on purpose (volatile, kept in ``raw`` only): ``updated_at``
(moves with any metadata write), ``deleted_at``, ``checksum`` and ``virtual_size``
(they describe the stored file, which Huawei may re-store, not the image's identity).
"""

from __future__ import annotations

from typing import Any

from inventory.providers.fields import (
    optional_decimal,
    optional_gb_from_bytes,
    optional_str,
    optional_time,
    optional_word_size,
    required_str,
)
from inventory.providers.huawei_common.registration import registered_status
from inventory.records import ImageRecord, ImageStatus

STATUS_MAP: dict[str, ImageStatus] = {
    "queued": ImageStatus.PENDING,  # record created, no data yet
    "saving": ImageStatus.PENDING,  # data being uploaded
    "uploading": ImageStatus.PENDING,  # upstream Glance import flow
    "importing": ImageStatus.PENDING,  # upstream Glance import flow
    "active": ImageStatus.AVAILABLE,
    "deactivated": ImageStatus.SUSPENDED,  # upstream Glance: admin may reactivate
    "killed": ImageStatus.FAILED,  # upload or processing failed
    "deleted": ImageStatus.DELETED,
    "pending_delete": ImageStatus.DELETED,  # upstream Glance: deleted, data not yet scrubbed
}

#: IMS writes ``architecture`` as x86/arm; upstream Glance uses the kernel's names.
ARCHITECTURE_MAP: dict[str, str] = {
    "x86": "x86_64",
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "arm": "aarch64",
    "arm64": "aarch64",
    "aarch64": "aarch64",
}

#: The field of a listed image that holds its id (what is stored as provider_image_id).
ID_FIELD = "id"


def normalize(raw: dict[str, Any]) -> ImageRecord:
    raw_status = required_str(raw, "status")
    status = ImageStatus.mapped(STATUS_MAP, raw_status)
    props = raw.get("properties")
    properties: dict[str, Any] = props if isinstance(props, dict) else {}
    status = registered_status(status, properties.get("__isregistered"))
    if raw.get("deleted") is True:
        status = ImageStatus.DELETED
    is_public = raw.get("is_public")
    return ImageRecord(
        provider_image_id=required_str(raw, ID_FIELD),
        status=status,
        raw_status=raw_status,
        name=optional_str(raw, "name"),
        description=optional_str(properties, "__description"),
        os_family=optional_str(properties, "__platform", lower=True),
        os_name=optional_str(properties, "__os_version"),
        platform=optional_str(properties, "__os_type", lower=True),
        architecture=_architecture(properties),
        word_size=optional_word_size(properties, "__os_bit"),
        size_gb=optional_gb_from_bytes(raw, "size"),  # the image file, in bytes
        min_disk_gb=optional_decimal(raw, "min_disk"),
        visibility={True: "public", False: "private"}.get(is_public)
        if isinstance(is_public, bool)
        else None,
        owner=optional_str(raw, "owner"),
        image_type=optional_str(properties, "__imagetype", lower=True),
        provider_created_at=optional_time(raw, "created_at"),
        raw=raw,
    )


def _architecture(properties: dict[str, Any]) -> str | None:
    """``properties.architecture`` mapped, else ``__support_arm``; unknown stays None.

    Unlike IEC, a v1.1 image may carry no Huawei attributes at all (the doc's own sample
    has empty properties), so a missing ARM flag does not prove x86 here.
    """
    arch = optional_str(properties, "architecture")
    if arch:
        return ARCHITECTURE_MAP.get(arch.lower(), arch.lower())
    if properties.get("__support_arm") == "true":
        return "aarch64"
    return None
