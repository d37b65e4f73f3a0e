"""The request pipeline every emulated API shares, and the hooks a provider dialect fills in.

:meth:`EmulatorApp._serve` answers a request in the steps docs/emulators.md lists: the
dialect's :meth:`~EmulatorApp.read` (route, paging), the faults that replace the page (as a
gateway in front of the API would; for a marker listing once the marker is found),
:meth:`~EmulatorApp.authenticate`, the rate limit, :meth:`~EmulatorApp.select`, the
:meth:`~EmulatorApp.listing`, the page faults, :meth:`~EmulatorApp.page`, then the faults
that change the catalogue. A dialect supplies those hooks, its error
:meth:`~EmulatorApp.envelope`, its :attr:`~EmulatorApp.answers` and its refusals.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from inventory.emulation.catalogue import Catalogue, control_mutate
from inventory.emulation.faults import FAULT_KINDS, FaultRule, Faults
from inventory.emulation.messages import Request, Response

#: The pages a gateway or load balancer in front of the API sends: HTML, not the API's
#: JSON envelope, so the client must cope with a body it cannot parse.
_PAGES = {
    "http_500": (500, "500 Internal Server Error"),
    "http_503": (503, "503 Service Unavailable"),
    "http_429": (429, "429 Too Many Requests"),
    "html_200": (200, "Service maintenance: back soon"),
}


@dataclass(frozen=True, slots=True)
class Call:
    """What one request asks for, as the dialect read it."""

    offset: int = 0
    limit: int | None = None  # None: the whole listing in one answer
    marker: str | None = None
    selection: Any = ()  # filters and order, hashable: the key of the listing view
    extra: Any = None  # anything else the dialect wants to keep from the request


class Refusal(Exception):
    """The provider refuses the request; ``response`` is its answer."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class EmulatorApp:
    """One provider's emulated API over one :class:`Catalogue` (see the module docstring)."""

    #: The provider's name, as in the config.
    provider: ClassVar[str]
    #: What its catalogue is, to generate one from a seed.
    catalogue_class: ClassVar[type[Catalogue]]
    #: How the listing pages: "offset" (with a total), "marker" or "single" (one answer).
    paging: ClassVar[str] = "offset"
    #: The provider's own answers as (HTTP status, code, message): "throttle" and "error"
    #: (what ``error_200`` sends) are required; other keys are extra fault kinds.
    answers: ClassVar[Mapping[str, tuple[int, Any, str]]]
    #: Its refusals by key, as (HTTP status, code, message template): :meth:`check` and
    #: :meth:`fail` raise them; :func:`refusal_table` reads them from a text table.
    refusals: ClassVar[Mapping[str, tuple[int, Any, str]]] = {}
    #: The key it accepts unless :meth:`accept` says otherwise: the config's credential
    #: fields with the documented test values, the key id first, then the secret.
    default_key: ClassVar[Mapping[str, str]] = {}
    #: How far (seconds) a signed request's time may be from the emulator's clock.
    clock_skew_s: float = 0.0
    #: The zones or regions it serves (all the same catalogue) and its region-listing call
    #: lists, unless the control API sets others (:attr:`locations`).
    default_locations: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        faults: Faults | None = None,
        rate_limit_per_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``rate_limit_per_s``: accept at most that many authenticated calls in any one
        second (the account's limit), refusing the others with :meth:`over_rate`; ``clock``
        is the emulator's time (Unix seconds), for that window and for signature times."""
        self.catalogue = catalogue
        self.faults = faults if faults is not None else Faults()
        self.key_id, self._secret = [*self.default_key.values(), "", ""][:2]
        self.rate_limit_per_s, self.clock = rate_limit_per_s, clock
        #: Replaced whole (never changed in place), so a request reads one set or the other.
        self.locations = self.default_locations
        self._calls: list[float] = []  # the times of the calls accepted in the last second
        self._calls_lock = threading.Lock()
        # Seeds 1, 2, 3, ... for control-API mutations that name none (next() on a count
        # is atomic, so concurrent requests never share one).
        self._seeds = itertools.count(1)
        self._rng = random.Random(0)  # for images the insert fault adds
        self._positions: tuple[Sequence[Any], dict[str, int]] | None = None
        self._positions_lock = threading.Lock()

    @property
    def fault_kinds(self) -> frozenset[str]:
        return FAULT_KINDS | (self.answers.keys() - {"error"})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.banner()}; {len(self.catalogue)} images)"

    # -- the dialect's hooks ---------------------------------------------------------------

    def envelope(self, status: int, code: Any, message: str) -> Response:
        """The provider's error answer."""
        raise NotImplementedError

    def route(self, request: Request) -> Response | None:
        """An answer for a request that is not the listing call (an IAM endpoint), or None."""
        return None

    def read(self, request: Request) -> Call:
        raise NotImplementedError

    def authenticate(self, request: Request, call: Call) -> None:
        raise NotImplementedError

    def select(self, request: Request, call: Call) -> Call:
        return call

    def listing(self, call: Call) -> Sequence[dict[str, Any]]:
        """The images the call selects: the catalogue's listing of its selection."""
        return self.catalogue.listing(call.selection)

    def page(self, items: list[dict[str, Any]], total: int, call: Call) -> Response:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        locations = sorted(self.locations)
        return {"provider": self.provider, "images": len(self.catalogue), "locations": locations}

    def now(self) -> datetime:
        """The emulator's time, for signature checks."""
        return datetime.fromtimestamp(self.clock(), UTC)

    def over_rate(self, calls: int) -> Refusal:
        """The answer to the ``calls``-th call within one second, beyond the rate limit."""
        return Refusal(self.envelope(*self.answers["throttle"]))

    def accept(self, key_id: str | None, secret: str | None) -> None:
        """Accept other credentials than the documented defaults (None keeps that one)."""
        self.key_id, self._secret = key_id or self.key_id, secret or self._secret

    def credentials(self) -> dict[str, str]:
        """The config's credential fields and the values this app accepts (test keys)."""
        return dict(zip(self.default_key, (self.key_id, self._secret), strict=True))

    def source_options(self, url: str) -> dict[str, Any]:
        """``[sources.options]`` a source needs to reach this app at ``url``."""
        return {}

    def banner(self) -> str:
        """What ``inventory emulate`` prints about what the app accepts (no secrets)."""
        return ""

    # -- the engine ------------------------------------------------------------------------

    def fail(self, key: str, /, *args: Any, **kwargs: Any) -> Refusal:
        """The refusal ``refusals[key]``, its message formatted with the arguments."""
        status, code, message = self.refusals[key]
        return Refusal(self.envelope(status, code, message.format(*args, **kwargs)))

    def check(self, ok: object, key: str, /, *args: Any, **kwargs: Any) -> None:
        """Raise :meth:`fail` unless ``ok``."""
        if not ok:
            raise self.fail(key, *args, **kwargs)

    def integer(self, text: str, key: str, /, *args: Any, **kwargs: Any) -> int:
        """``text`` as an integer, else :meth:`fail` ``key`` with the arguments."""
        try:
            return int(text)
        except ValueError:
            raise self.fail(key, *args, **kwargs) from None

    def moment(self, text: str, fmt: str, key: str, /, *args: Any, **kwargs: Any) -> datetime:
        """``text`` as a UTC time written in ``fmt``, else :meth:`fail` ``key``."""
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            raise self.fail(key, *args, **kwargs) from None

    def mutate(self, **counts: Any) -> dict[str, list[str]]:
        """The control API's mutation: :func:`inventory.emulation.catalogue.control_mutate`."""
        return control_mutate(self.catalogue, counts, self._seeds)

    def handle(self, request: Request) -> Response:
        try:
            other = self.route(request)
            return other if other is not None else self._serve(request)
        except Refusal as refusal:
            return refusal.response

    def _serve(self, request: Request) -> Response:
        call = self.read(request)
        marker = self.paging == "marker"
        rules = [] if marker else self.faults.take_all(self._page_number(call.offset, call.limit))
        early = self._answer(rules)
        if early is not None:
            return early
        self.authenticate(request, call)
        self._admit()
        call = self.select(request, call)
        view = self.listing(call)
        start = self._after(view, call.marker) if marker else call.offset
        if marker:  # only now is the page known
            rules = self.faults.take_all(self._page_number(start, call.limit))
            early = self._answer(rules)
            if early is not None:
                return early
        kinds = {rule.kind: rule for rule in rules}
        total = len(view)
        limit = total if call.limit is None else call.limit
        if "listing_cap" in kinds:
            view = view[: kinds["listing_cap"].value]
        if "page_cap" in kinds:
            limit = min(limit, kinds["page_cap"].value or 0)  # never None: FaultRule checks
        begin = start - 1 if "duplicate" in kinds and start > 0 else start
        items = list(view[begin : begin + limit])
        if "empty_page" in kinds:
            items = []
        elif "short_page" in kinds:
            items = items[: len(items) // 2]
        response = self.page(items, total, replace(call, offset=start, limit=limit))
        if "malformed" in kinds:
            response = replace(response, body=response.body[: len(response.body) // 2])
        elif "truncated" in kinds:
            response = replace(response, cut=True)
        self._change(kinds, view, start + limit, items)
        return response

    def serve_other(
        self, request: Request, call: Call, answer: Callable[[Call], Response]
    ) -> Response:
        """A call other than the listing (a region listing, from :meth:`route`): the
        answer faults of page 1 (a gateway's), the signature, the rate limit, ``answer``."""
        early = self._answer(self.faults.take_all(1))
        if early is not None:
            return early
        self.authenticate(request, call)
        self._admit()
        return answer(call)

    def _admit(self) -> None:
        """Count a call against the rate limit: a sliding one-second window."""
        if self.rate_limit_per_s is None:
            return
        moment = self.clock()
        with self._calls_lock:
            self._calls = [then for then in self._calls if moment - then < 1.0]
            if len(self._calls) >= self.rate_limit_per_s:
                raise self.over_rate(len(self._calls) + 1)
            self._calls.append(moment)

    @staticmethod
    def _page_number(start: int, limit: int | None) -> int:
        return start // limit + 1 if limit else 1

    def _after(self, view: Sequence[dict[str, Any]], marker: str | None) -> int:
        """The index after the marker image in ``view``; the position table is built once
        per view (views are replaced, never changed), so a lookup is O(1) per page."""
        if marker is None:
            return 0
        key = self.catalogue.id_key
        with self._positions_lock:
            if self._positions is None or self._positions[0] is not view:
                self._positions = (view, {image[key]: n for n, image in enumerate(view)})
            index = self._positions[1].get(marker)
        if index is None:  # a marker listing's refusals name this answer "bad_marker"
            raise self.fail("bad_marker")
        return index + 1

    def _answer(self, rules: list[FaultRule]) -> Response | None:
        """Sleep for a latency rule; the answer of a rule that replaces the page, or None."""
        for rule in rules:  # a stall first, whatever order the rules were added in
            if rule.kind == "latency":
                time.sleep(rule.latency_s)
        for rule in rules:
            kind = rule.kind
            if kind in _PAGES:
                status, title = _PAGES[kind]
                page = Response.html(status, title)
                return replace(page, headers={"Retry-After": "1"}) if status == 429 else page
            if kind == "reset":
                return Response(0, b"", reset=True)
            if kind == "error_200":
                return self.envelope(200, *self.answers["error"][1:])
            if kind in self.answers:  # throttle, and the dialect's own kinds
                return self.envelope(*self.answers[kind])
        return None

    def _change(
        self,
        kinds: Mapping[str, FaultRule],
        view: Sequence[dict[str, Any]],
        after: int,
        items: list[dict[str, Any]],
    ) -> None:
        key = self.catalogue.id_key
        if "shrink" in kinds:
            # An offset listing shifts when an earlier image goes; a marker listing is hurt
            # when its marker image goes before the next page is asked for.
            listed = items if self.paging == "marker" else view[:1]
            if listed:  # nothing goes after an empty page
                self.catalogue.drop(listed[-1][key])
        if "remove" in kinds and after < len(view):
            self.catalogue.drop(view[after][key])
        if "insert" in kinds:
            self.catalogue.insert_new(self._rng)


def refusal_table(text: str, status: int | None = None) -> dict[str, tuple[int, Any, str]]:
    """A dialect's :attr:`EmulatorApp.refusals` from a text table, one a line:
    ``key status code message``, or ``key code message`` when every refusal is answered
    with the same HTTP ``status``. The message is a ``str.format`` template."""
    table: dict[str, tuple[int, Any, str]] = {}
    for row in text.strip().splitlines():
        if status is None:
            key, answered, code, message = row.split(maxsplit=3)
            table[key] = (int(answered), code, message)
        else:
            key, code, message = row.split(maxsplit=2)
            table[key] = (status, code, message)
    return table
