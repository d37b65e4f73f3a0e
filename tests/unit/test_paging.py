"""Paging strategies decide the end of a listing, and whether it was complete."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
    assert "page 2 came back empty" in (strategy.incomplete_reason or "")


def test_offset_without_total_raises() -> None:
    with pytest.raises(PagingError):
        OffsetPaging(10).next(Page(number=1, items=[{}], total=None))


ORDER, REVERSE = {"sort_dir": "desc"}, {"sort_dir": "asc"}


def marker_listing(
    ids: list[str], limit: int, *, cap: int | None = None, odd: dict[int, int] | None = None
) -> tuple[MarkerPaging, list[str], list[dict[str, Any]]]:
    """Drive MarkerPaging over ``ids`` served like Glance: at most ``cap`` a page, and page
    n cut to ``odd[n]`` items once (0: an empty page). Returns the ids listed and the asks."""
    strategy = MarkerPaging(limit, order=ORDER, reverse=REVERSE)
    asked: list[dict[str, Any]] = []
    odd = dict(odd or {})

    def fetch(params: dict[str, Any], number: int) -> Page:
        asked.append(params)
        listing = ids[::-1] if params["sort_dir"] == "asc" else ids
        start = listing.index(params["marker"]) + 1 if "marker" in params else 0
        items = listing[start : start + min(params["limit"], cap or params["limit"])]
        items = items[: odd.pop(number, len(items))]
        return Page(number=number, items=[{"id": i} for i in items])

    listed = [item["id"] for page in drive(strategy, fetch) for item in page.items]
    return strategy, listed, asked


IDS = [f"img-{n:03d}" for n in range(10)]


def test_marker_end_is_confirmed_by_the_reverse_listing() -> None:
    strategy, listed, asked = marker_listing(IDS, 4)
    assert listed == IDS and strategy.complete
    assert asked[-1] == {"sort_dir": "asc", "limit": 1}  # the probe, not part of the listing
    assert [a.get("marker") for a in asked[:-1]] == [None, "img-003", "img-007"]


def test_marker_empty_page_mid_listing_is_no_end() -> None:
    """The IMS defect: a 200 page with no images in the middle ended a 'complete' listing."""
    strategy, listed, _ = marker_listing(IDS, 3, odd={2: 0})
    assert listed == IDS[:3] and not strategy.complete
    assert "page 2 came back empty" in (strategy.incomplete_reason or "")
    assert "'img-009', which was not listed" in (strategy.incomplete_reason or "")


def test_marker_short_page_mid_listing_goes_on() -> None:
    strategy, listed, _ = marker_listing(IDS, 4, odd={1: 2})
    assert listed == IDS and strategy.complete


def test_marker_server_that_clamps_the_limit_is_paged_to_the_end() -> None:
    strategy, listed, asked = marker_listing(IDS, 100, cap=3)
    assert listed == IDS and strategy.complete
    probes = [a for a in asked if a["sort_dir"] == "asc"]
    assert len(probes) == 2  # after the first short page, and at the end; not after each


def test_marker_empty_listing_is_complete_and_a_broken_one_is_not() -> None:
    assert marker_listing([], 5)[0].complete
    strategy, listed, _ = marker_listing(IDS, 5, odd={1: 0})
    assert listed == [] and not strategy.complete
    assert "none was listed" in (strategy.incomplete_reason or "")


def test_marker_that_does_not_advance_names_its_page() -> None:
    looping = MarkerPaging(2, order=ORDER, reverse=REVERSE)  # a server that ignores marker
    with pytest.raises(PagingError, match="did not advance") as info:
        list(drive(looping, lambda _params, n: Page(n, [{"id": "a"}, {"id": "b"}])))
    assert info.value.page == 2 and "page 2" in str(info.value)


def test_incomplete_until_finished() -> None:
    strategy = OffsetPaging(10)
    assert not strategy.complete
    assert strategy.incomplete_reason


# -- pages in flight --------------------------------------------------------------------------


class Listing:
    """A catalogue of ``total`` ids behind offset paging, answered from a thread pool with
    answers deliberately out of order (later pages first) and optional per-page quirks."""

    def __init__(self, total: int, *, short: int | None = None, fail: int | None = None) -> None:
        self.ids = [f"img-{n:04d}" for n in range(total)]
        self.short, self.fail = short, fail
        self.asked: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def fetch(self, params: dict[str, Any], number: int) -> Page:
        time.sleep(0.002 * max(0, 10 - number))  # early pages answer last
        with self.lock:
            self.asked.append((number, params["offset"]))
        if number == self.fail:
            raise PagingError(f"page {number} broke")
        items = self.ids[params["offset"] : params["offset"] + params["limit"]]
        if number == self.short:
            items = items[: len(items) // 2]
        return Page(number=number, items=[{"id": i} for i in items], total=len(self.ids))

    def run(self, in_flight: int) -> tuple[OffsetPaging, list[str], list[int]]:
        strategy = OffsetPaging(10)
        with ThreadPoolExecutor(in_flight) as pool:
            pages = list(drive(strategy, self.fetch, submit=pool.submit, in_flight=in_flight))
        return strategy, [i["id"] for p in pages for i in p.items], [p.number for p in pages]


def test_pages_in_flight_are_given_in_order_whatever_order_they_arrive() -> None:
    listing = Listing(95)
    strategy, ids, numbers = listing.run(in_flight=8)
    assert strategy.complete and ids == listing.ids
    assert numbers == list(range(1, 11))
    asked = [number for number, _ in listing.asked]
    assert asked != sorted(asked)  # they really were in flight together


def test_a_short_page_in_flight_drops_the_plan_and_goes_on_as_one_at_a_time() -> None:
    sequential = Listing(95, short=4).run(in_flight=1)
    strategy, ids, _ = Listing(95, short=4).run(in_flight=8)
    assert (strategy.complete, ids) == (sequential[0].complete, sequential[1])
    assert strategy.complete and sorted(set(ids)) == Listing(95).ids


def test_a_failed_page_in_flight_raises_in_page_order() -> None:
    listing = Listing(95, fail=3)
    with pytest.raises(PagingError, match="page 3 broke"):
        listing.run(in_flight=8)


def test_a_server_that_clamps_the_page_plans_with_its_page_size() -> None:
    strategy = OffsetPaging(100)
    first = Page(number=1, items=[{}] * 20, total=65)
    assert [p["offset"] for p in strategy.ahead(first)] == [20, 40, 60]
    assert strategy.ahead(Page(number=1, items=[], total=65)) == []


class Counted:
    """Pages of 10 of a listing of 200, each answered after 5 ms; counts the requests
    running at once."""

    def __init__(self) -> None:
        self.running = self.most = 0
        self.lock = threading.Lock()
        self.asked: list[int] = []

    def fetch(self, params: dict[str, Any], number: int) -> Page:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.asked.append(number)
        time.sleep(0.005)
        with self.lock:
            self.running -= 1
        items = [{"id": f"i{n}"} for n in range(params["offset"], params["offset"] + 10)]
        return Page(number=number, items=items, total=200)


def test_a_window_lets_requests_go_on_while_the_consumer_is_busy_never_more_at_once() -> None:
    """With a window of 6 pages and 2 requests in flight, a consumer busy with page 2 has
    pages 3 to 8 asked for meanwhile, never more than 2 at once; with no window, only 3
    and 4."""
    for window, asked_meanwhile in ((6, 6), (None, 2)):
        listing = Counted()
        with ThreadPoolExecutor(2) as pool:
            pages = drive(
                OffsetPaging(10), listing.fetch, submit=pool.submit, in_flight=2, window=window
            )
            assert [next(pages).number, next(pages).number] == [1, 2]
            time.sleep(0.2)  # busy with page 2: the pool answers what it was given meanwhile
            with listing.lock:
                meanwhile = sorted(listing.asked)[2:]
            assert meanwhile == list(range(3, 3 + asked_meanwhile))
            rest = [page.number for page in pages]
        assert rest == list(range(3, 21)) and listing.most == 2
