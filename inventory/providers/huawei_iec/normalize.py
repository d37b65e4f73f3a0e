"""Huawei IEC image dict -> ImageRecord.

The status vocabulary is Glance's; the table below is the whole mapping. IEC may still list
a deleted image, with ``deleted: true`` and ``deleted_at``: the ``deleted`` flag wins over
``status`` (the flag is set in the same database write as the deletion, while a status
string can lag), and ``raw_status`` keeps what ``status`` said. Huawei documents no
"deprecated" state for IEC. An ``active`` image with ``__isregistered: false`` is not
usable yet, so it is ``pending`` (:mod:`inventory.providers.huawei_common.registration`).

``min_disk`` (GB) is the smallest system disk, stored as ``min_disk_gb``; IEC gives no size
of the image itself, so ``size_gb`` stays null.

Left out of the fingerprint on purpose (volatile, kept in ``raw`` only): ``updated_at``
(moves with any metadata write), ``relation_job_id`` (the id of the last job that touched
the image), ``deleted_at``. ``self`` and the ``__support_*`` capability flags are durable
but have no ImageRecord field; they stay in ``raw`` too.
"""

from __future__ import annotations

from typing import Any

from inventory.providers.fields import (
    optional_decimal,
    optional_str,
    optional_time,
    required_str,
)
from inventory.providers.huawei_common.registration import registered_status
from inventory.records import ImageRecord, ImageStatus

STATUS_MAP: dict[str, ImageStatus] = {
    "queued": ImageStatus.PENDING,  # metadata created, waiting for the image file
    "saving": ImageStatus.PENDING,  # file being uploaded to storage
    "active": ImageStatus.AVAILABLE,
    "killed": ImageStatus.FAILED,  # upload failed
    "deleted": ImageStatus.DELETED,  # still listed, with deleted: true
}

#: The field of a listed image that holds its id (what is stored as provider_image_id).
ID_FIELD = "id"


def normalize(raw: dict[str, Any]) -> ImageRecord:
    raw_status = required_str(raw, "status")
    status = ImageStatus.mapped(STATUS_MAP, raw_status)
    status = registered_status(status, raw.get("__isregistered"))
    if raw.get("deleted") is True:
        status = ImageStatus.DELETED
    return ImageRecord(
        provider_image_id=required_str(raw, ID_FIELD),
        status=status,
        raw_status=raw_status,
        name=optional_str(raw, "name"),
        description=None,  # IEC images carry no description
        os_family=optional_str(raw, "__platform", lower=True),
        os_name=optional_str(raw, "__os_version"),
        platform=optional_str(raw, "__os_type", lower=True),
        # __support_arm is present (as "true") only on ARM images; absent means x86.
        architecture="aarch64" if raw.get("__support_arm") in ("true", True) else "x86_64",
        min_disk_gb=optional_decimal(raw, "min_disk"),  # IEC lists no size of its own
        visibility=optional_str(raw, "visibility", lower=True),
        owner=optional_str(raw, "owner"),
        image_type=optional_str(raw, "__imagetype", lower=True),
        provider_created_at=optional_time(raw, "created_at"),
        raw=raw,
    )
