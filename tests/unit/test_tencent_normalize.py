"""Tencent normalization: every documented ImageState and field, deprecation, unknowns."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from inventory.errors import MalformedResponse
from inventory.providers.tencent.normalize import STATUS_MAP, normalize
from inventory.records import ImageStatus


def raw_image(**overrides: Any) -> dict[str, Any]:
    """The private-image sample of the DescribeImages page, plus the newer fields."""
    image: dict[str, Any] = {
        "OsName": "CentOS 7.4 64位",
        "ImageSize": 20,
        "ImageType": "PRIVATE_IMAGE",
        "CreatedTime": "2020-09-22T00:00:00+00:00",
        "ImageDescription": "test-image",
        "ImageSource": "CREATE_IMAGE",
        "ImageId": "img-qlzp4oea",
        "ImageName": "test-image",
        "ImageCreator": "3205597606",
        "ImageState": "NORMAL",
        "SyncPercent": None,
        "SnapshotSet": [
            {"SnapshotId": "snap-gqa37j2p", "DiskUsage": "SYSTEM_DISK", "DiskSize": 20}
        ],
        "Tags": [{"Value": "xx", "Key": "xx"}, {"Key": "team"}],
        "Architecture": "x86_64",
        "Platform": "CentOS",
        "IsSupportCloudinit": True,
        "LicenseType": "TencentCloud",
        "ImageFamily": "",
        "ImageDeprecated": False,
    }
    image.update(overrides)
    return image


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CREATING", ImageStatus.PENDING),
        ("NORMAL", ImageStatus.AVAILABLE),
        ("CREATEFAILED", ImageStatus.FAILED),
        ("SYNCING", ImageStatus.PENDING),
        ("IMPORTING", ImageStatus.PENDING),
        ("IMPORTFAILED", ImageStatus.FAILED),
    ],
)
def test_every_documented_state(raw: str, expected: ImageStatus) -> None:
    rec = normalize(raw_image(ImageState=raw))
    assert rec.status is expected
    assert rec.raw_status == raw


def test_status_table_covers_documented_vocabulary() -> None:
    documented = {"CREATING", "NORMAL", "CREATEFAILED", "SYNCING", "IMPORTING", "IMPORTFAILED"}
    assert set(STATUS_MAP) == documented


@pytest.mark.parametrize("state", ["NORMAL", "CREATING", "SYNCING"])
def test_image_deprecated_overrides_state_and_keeps_raw(state: str) -> None:
    rec = normalize(raw_image(ImageState=state, ImageDeprecated=True))
    assert rec.status is ImageStatus.DEPRECATED
    assert rec.raw_status == state


@pytest.mark.parametrize("flag", [None, "true", 1, False])
def test_only_a_boolean_true_deprecates(flag: object) -> None:
    assert normalize(raw_image(ImageDeprecated=flag)).status is ImageStatus.AVAILABLE
    image = raw_image()
    del image["ImageDeprecated"]  # older responses have no such field
    assert normalize(image).status is ImageStatus.AVAILABLE


def test_deprecation_changes_the_fingerprint() -> None:
    assert (
        normalize(raw_image()).fingerprint != normalize(raw_image(ImageDeprecated=True)).fingerprint
    )


def test_unknown_state_kept_raw() -> None:
    rec = normalize(raw_image(ImageState="QUARANTINED"))
    assert rec.status is ImageStatus.UNKNOWN
    assert rec.raw_status == "QUARANTINED"


def test_every_field() -> None:
    rec = normalize(raw_image())
    assert rec.provider_image_id == "img-qlzp4oea"
    assert rec.name == "test-image"
    assert rec.description == "test-image"
    assert rec.os_family == "centos"
    assert rec.os_name == "CentOS 7.4 64位"
    assert rec.platform == "linux"
    assert rec.architecture == "x86_64"
    assert rec.size_gb == Decimal(20)
    assert rec.visibility == "private"
    assert rec.owner == "3205597606"
    assert rec.image_type == "create_image"
    assert rec.provider_created_at == datetime(2020, 9, 22, tzinfo=UTC)
    assert rec.tags == {"xx": "xx", "team": ""}
    assert rec.raw["SnapshotSet"][0]["SnapshotId"] == "snap-gqa37j2p"


def test_public_image_sample() -> None:
    rec = normalize(
        raw_image(
            ImageId="img-9qabwvbn",
            ImageType="PUBLIC_IMAGE",
            ImageSource="OFFICIAL",
            ImageCreator=None,
            Platform="Windows",
            Architecture="arm",
            CreatedTime="2021-01-02T03:04:05Z",
        )
    )
    assert rec.visibility == "public"
    assert rec.image_type == "official"
    assert rec.owner is None
    assert rec.platform == "windows"
    assert rec.os_family == "windows"
    assert rec.architecture == "aarch64"
    assert rec.provider_created_at == datetime(2021, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("image_type", "visibility"),
    [("PUBLIC_IMAGE", "public"), ("PRIVATE_IMAGE", "private"), ("SHARED_IMAGE", "shared")],
)
def test_image_types(image_type: str, visibility: str) -> None:
    assert normalize(raw_image(ImageType=image_type)).visibility == visibility


@pytest.mark.parametrize(
    ("source", "image_type"),
    [
        ("OFFICIAL", "official"),
        ("CREATE_IMAGE", "create_image"),
        ("EXTERNAL_IMPORT", "external_import"),
    ],
)
def test_image_sources(source: str, image_type: str) -> None:
    assert normalize(raw_image(ImageSource=source)).image_type == image_type


@pytest.mark.parametrize(
    ("platform", "expected"),
    [("TencentOS", "linux"), ("Ubuntu", "linux"), ("FreeBSD", "freebsd"), ("Windows", "windows")],
)
def test_platforms(platform: str, expected: str) -> None:
    rec = normalize(raw_image(Platform=platform))
    assert rec.platform == expected
    assert rec.os_family == platform.lower()


def test_optional_fields_lenient() -> None:
    rec = normalize(
        raw_image(
            ImageDescription="",
            ImageSize="big",
            CreatedTime="yesterday",
            Tags="x",
            ImageName=None,
            Platform=None,
            Architecture=None,
            ImageType=None,
            ImageSource=None,
        )
    )
    assert rec.description is None
    assert rec.size_gb is None
    assert rec.provider_created_at is None
    assert rec.tags == {}
    assert rec.name is None
    assert (rec.platform, rec.os_family, rec.architecture) == (None, None, None)
    assert (rec.visibility, rec.image_type) == (None, None)


def test_naive_time_is_utc() -> None:
    rec = normalize(raw_image(CreatedTime="2020-09-22T08:00:00"))
    assert rec.provider_created_at == datetime(2020, 9, 22, 8, tzinfo=UTC)


def test_volatile_fields_do_not_change_fingerprint() -> None:
    a = normalize(raw_image(ImageState="SYNCING", SyncPercent=10))
    b = normalize(raw_image(ImageState="SYNCING", SyncPercent=90, CdcCacheStatus="CACHING"))
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize("missing", ["ImageId", "ImageState"])
def test_required_fields_strict(missing: str) -> None:
    image = raw_image()
    del image[missing]
    with pytest.raises(MalformedResponse, match=missing):
        normalize(image)
