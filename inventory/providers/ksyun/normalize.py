"""KSyun KEC image dict (one ``ImagesSet`` item) -> ImageRecord.

The status table below is the whole mapping. KSyun's DescribeImages page shows one
``ImageState`` value, ``active`` (usable); the only other one KSyun's own tooling and its
integrators act on is ``creating``: Kingsoft's Packer plugin waits for an image to leave it
for ``active``, and Cloudpods' KSyun driver maps it to "saving". Both are in the table.
Every other value (none is documented; a failed build's is not) is stored as ``unknown``
with the raw value kept, rather than guessed at (an alert rule whose ``statuses`` include
``unknown`` reports an image that turns to one).
Deleted images are simply not listed by KEC, so no value maps to ``deleted``/``ceased``;
an image that leaves a complete listing becomes ``gone`` in the store.

Fingerprinted (durable) fields come from ``ImageId``, ``ImageState``, ``Name``,
``Platform``, ``Architecture``, ``SysDisk``, ``IsPublic``, ``Type`` and ``CreationDate``.

Left out of the fingerprint on purpose (volatile, kept only in ``raw``): ``Progress`` (task
progress, a string that moves while an image is built or copied), ``ExportingStatus`` and
``ExportingFinishedTime`` (the state of an export task, not of the image), ``FastBoot``
(whether the image is pre-warmed, a cache state KSyun changes on its own). The other
documented fields (``InstanceId``, ``ContainerFormat``, ``InstantAccess``, ``IsNpe``,
``UserCategory``, ``ImageSource``, ``CloudInitSupport``, ``Ipv6Support``, ``IsModifyType``,
``OriginalImageId``, ``IsCloudMarket``, ``RealImageId``, ``OnlineExpansion``, ``ImageMode``,
``SnapshotSet``) have no column in the common schema; they too live in ``raw``.
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
    "creating": ImageStatus.PENDING,  # being built; Packer waits for it to turn active
    "active": ImageStatus.AVAILABLE,
}

#: ``Platform`` is an OS version string such as ``centos-6.5``; its first word is the OS
#: family. These families are Linux distributions (for the ``platform`` column); a family
#: outside the table and not ``windows...`` leaves ``platform`` null rather than guessed.
LINUX_FAMILIES = frozenset(
    {
        "centos",
        "ubuntu",
        "debian",
        "rocky",
        "rockylinux",
        "almalinux",
        "opensuse",
        "suse",
        "sles",
        "fedora",
        "kylin",
        "openeuler",
        "euleros",
        "redhat",
        "rhel",
        "oracle",
        "anolis",
        "alinux",
        "uos",
        "coreos",
    }
)

#: The field of a listed image that holds its id (what is stored as provider_image_id).
ID_FIELD = "ImageId"


def normalize(raw: dict[str, Any]) -> ImageRecord:
    raw_status = required_str(raw, "ImageState")
    status = ImageStatus.mapped(STATUS_MAP, raw_status)
    platform_text = optional_str(raw, "Platform")
    family = _family(platform_text)
    architecture = optional_str(raw, "Architecture")
    return ImageRecord(
        provider_image_id=required_str(raw, ID_FIELD),
        status=status,
        raw_status=raw_status,
        name=optional_str(raw, "Name"),
        description=None,  # DescribeImages returns no description
        os_family=family,
        os_name=platform_text,
        platform=_platform(family),
        architecture=architecture.lower() if architecture else None,
        min_disk_gb=optional_decimal(raw, "SysDisk"),  # the system disk; no image size
        visibility=_visibility(raw.get("IsPublic")),
        owner=None,  # no owner or account field is returned
        image_type=optional_str(raw, "Type"),
        provider_created_at=optional_time(raw, "CreationDate"),
        tags={},  # DescribeImages returns no tags
        raw=raw,
    )


def _family(platform: str | None) -> str | None:
    """``centos-6.5`` -> ``centos``; ``Windows Server 2016`` -> ``windows``."""
    if not platform:
        return None
    word = platform.replace("_", "-").replace(" ", "-").split("-", 1)[0].lower()
    return word if word.isalpha() else None


def _platform(family: str | None) -> str | None:
    if family is None:
        return None
    if family.startswith("windows"):
        return "windows"
    if family in LINUX_FAMILIES:
        return "linux"
    return None


def _visibility(value: object) -> str | None:
    # IsPublic is a JSON boolean; anything else (missing, null, a string) is not trusted.
    if value is True:
        return "public"
    if value is False:
        return "private"
    return None
