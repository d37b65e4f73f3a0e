"""Paging strategies, and the one loop that drives them.

A strategy is a small object that says which parameters fetch the first page, which fetch
the next one given the last page, and — once the listing has ended — whether the pages seen
add up to the *whole* listing. That last answer matters more than anything else here: only
a complete listing may mark images as disappeared, so a strategy says "complete" only when
it can prove it, and gives the reason when it cannot.

Strategies raise :class:`~inventory.errors.PagingError` rather than loop or skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from inventory.errors import PagingError


@dataclass(slots=True)
class Page:
    """One response's worth of raw image dicts. ``number`` is 1-based."""

    number: int
    items: list[dict[str, Any]]
    total: int | None = None
    next_marker: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class PagingStrategy(Protocol):
    complete: bool
    incomplete_reason: str | None

    def first(self) -> dict[str, Any]: ...

    def next(self, page: Page) -> dict[str, Any] | None: ...


class OffsetPaging:
    """``offset``/``limit`` against a reported total (QingCloud, Tencent, Huawei IEC).

    The listing ends when the items seen reach the total, or at an empty page. It is
    complete only when the total stayed the same on every page and the items seen equal it:
    if the total moves while we page, items shift between offsets and one may have been
    skipped, so the run keeps what it saw but marks nothing as gone.
    """

    def __init__(
        self,
        limit: int,
        *,
        offset_param: str = "offset",
        limit_param: str = "limit",
        max_pages: int = 1_000_000,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.max_pages = max_pages
        self.seen = 0
        self.totals: list[int] = []
        self.complete = False
        self.incomplete_reason: str | None = "the listing did not finish"

    def first(self) -> dict[str, Any]:
        return {self.offset_param: 0, self.limit_param: self.limit}

    def next(self, page: Page) -> dict[str, Any] | None:
        if page.total is None:
            raise PagingError("the response has no total count, so paging cannot tell the end")
        self.totals.append(page.total)
        self.seen += len(page.items)
        if not page.items or self.seen >= page.total:
            self._finish(page)
            return None
        if page.number >= self.max_pages:
            raise PagingError(f"more than {self.max_pages} pages; refusing to go on")
        # Continue from what was actually returned: a server that caps the page size below
        # the asked limit answers short pages before the end, and that is not the end.
        return {self.offset_param: self.seen, self.limit_param: self.limit}

    def _finish(self, page: Page) -> None:
        first, last = self.totals[0], self.totals[-1]
        if any(t != first for t in self.totals):
            self.incomplete_reason = (
                f"the total changed from {first} to {last} while paging, so items may have "
                "shifted between pages"
            )
        elif self.seen != last:
            self.incomplete_reason = f"saw {self.seen} items but the total says {last}" + (
                " (the listing ended at an empty page)" if not page.items else ""
            )
        else:
            self.complete = True
            self.incomplete_reason = None


class SinglePage:
    """One response holds the whole listing (Kingsoft KEC DescribeImages)."""

    def __init__(self) -> None:
        self.complete = False
        self.incomplete_reason: str | None = "the listing did not finish"

    def first(self) -> dict[str, Any]:
        return {}

    def next(self, page: Page) -> dict[str, Any] | None:  # noqa: ARG002 - one page is all
        self.complete = True
        self.incomplete_reason = None
        return None


class MarkerPaging:
    """``marker``/``limit`` with no total (Glance v1): the end is a short or empty page.

    A marker that does not advance raises instead of looping forever.
    """

    def __init__(
        self,
        limit: int,
        *,
        marker_param: str = "marker",
        limit_param: str = "limit",
        marker_of: Callable[[dict[str, Any]], str] = lambda item: str(item["id"]),
        max_pages: int = 1_000_000,
    ) -> None:
        self.limit = limit
        self.marker_param = marker_param
        self.limit_param = limit_param
        self.marker_of = marker_of
        self.max_pages = max_pages
        self.markers: set[str] = set()
        self.complete = False
        self.incomplete_reason: str | None = "the listing did not finish"

    def first(self) -> dict[str, Any]:
        return {self.limit_param: self.limit}

    def next(self, page: Page) -> dict[str, Any] | None:
        if len(page.items) < self.limit:
            self.complete = True
            self.incomplete_reason = None
            return None
        marker = page.next_marker or self.marker_of(page.items[-1])
        if marker in self.markers:
            raise PagingError(f"marker {marker!r} did not advance; refusing to loop")
        if page.number >= self.max_pages:
            raise PagingError(f"more than {self.max_pages} pages; refusing to go on")
        self.markers.add(marker)
        return {self.marker_param: marker, self.limit_param: self.limit}


def drive(strategy: PagingStrategy, fetch: Callable[[dict[str, Any], int], Page]) -> Iterator[Page]:
    """Fetch pages until the strategy says the listing has ended.

    ``fetch(params, page_number)`` raises on any failure; this loop never swallows one, so
    an error can never look like the end of a listing.
    """
    params: dict[str, Any] | None = strategy.first()
    number = 1
    while params is not None:
        page = fetch(params, number)
        yield page
        params = strategy.next(page)
        number += 1
