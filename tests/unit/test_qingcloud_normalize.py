"""QingCloud normalization: every documented status and field, and an unknown status."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from inventory.errors import MalformedResponse
from inventory.providers.qingcloud.normalize import STATUS_MAP, normalize
from inventory.records import ImageStatus


def raw_image(**overrides: Any) -> dict[str, Any]:
    image: dict[str, Any] = {
        "image_id": "img-abcd1234",
        "image_name": "CentOS 7.9 64bit",
        "description": "official image",
        "size": 20,
        "processor_type": "64bit",
        "platform": "linux",
        "os_family": "centos",
        "visibility": "public",
        "provider": "system",
        "owner": "system",
        "recommended_type": "small_b",
        "status": "available",
        "transition_status": "",
        "create_time": "2023-05-06T07:08:09Z",
        "status_time": "2023-05-07T07:08:09Z",
        "tags": [
            {
                "tag_id": "tag-1",
                "tag_key": "env",
                "tag_name": "env",
                "tag_value": "prod",
                "color": "#fff",
                "owner": "usr-1",
            },
            {"tag_id": "tag-2", "tag_name": "legacy", "color": "#000", "owner": "usr-1"},
        ],
        "sub_code": 0,
    }
    image.update(overrides)
    return image


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pending", ImageStatus.PENDING),
        ("available", ImageStatus.AVAILABLE),
        ("deprecated", ImageStatus.DEPRECATED),
        ("suspended", ImageStatus.SUSPENDED),
        ("deleted", ImageStatus.DELETED),
        ("ceased", ImageStatus.CEASED),
    ],
)
def test_every_documented_status(raw: str, expected: ImageStatus) -> None:
    rec = normalize(raw_image(status=raw))
    assert rec.status is expected
    assert rec.raw_status == raw


def test_status_table_covers_documented_vocabulary() -> None:
    documented = {"pending", "available", "deprecated", "suspended", "deleted", "ceased"}
    assert set(STATUS_MAP) == documented


def test_unknown_status_kept_raw() -> None:
    rec = normalize(raw_image(status="quarantined"))
    assert rec.status is ImageStatus.UNKNOWN
    assert rec.raw_status == "quarantined"


def test_every_field() -> None:
    rec = normalize(raw_image())
    assert rec.provider_image_id == "img-abcd1234"
    assert rec.name == "CentOS 7.9 64bit"
    assert rec.description == "official image"
    assert (rec.size_gb, rec.min_disk_gb) == (Decimal(20), None)
    assert (rec.architecture, rec.word_size) == (None, 64)  # 64bit is a word size, not x86
    assert rec.platform == "linux"
    assert rec.os_family == "centos"
    assert rec.os_name == "CentOS 7.9 64bit"
    assert rec.visibility == "public"
    assert rec.image_type == "system"
    assert rec.owner == "system"
    assert rec.provider_created_at == datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert rec.tags == {"env": "prod", "legacy": ""}
    assert rec.raw["recommended_type"] == "small_b"


def test_user_image_has_no_os_name_and_32bit_is_the_word_size() -> None:
    rec = normalize(raw_image(provider="self", processor_type="32bit", image_name="web-1"))
    assert rec.os_name is None
    assert (rec.architecture, rec.word_size) == (None, 32)
    assert rec.image_type == "self"


def test_optional_fields_lenient() -> None:
    rec = normalize(
        raw_image(description=None, size="big", create_time="yesterday", tags="x", image_name="")
    )
    assert rec.description is None
    assert rec.size_gb is None
    assert rec.provider_created_at is None
    assert rec.tags == {}
    assert rec.name is None


def test_volatile_fields_do_not_change_fingerprint() -> None:
    a = normalize(raw_image())
    b = normalize(
        raw_image(status_time="2030-01-01T00:00:00Z", transition_status="deleting", sub_code=3)
    )
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize("missing", ["image_id", "status"])
def test_required_fields_strict(missing: str) -> None:
    image = raw_image()
    del image[missing]
    with pytest.raises(MalformedResponse, match=missing):
        normalize(image)


def test_an_arm_image_is_64bit_and_aarch64_only_where_it_says_so() -> None:
    rec = normalize(raw_image(processor_type="64bit", architecture="arm64"))
    assert (rec.architecture, rec.word_size) == ("aarch64", 64)
    assert normalize(raw_image(processor_type="128bit")).word_size is None
    assert normalize(raw_image(architecture="riscv64")).architecture == "riscv64"
