"""Paging strategies decide the end of a listing, and whether it was complete."""

from __future__ import annotations

from typing import Any

import pytest

from inventory.errors import PagingError
from inventory.paging import MarkerPaging, OffsetPaging, Page, drive


def offset_pages(totals: list[int], sizes: list[int]) -> tuple[OffsetPaging, list[dict[str, Any]]]:
    strategy = OffsetPaging(100)
    asked: list[dict[str, Any]] = []

    def fetch(params: dict[str, Any], number: int) -> Page:
        asked.append(params)
        items = [{"id": f"{number}-{i}"} for i in range(sizes[number - 1])]
        return Page(number=number, items=items, total=totals[number - 1])

    list(drive(strategy, fetch))
    return strategy, asked


def test_offset_complete_with_short_last_page() -> None:
    strategy, asked = offset_pages([250, 250, 250], [100, 100, 50])
    assert [p["offset"] for p in asked] == [0, 100, 200]
    assert strategy.complete


def test_offset_follows_server_cap_below_limit() -> None:
    strategy, asked = offset_pages([60, 60, 60], [20, 20, 20])
    assert [p["offset"] for p in asked] == [0, 20, 40]
    assert strategy.complete


def test_offset_total_moving_is_incomplete() -> None:
    strategy, _ = offset_pages([250, 249, 249], [100, 100, 49])
    assert not strategy.complete
    assert "total changed from 250 to 249" in (strategy.incomplete_reason or "")


def test_offset_empty_page_before_total_is_incomplete() -> None:
    strategy, _ = offset_pages([250, 250], [100, 0])
    assert not strategy.complete
    assert "empty page" in (strategy.incomplete_reason or "")


def test_offset_without_total_raises() -> None:
    with pytest.raises(PagingError):
        OffsetPaging(10).next(Page(number=1, items=[{}], total=None))


def test_marker_paging_stops_on_short_page_and_refuses_loops() -> None:
    strategy = MarkerPaging(2)
    assert strategy.next(Page(1, [{"id": "a"}, {"id": "b"}])) == {"marker": "b", "limit": 2}
    assert strategy.next(Page(2, [{"id": "c"}])) is None
    assert strategy.complete
    looping = MarkerPaging(2)
    looping.next(Page(1, [{"id": "a"}, {"id": "b"}]))
    with pytest.raises(PagingError, match="did not advance"):
        looping.next(Page(2, [{"id": "a"}, {"id": "b"}]))


def test_incomplete_until_finished() -> None:
    strategy = OffsetPaging(10)
    assert not strategy.complete
    assert strategy.incomplete_reason
