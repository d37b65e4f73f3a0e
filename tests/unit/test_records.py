"""Fingerprints hash durable fields only, canonically."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.records import DURABLE_FIELDS, ImageRecord, ImageStatus, fingerprint


def record(**overrides: object) -> ImageRecord:
    base: dict[str, object] = {
        "provider_image_id": "img-1",
        "status": ImageStatus.AVAILABLE,
        "raw_status": "available",
        "name": "CentOS 7.9",
        "size_gb": Decimal("20"),
        "provider_created_at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "tags": {"env": "prod"},
        "raw": {"status_time": "2024-01-02T03:04:05Z"},
    }
    base.update(overrides)
    return ImageRecord(**base)  # type: ignore[arg-type]


def test_fingerprint_is_stable_across_versions() -> None:
    """The hex of a known record, as the stdlib-json implementation computed it before
    orjson (and as every stored row holds it): a change here rewrites every image."""
    assert record().fingerprint == (
        "6d40e2db332ad5fb5e5c47a8dc0195e683e5942f8f577159f67d08f7fb077b4d"
    )


def test_fingerprint_ignores_raw_payload() -> None:
    assert record().fingerprint == record(raw={"status_time": "2030-01-01T00:00:00Z"}).fingerprint


def test_fingerprint_canonical_numbers_and_times() -> None:
    shifted = datetime(2024, 1, 2, 11, 4, 5, tzinfo=timezone(timedelta(hours=8)))
    assert record().fingerprint == record(size_gb=Decimal("20.000")).fingerprint
    assert record().fingerprint == record(provider_created_at=shifted).fingerprint


@pytest.mark.parametrize(
    "change",
    [
        {"status": ImageStatus.DEPRECATED, "raw_status": "deprecated"},
        {"name": "CentOS 7.9 (old)"},
        {"size_gb": Decimal("21")},
        {"tags": {"env": "dev"}},
        {"description": "x"},
    ],
)
def test_fingerprint_changes_with_durable_fields(change: dict[str, object]) -> None:
    assert record().fingerprint != record(**change).fingerprint


def test_naive_time_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        record(provider_created_at=datetime(2024, 1, 1))


def test_staleness_against_the_schedule() -> None:
    from inventory.reports import stale_since

    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    hourly = "0 * * * *"
    assert stale_since(now - timedelta(hours=2), hourly, "UTC", 3, now) is None
    overdue = stale_since(now - timedelta(hours=4), hourly, "UTC", 3, now)
    assert overdue == timedelta(hours=1)
    assert stale_since(None, hourly, "UTC", 3, now) is not None  # never succeeded
    assert stale_since(None, None, "UTC", 3, now) is None  # unscheduled: no promise
    every_10s = "*/10 * * * * *"
    assert stale_since(now - timedelta(seconds=29), every_10s, "UTC", 3, now) is None
    assert stale_since(now - timedelta(seconds=31), every_10s, "UTC", 3, now) is not None


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_VALUE = st.one_of(st.none(), _TEXT, st.integers(-(2**62), 2**62))
_CANONICAL = st.dictionaries(
    _TEXT, st.one_of(_VALUE, st.dictionaries(_TEXT, _TEXT, max_size=4)), max_size=8
)


@settings(max_examples=300, deadline=None)
@given(_CANONICAL)
def test_fingerprint_text_is_the_first_definitions_bytes(canonical: dict[str, object]) -> None:
    """Stored fingerprints stay valid: orjson hashes exactly the bytes the standard
    library's compact, key-sorted, UTF-8 JSON gave when the fingerprint was defined."""
    first = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS) == first.encode()


_RECORDS = st.builds(
    ImageRecord,
    provider_image_id=_TEXT.filter(bool),
    status=st.sampled_from(list(ImageStatus)),
    raw_status=st.none() | _TEXT,
    name=st.none() | _TEXT,
    os_family=st.none() | _TEXT,
    word_size=st.none() | st.sampled_from([32, 64]),
    size_gb=st.none() | st.decimals(0, 10**6, allow_nan=False, places=3),
    min_disk_gb=st.none() | st.decimals(0, 10**4, allow_nan=False, places=0),
    # Times that have a UTC form: normalizers hand over UTC times (fields.parse_time stores
    # one that does not as null), and year 1 at +08:00 is before datetime.min in UTC.
    provider_created_at=st.none()
    | st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
    ),
    tags=st.dictionaries(_TEXT, _TEXT, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(_RECORDS)
def test_a_records_fingerprint_is_the_generic_one(rec: ImageRecord) -> None:
    """The per-image fast path hashes what fingerprint() of the durable fields does."""
    assert rec.fingerprint == fingerprint({f: getattr(rec, f) for f in DURABLE_FIELDS})
