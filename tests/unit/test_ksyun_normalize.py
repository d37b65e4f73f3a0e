"""KSyun normalization: every documented state and field, and an unknown state."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from inventory.errors import MalformedResponse
from inventory.providers.ksyun.normalize import STATUS_MAP, normalize
from inventory.records import ImageStatus


def raw_image(**overrides: Any) -> dict[str, Any]:
    """Every field of the DescribeImages response table (shared/providers/ksyun.md)."""
    image: dict[str, Any] = {
        "ImageId": "b1e3731b-c200-4499-be42-f6bfbbda990e",
        "Name": "ksyun_centos65_performance",
        "Type": "CommonImage",
        "ImageState": "active",
        "CreationDate": "2018-07-17T20:48:25Z",
        "Platform": "centos-6.5",
        "IsPublic": True,
        "InstanceId": "529cda4f-767b-4ccb-ae00-f8c25db33900",
        "ContainerFormat": "ovf",
        "InstantAccess": False,
        "IsNpe": True,
        "UserCategory": "common",
        "SysDisk": 20,
        "Progress": "100",
        "ImageSource": "system",
        "CloudInitSupport": True,
        "Ipv6Support": True,
        "IsModifyType": True,
        "Architecture": "X86_64",
        "FastBoot": False,
        "OriginalImageId": "7a29dd28-509f-4306-b10b-08ae5a660000",
        "IsCloudMarket": False,
        "RealImageId": "31c78c89-98bd-4d5b-8ddf-7eff4602cc00",
        "OnlineExpansion": True,
        "ImageMode": "legacy",
        "SnapshotSet": [
            {
                "SnapshotId": "5432",
                "DiskType": "SystemDisk",
                "DiskSize": 20,
                "Type": "CommonSnapshot",
                "VolumeType": "SSD3.0",
                "AvailabilityZone": "cn-beijing-6a",
            }
        ],
        "ExportingStatus": "",
        "ExportingFinishedTime": "",
    }
    image.update(overrides)
    return image


def test_the_documented_state() -> None:
    rec = normalize(raw_image(ImageState="active"))
    assert rec.status is ImageStatus.AVAILABLE
    assert rec.raw_status == "active"


def test_status_table_is_exactly_the_vocabulary_kingsoft_tooling_uses() -> None:
    # "active" is documented; "creating" is what Kingsoft's Packer plugin waits out. The
    # rest must stay unknown, not be guessed.
    assert STATUS_MAP == {"active": ImageStatus.AVAILABLE, "creating": ImageStatus.PENDING}


def test_an_image_being_built_is_pending() -> None:
    rec = normalize(raw_image(ImageState="creating"))
    assert (rec.status, rec.raw_status) == (ImageStatus.PENDING, "creating")


@pytest.mark.parametrize("value", ["error", "deleting", "quarantined"])
def test_undocumented_states_are_unknown_and_kept(value: str) -> None:
    rec = normalize(raw_image(ImageState=value))
    assert rec.status is ImageStatus.UNKNOWN
    assert rec.raw_status == value


def test_every_field() -> None:
    raw = raw_image()
    rec = normalize(raw)
    assert rec.provider_image_id == "b1e3731b-c200-4499-be42-f6bfbbda990e"
    assert rec.name == "ksyun_centos65_performance"
    assert rec.description is None
    assert rec.os_family == "centos"
    assert rec.os_name == "centos-6.5"
    assert rec.platform == "linux"
    assert rec.architecture == "x86_64"
    assert (rec.size_gb, rec.min_disk_gb) == (None, Decimal(20))  # SysDisk: the system disk
    assert rec.visibility == "public"
    assert rec.owner is None
    assert rec.image_type == "CommonImage"
    assert rec.provider_created_at == datetime(2018, 7, 17, 20, 48, 25, tzinfo=UTC)
    assert rec.tags == {}
    assert rec.raw is raw  # every other documented field is kept there


def test_custom_windows_image() -> None:
    rec = normalize(
        raw_image(
            Type="CustomImage",
            IsPublic=False,
            Platform="windows-2019",
            ContainerFormat="assembled_image",
        )
    )
    assert (rec.visibility, rec.image_type) == ("private", "CustomImage")
    assert (rec.os_family, rec.platform) == ("windows", "windows")


def test_optional_fields_lenient() -> None:
    rec = normalize(
        raw_image(
            Name="",
            Platform=None,
            Architecture=7.5,
            SysDisk="big",
            IsPublic="true",
            CreationDate="yesterday",
            Type=None,
        )
    )
    assert rec.name is None and rec.os_family is None and rec.platform is None
    assert rec.os_name is None
    assert rec.min_disk_gb is None
    assert rec.visibility is None  # a string "true" is not KSyun's boolean
    assert rec.provider_created_at is None
    assert rec.image_type is None


def test_unknown_os_family_leaves_platform_null() -> None:
    rec = normalize(raw_image(Platform="haiku-r1"))
    assert (rec.os_family, rec.os_name, rec.platform) == ("haiku", "haiku-r1", None)


def test_naive_creation_date_is_utc() -> None:
    rec = normalize(raw_image(CreationDate="2020-01-02T03:04:05"))
    assert rec.provider_created_at == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_volatile_fields_do_not_change_fingerprint() -> None:
    a = normalize(raw_image())
    b = normalize(
        raw_image(
            Progress="42",
            ExportingStatus="exporting",
            ExportingFinishedTime="2030-01-01T00:00:00Z",
            FastBoot=True,
        )
    )
    assert a.fingerprint == b.fingerprint
    assert normalize(raw_image(Name="renamed")).fingerprint != a.fingerprint
    assert normalize(raw_image(ImageState="error")).fingerprint != a.fingerprint


@pytest.mark.parametrize("missing", ["ImageId", "ImageState"])
def test_required_fields_strict(missing: str) -> None:
    image = raw_image()
    del image[missing]
    with pytest.raises(MalformedResponse, match=missing):
        normalize(image)
