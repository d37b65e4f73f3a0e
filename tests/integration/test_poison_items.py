"""One bad image never fails its source: what JSON allows and PostgreSQL refuses is made
storable, values out of range become null with a warning naming source, page, image and
field, and an image whose id is unusable is left out (the listing is then incomplete, so
nothing is marked gone). Each case failed the whole run, on every sync, before."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from inventory.config import Settings
from inventory.http import RetryPolicy
from inventory.sync import RunResult, sync_source

from .helpers import Emulator, fetch_all

FAST = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02)
IMAGES, PAGE = 60, 20


def sync(engine: Engine, emu: Emulator) -> RunResult:
    return sync_source(engine, Settings(path=None), emu.source(), policy=FAST)


def stored(engine: Engine, image_id: str) -> Any:
    rows = fetch_all(engine, "SELECT * FROM images WHERE provider_image_id = :i", i=image_id)
    return rows[0] if rows else None


def _victim(emu: Emulator) -> tuple[str, int]:
    """An image of the account on page 2, and that page."""
    listed = sorted(emu.visible_ids(), key=emu.catalogue.ids().index)
    return listed[PAGE + 3], 2


@pytest.mark.parametrize(
    ("fields", "column", "expected", "warned"),
    [
        ({"image_name": "web\x00evil"}, "name", "web\ufffdevil", "NUL or lone-surrogate"),
        ({"description": "bad \ud800 half"}, "description", "bad \ufffd half", "U+FFFD"),
        ({"size": float("nan")}, "size_gb", None, "NaN or infinite number(s) stored as null"),
        ({"size": float("inf")}, "size_gb", None, "NaN or infinite"),
        ({"size": 1e12}, "size_gb", None, "size 1000000000000"),
        ({"create_time": "9999-12-31T23:59:59-05:00"}, "provider_created_at", None, "create_time"),
        ({"sub_code": {"a": [1, float("nan")]}}, None, None, "NaN or infinite"),
    ],
)
def test_a_value_postgresql_cannot_store_fails_no_run(
    engine: Engine, emulator: Emulator, fields: dict[str, Any], column: str | None,
    expected: Any, warned: str,
) -> None:  # fmt: skip
    emu = emulator.reset(images=IMAGES, page_size=PAGE)
    victim, page = _victim(emu)
    emu.edit(victim, **fields)
    for _ in range(2):  # and the next run is not blocked either
        result = sync(engine, emu)
        assert result.status == "succeeded", result.error
        assert result.listing_complete, result.incomplete_reason
        assert result.images_seen == len(emu.visible_ids())
        assert warned in (result.warning or ""), result.warning
    row = stored(engine, victim)
    if column is not None:
        assert getattr(row, column) == expected
    if column in ("size_gb", "provider_created_at"):  # the warning names page, image, field
        assert f"page {page}, image '{victim}'" in (result.warning or "")


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"image_id": "i" * 10_000}, "10,000 characters long"),
        ({"image_id": "img-\x00"}, "cannot be stored"),
        ({"status": None}, "required field 'status'"),
    ],
)
def test_an_image_with_an_unusable_id_is_left_out_and_nothing_is_marked_gone(
    engine: Engine, emulator: Emulator, fields: dict[str, Any], why: str
) -> None:
    emu = emulator.reset(images=IMAGES, page_size=PAGE)
    assert sync(engine, emu).listing_complete
    victim, page = _victim(emu)
    emu.edit(victim, **fields)
    emu.mutate(seed=3, remove=2)  # really gone, but this listing cannot prove it
    result = sync(engine, emu)
    assert result.status == "succeeded", result.error
    assert not result.listing_complete and result.disappeared == 0
    assert f"page {page}: image" in (result.incomplete_reason or "")
    assert why in (result.incomplete_reason or ""), result.incomplete_reason
    assert "nothing is marked gone" in (result.incomplete_reason or "")
    assert stored(engine, victim).gone_at is None  # the stored record is kept as it was


def test_a_size_keeps_its_precision(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=IMAGES, page_size=PAGE)
    victim, _ = _victim(emu)
    emu.edit(victim, size=0.0004)
    assert sync(engine, emu).status == "succeeded"
    assert str(stored(engine, victim).size_gb) == "0.0004"
    again = sync(engine, emu)  # the stored value equals what the fingerprint hashed
    assert (again.changed, again.unchanged) == (0, again.images_seen)
