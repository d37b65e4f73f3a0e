"""Huawei IEC and IMS v1.1 normalization: every documented status and field, the deleted
flag, an unknown status, naive times, volatile fields and strict required fields."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from inventory.errors import MalformedResponse
from inventory.providers.huawei_iec import normalize as iec
from inventory.providers.huawei_ims import normalize as ims
from inventory.records import ImageStatus


def iec_image(**overrides: Any) -> dict[str, Any]:
    """The documented sample of IEC ListImages (seed 002)."""
    image: dict[str, Any] = {
        "id": "633724a7-4a4e-11eb-8f73-fa1640aee23e",
        "name": "ces",
        "status": "active",
        "disk_format": "zvhd2",
        "min_disk": 40,
        "min_ram": 0,
        "owner": "2b76febbe5d34eac85d26435c1f15809",
        "protected": False,
        "visibility": "private",
        "created_at": "2020-12-30T03:23:29Z",
        "updated_at": "2020-12-30T03:30:36Z",
        "self": "/v1/self/633724a7-4a4e-11eb-8f73-fa1640aee23e",
        "deleted": False,
        "virtual_env_type": "FusionCompute",
        "deleted_at": "",
        "__imagetype": "private",
        "__platform": "CentOS",
        "__os_type": "Linux",
        "__os_version": "CentOS 7.4 64bit",
        "__isregistered": True,
        "__support_arm": "true",
        "hw_firmware_type": "uefi",
        "data_source": "instance:a7c6deda-99eb-4f58-b7b4-04a36b75401b",
        "__support_gpu_t4": "true",
    }
    image.update(overrides)
    return image


def ims_image(**overrides: Any) -> dict[str, Any]:
    """The documented sample of IMS /v1.1/images/detail (seed 004), with Huawei properties."""
    image: dict[str, Any] = {
        "status": "active",
        "deleted_at": None,
        "name": "cirros",
        "deleted": False,
        "container_format": "bare",
        "created_at": "2016-05-22T06:04:20.425843",
        "disk_format": "qcow2",
        "updated_at": "2016-05-22T06:04:22.719791",
        "min_disk": 0,
        "protected": False,
        "id": "3c3d1d01-b48a-4639-8a88-08be3b9b5d78",
        "min_ram": 0,
        "checksum": "64d7c1cd2b6f60c92c14662941cb7913",
        "owner": "23f4cb75768d4febb39542ef6fe169f3",
        "is_public": True,
        "virtual_size": None,
        "properties": {
            "__os_version": "Ubuntu 22.04 server 64bit",
            "__platform": "Ubuntu",
            "__os_type": "Linux",
            "__imagetype": "gold",
            "__description": "Ubuntu public image",
            "architecture": "x86",
        },
        "size": 13167616,
    }
    image.update(overrides)
    return image


# -- IEC --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("queued", ImageStatus.PENDING),
        ("saving", ImageStatus.PENDING),
        ("active", ImageStatus.AVAILABLE),
        ("killed", ImageStatus.FAILED),
        ("deleted", ImageStatus.DELETED),
    ],
)
def test_iec_every_documented_status(raw: str, expected: ImageStatus) -> None:
    rec = iec.normalize(iec_image(status=raw, deleted=raw == "deleted"))
    assert (rec.status, rec.raw_status) == (expected, raw)


def test_iec_table_covers_documented_vocabulary() -> None:
    assert set(iec.STATUS_MAP) == {"queued", "saving", "active", "killed", "deleted"}


def test_iec_unknown_status_kept_raw() -> None:
    rec = iec.normalize(iec_image(status="frozen"))
    assert (rec.status, rec.raw_status) == (ImageStatus.UNKNOWN, "frozen")


def test_iec_deleted_flag_wins() -> None:
    rec = iec.normalize(iec_image(deleted=True, deleted_at="2021-01-01T00:00:00Z"))
    assert (rec.status, rec.raw_status) == (ImageStatus.DELETED, "active")


def test_iec_every_field() -> None:
    rec = iec.normalize(iec_image())
    assert rec.provider_image_id == "633724a7-4a4e-11eb-8f73-fa1640aee23e"
    assert rec.name == "ces"
    assert rec.description is None
    assert rec.os_family == "centos"
    assert rec.os_name == "CentOS 7.4 64bit"
    assert rec.platform == "linux"
    assert rec.architecture == "aarch64"
    assert (rec.size_gb, rec.min_disk_gb, rec.word_size) == (None, Decimal(40), None)
    assert rec.visibility == "private"
    assert rec.owner == "2b76febbe5d34eac85d26435c1f15809"
    assert rec.image_type == "private"
    assert rec.provider_created_at == datetime(2020, 12, 30, 3, 23, 29, tzinfo=UTC)
    assert rec.tags == {}
    assert rec.raw["data_source"].startswith("instance:")


def test_iec_no_arm_flag_means_x86_and_optional_fields_lenient() -> None:
    image = iec_image(name="", min_disk="big", created_at="soon", __platform=None)
    del image["__support_arm"]
    rec = iec.normalize(image)
    assert rec.architecture == "x86_64"
    assert (rec.name, rec.min_disk_gb, rec.provider_created_at, rec.os_family) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize("flag", [False, "false"])
def test_iec_active_but_unregistered_is_not_usable_yet(flag: object) -> None:
    rec = iec.normalize(iec_image(__isregistered=flag))
    assert (rec.status, rec.raw_status) == (ImageStatus.PENDING, "active")


def test_iec_registration_only_holds_back_an_active_image() -> None:
    assert iec.normalize(iec_image(__isregistered=True)).status is ImageStatus.AVAILABLE
    unflagged = iec_image()
    del unflagged["__isregistered"]
    assert iec.normalize(unflagged).status is ImageStatus.AVAILABLE
    killed = iec.normalize(iec_image(status="killed", __isregistered=False))
    assert killed.status is ImageStatus.FAILED
    gone = iec.normalize(iec_image(deleted=True, __isregistered=False))
    assert gone.status is ImageStatus.DELETED


def test_iec_volatile_fields_do_not_change_fingerprint() -> None:
    a = iec.normalize(iec_image())
    b = iec.normalize(
        iec_image(updated_at="2030-01-01T00:00:00Z", relation_job_id="job-2", deleted_at="")
    )
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != iec.normalize(iec_image(name="ces-2")).fingerprint


@pytest.mark.parametrize("missing", ["id", "status"])
def test_iec_required_fields_strict(missing: str) -> None:
    image = iec_image()
    del image[missing]
    with pytest.raises(MalformedResponse, match=missing):
        iec.normalize(image)


# -- IMS v1.1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("queued", ImageStatus.PENDING),
        ("saving", ImageStatus.PENDING),
        ("active", ImageStatus.AVAILABLE),
        ("killed", ImageStatus.FAILED),
        ("deleted", ImageStatus.DELETED),
        ("pending_delete", ImageStatus.DELETED),
        ("deactivated", ImageStatus.SUSPENDED),
        ("uploading", ImageStatus.PENDING),
        ("importing", ImageStatus.PENDING),
    ],
)
def test_ims_every_glance_status(raw: str, expected: ImageStatus) -> None:
    rec = ims.normalize(ims_image(status=raw))
    assert (rec.status, rec.raw_status) == (expected, raw)


def test_ims_unknown_status_kept_raw() -> None:
    rec = ims.normalize(ims_image(status="quarantined"))
    assert (rec.status, rec.raw_status) == (ImageStatus.UNKNOWN, "quarantined")


def test_ims_deleted_flag_wins() -> None:
    rec = ims.normalize(ims_image(deleted=True, deleted_at="2016-06-01T00:00:00.000000"))
    assert (rec.status, rec.raw_status) == (ImageStatus.DELETED, "active")


def test_ims_every_field_and_naive_time_is_utc() -> None:
    rec = ims.normalize(ims_image())
    assert rec.provider_image_id == "3c3d1d01-b48a-4639-8a88-08be3b9b5d78"
    assert rec.name == "cirros"
    assert rec.description == "Ubuntu public image"
    assert rec.os_family == "ubuntu"
    assert rec.os_name == "Ubuntu 22.04 server 64bit"
    assert rec.platform == "linux"
    assert rec.architecture == "x86_64"
    # The seed's size is 13,167,616 bytes: 0.0123 GB, not the 0 GB of min_disk.
    assert rec.size_gb == Decimal("0.01226329803466796875")
    assert rec.size_gb * (1 << 30) == 13167616
    assert (rec.min_disk_gb, rec.word_size) == (Decimal(0), None)
    assert rec.visibility == "public"
    assert rec.owner == "23f4cb75768d4febb39542ef6fe169f3"
    assert rec.image_type == "gold"
    assert rec.provider_created_at == datetime(2016, 5, 22, 6, 4, 20, 425843, tzinfo=UTC)
    assert rec.provider_created_at is not None and rec.provider_created_at.tzinfo is not None
    assert rec.tags == {}


def test_ims_private_arm_and_empty_properties() -> None:
    arm = ims.normalize(ims_image(is_public=False, properties={"__support_arm": "true"}))
    assert (arm.visibility, arm.architecture) == ("private", "aarch64")
    bare = ims.normalize(ims_image(properties={}, is_public=None, owner=None))
    assert (bare.architecture, bare.os_family, bare.visibility, bare.owner) == (
        None,
        None,
        None,
        None,
    )
    weird = ims.normalize(ims_image(properties="not an object"))
    assert weird.image_type is None


def test_ims_volatile_fields_do_not_change_fingerprint() -> None:
    a = ims.normalize(ims_image())
    b = ims.normalize(
        ims_image(
            updated_at="2030-01-01T00:00:00.000001",
            checksum="0" * 32,
            virtual_size=5,
            deleted_at=None,
        )
    )
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize("missing", ["id", "status"])
def test_ims_required_fields_strict(missing: str) -> None:
    image = ims_image()
    del image[missing]
    with pytest.raises(MalformedResponse, match=missing):
        ims.normalize(image)


def test_ims_sizes_word_size_and_registration() -> None:
    props = {"__os_bit": "32", "__isregistered": "false"}
    rec = ims.normalize(ims_image(size=None, min_disk=40, properties=props))
    assert (rec.size_gb, rec.min_disk_gb, rec.word_size) == (None, Decimal(40), 32)
    assert (rec.status, rec.raw_status) == (ImageStatus.PENDING, "active")
    big = ims.normalize(ims_image(size=20 * 1024**3 + 1))
    assert big.size_gb == Decimal("20.000000000931322574615478515625")  # 20 GB + 1 byte
    assert ims.normalize(ims_image(properties={"__os_bit": "64"})).word_size == 64
    assert ims.normalize(ims_image(properties={"__os_bit": "16"})).word_size is None


def test_ims_size_is_a_durable_field() -> None:
    assert ims.normalize(ims_image()).fingerprint != ims.normalize(ims_image(size=1)).fingerprint
