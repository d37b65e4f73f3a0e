"""Huawei's ``__isregistered`` image attribute, read alike by the IEC and IMS normalizers."""

from __future__ import annotations

from inventory.records import ImageStatus


def registered_status(status: ImageStatus, flag: object) -> ImageStatus:
    """``status`` as Huawei means it: an image is usable only when it is active *and*
    registered, so an ``active`` image whose ``__isregistered`` is false (IEC sends a
    boolean, IMS the string ``"false"``) is not usable yet: ``pending``. A missing flag
    changes nothing: public images and plain Glance images carry none."""
    if status is ImageStatus.AVAILABLE and flag in (False, "false", "False", "FALSE"):
        return ImageStatus.PENDING
    return status
