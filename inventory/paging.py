"""Paging strategies, and the one loop that drives them.

A strategy is a small object that says which parameters fetch the first page, which fetch
the next one given the last page, and — once the listing has ended — whether the pages seen
add up to the *whole* listing. That last answer matters more than anything else here: only
a complete listing may mark images as disappeared, so a strategy says "complete" only when
it can prove it, and gives the reason when it cannot.

Strategies raise :class:`~inventory.errors.PagingError` rather than loop or skip.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from inventory.errors import PagingError


@dataclass(slots=True)
class Page:
    """One response's worth of raw image dicts. ``number`` is 1-based.

    An answer too large to hold (one KSyun listing) comes as a ``stream`` instead, its items
    parsed as they are read (:class:`inventory.jsonstream.ItemStream`); ``items`` is then
    empty. Read a page's items through :meth:`batches`, and its size through :attr:`size`
    once they have been read."""

    number: int
    items: list[dict[str, Any]]
    total: int | None = None
    next_marker: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    stream: Stream | None = None

    @property
    def size(self) -> int:
        """How many items the page holds (of a stream: how many were read)."""
        return self.stream.count if self.stream is not None else len(self.items)

    def batches(self, size: int) -> Iterator[list[dict[str, Any]]]:
        """The items, the whole list at once, or a stream ``size`` at a time."""
        if self.stream is None:
            yield self.items
            return
        items = iter(self.stream)
        while batch := list(islice(items, size)):
            yield batch


class Stream(Protocol):
    """Items read once, as they are parsed; ``count``: how many so far."""

    count: int

    def __iter__(self) -> Iterator[dict[str, Any]]: ...


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
        self.moved_at: int | None = None  # the page whose total first differed
        self.complete = False
        self.incomplete_reason: str | None = "the listing did not finish"

    def first(self) -> dict[str, Any]:
        return {self.offset_param: 0, self.limit_param: self.limit}

    def next(self, page: Page) -> dict[str, Any] | None:
        if page.total is None:
            raise PagingError("the response has no total count, so paging cannot tell the end")
        if self.moved_at is None and self.totals and page.total != self.totals[0]:
            self.moved_at = page.number
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

    def ahead(self, first: Page) -> list[dict[str, Any]]:
        """After the first page, the parameters of every later page its total already
        fixes, so they can be asked for with several requests in flight (:func:`drive`).
        The stride is what the first page held: a server that clamps ``limit`` answers its
        own page size. Only a hint: :meth:`next`, fed the pages in order, stays the judge,
        and a page that does not end where the plan expects ends the plan."""
        if first.total is None or not first.items:
            return []
        stride = len(first.items)
        offsets = range(stride, first.total, stride)
        if len(offsets) >= self.max_pages:
            return []  # next() refuses at max_pages; let it, one page at a time
        return [{self.offset_param: o, self.limit_param: self.limit} for o in offsets]

    def _finish(self, page: Page) -> None:
        first, last = self.totals[0], self.totals[-1]
        if self.moved_at is not None:
            self.incomplete_reason = (
                f"the total changed from {first} to {last} at page {self.moved_at} while "
                "paging, so items may have shifted between pages"
            )
        elif not page.items:
            self.incomplete_reason = (
                f"page {page.number} came back empty after {self.seen} of the {last} items "
                "the total counts, so the listing was cut short"
            )
        elif self.seen != last:
            self.incomplete_reason = (
                f"saw {self.seen} items by page {page.number} but the total says {last}"
            )
        else:
            self.complete = True
            self.incomplete_reason = None


class SinglePage:
    """One response holds the whole listing (Kingsoft KEC DescribeImages).

    Nothing in the answer says whether the backend cut it short, so a listing that reaches
    ``cap`` images, the most the backend is known to answer at once, may be cut and is
    incomplete; ``narrow`` says how to split the source so each listing holds fewer.
    """

    def __init__(self, cap: int | None = None, narrow: str = "") -> None:
        self.cap, self.narrow = cap, narrow
        self.complete = False
        self.incomplete_reason: str | None = "the listing did not finish"

    def first(self) -> dict[str, Any]:
        return {}

    def next(self, page: Page) -> dict[str, Any] | None:
        if self.cap is not None and page.size >= self.cap:
            self.incomplete_reason = (
                f"the one answer holds {page.size} images, the most the API answers at "
                f"once (listing_cap {self.cap}), so it may be cut short"
            ) + (f"; {self.narrow}" if self.narrow else "")
        else:
            self.complete, self.incomplete_reason = True, None
        return None


class MarkerPaging:
    """``marker``/``limit`` with no total (Glance v1), ending only at a *confirmed* end.

    A short or empty page may be the end, but it may also be a server that clamps ``limit``
    or one page answered wrong; it is never taken as the end on its own word. Instead the
    strategy *probes*: it asks for the listing in the ``reverse`` of its ``order``, one
    item. The end is confirmed when that item is the last image listed (or the probe is
    empty and nothing was listed). Otherwise a short page was a clamped one, so paging
    goes on after its last image (and pages of that length count as full from then on),
    and an empty page broke the listing off: the run keeps what it saw but is incomplete.
    The probe's page is not part of the listing (:attr:`probing` is true while it is
    asked for).

    A marker that does not advance raises instead of looping forever.
    """

    def __init__(
        self,
        limit: int,
        *,
        order: Mapping[str, Any],
        reverse: Mapping[str, Any],
        marker_param: str = "marker",
        limit_param: str = "limit",
        marker_of: Callable[[dict[str, Any]], str] = lambda item: str(item["id"]),
        max_pages: int = 1_000_000,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.order, self.reverse = dict(order), dict(reverse)
        self.marker_param = marker_param
        self.limit_param = limit_param
        self.marker_of = marker_of
        self.max_pages = max_pages
        self.full = limit  # a page this long is not the end; less once a server clamps
        self.markers: set[str] = set()
        self.last: str | None = None  # the id of the last image listed
        self.probing = False
        self._ended: Page | None = None  # the short or empty page being checked
        self.complete = False
        self.incomplete_reason: str | None = "the listing did not finish"

    def first(self) -> dict[str, Any]:
        return {**self.order, self.limit_param: self.limit}

    def next(self, page: Page) -> dict[str, Any] | None:
        if self.probing:
            return self._probed(page)
        if page.items:
            self.last = self.marker_of(page.items[-1])
        if len(page.items) >= self.full:
            return self._after(page)
        self.probing, self._ended = True, page
        return {**self.reverse, self.limit_param: 1}

    def _after(self, page: Page) -> dict[str, Any]:
        marker = page.next_marker or self.last
        assert marker is not None  # a page with items set it
        if marker in self.markers:
            raise PagingError(f"the marker {marker!r} did not advance; refusing to loop")
        if page.number >= self.max_pages:
            raise PagingError(f"more than {self.max_pages} pages; refusing to go on")
        self.markers.add(marker)
        return {**self.order, self.marker_param: marker, self.limit_param: self.limit}

    def _probed(self, probe: Page) -> dict[str, Any] | None:
        ended, self.probing = self._ended, False
        assert ended is not None
        head = self.marker_of(probe.items[0]) if probe.items else None
        if head == self.last:
            self.complete, self.incomplete_reason = True, None
            return None
        if ended.items:  # a short page, yet more follows: the server clamps the page size
            self.full = len(ended.items)
            return self._after(ended)
        found = f"begins with {head!r}, which was not listed" if head else "is empty"
        last = f"the last image listed is {self.last!r}" if self.last else "none was listed"
        self.incomplete_reason = (
            f"page {ended.number} came back empty, but the listing in reverse order {found} "
            f"({last}), so the listing was cut short (or the API ignores the sort order)"
        )
        return None


Fetch = Callable[[dict[str, Any], int], Page]
#: Runs ``fetch(params, number)`` elsewhere (a thread pool's ``submit``).
Submit = Callable[[Fetch, dict[str, Any], int], "Future[Page]"]


def drive(
    strategy: PagingStrategy,
    fetch: Fetch,
    *,
    submit: Submit | None = None,
    in_flight: int = 1,
    window: int | None = None,
) -> Iterator[Page]:
    """Fetch pages until the strategy says the listing has ended.

    ``fetch(params, page_number)`` raises on any failure; this loop never swallows one, so
    an error can never look like the end of a listing. A page a strategy asks for while
    ``probing`` (to confirm the end) is given to the strategy but not yielded.

    With ``submit`` and ``in_flight`` > 1, the pages a strategy can plan after the first
    (:meth:`OffsetPaging.ahead`) are fetched with up to ``in_flight`` requests at once, and
    still given to the strategy, and yielded, in order: every completeness check sees the
    same pages in the same order as one request at a time would, whatever order the answers
    arrive in. When a page does not end where the plan expects (a short page, a moved
    listing), the planned pages not yet yielded are dropped and paging goes on one page at
    a time from where the strategy says, exactly as without a plan.

    ``window`` (at least ``in_flight``, which is its default) is how many planned pages may
    be asked for and not yet yielded: in flight, queued, or answered and waiting for the
    consumer. ``submit``'s executor runs at most ``in_flight`` at once, so a window larger
    than that never puts more requests in flight; it lets the requests go on while the
    consumer is busy with the pages before them, instead of stopping until it takes one.
    """
    params: dict[str, Any] | None = strategy.first()
    number = 1
    plan_ahead = getattr(strategy, "ahead", None)
    while params is not None:
        probe = getattr(strategy, "probing", False)  # a check of the end, not a listing page
        page = fetch(params, number)
        if not probe:
            yield page
        params = _next(strategy, page, number)
        number += 1
        if number == 2 and params is not None and submit and in_flight > 1 and plan_ahead:
            planned = plan_ahead(page)
            if planned:
                ahead = max(window or in_flight, in_flight)
                params, number = yield from _planned(
                    strategy, fetch, submit, ahead, planned, params
                )


def _next(strategy: PagingStrategy, page: Page, number: int) -> dict[str, Any] | None:
    try:
        return strategy.next(page)
    except PagingError as err:
        raise err.located(None, number) from None


def _planned(
    strategy: PagingStrategy,
    fetch: Fetch,
    submit: Submit,
    window: int,
    planned: list[dict[str, Any]],
    params: dict[str, Any] | None,
) -> Generator[Page, None, tuple[dict[str, Any] | None, int]]:
    """Pages 2.. of ``planned``, ``window`` submitted at a time, from page 2's ``params``
    (what the strategy asked for after page 1); returns where paging goes on."""
    waiting: deque[tuple[int, dict[str, Any], Future[Page]]] = deque()
    upcoming = iter(enumerate(planned, start=2))

    def top_up() -> None:
        while len(waiting) < window and (nxt := next(upcoming, None)) is not None:
            waiting.append((nxt[0], nxt[1], submit(fetch, nxt[1], nxt[0])))

    number = 2
    try:
        top_up()
        while waiting and params is not None:
            number, asked, future = waiting[0]
            if asked != params:  # the listing did not go as planned: go on from params
                break
            waiting.popleft()
            top_up()
            page = future.result()  # a page's failure, in page order
            yield page
            params = _next(strategy, page, number)
            number += 1
    finally:
        for _, _, future in waiting:
            future.cancel()
    return params, number
