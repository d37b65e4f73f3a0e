"""Fault rules: make page *k* of a listing misbehave, the same way for every provider.

docs/emulators.md lists every kind and what the client gets. The engine answers them
(:mod:`inventory.emulation.app`): some instead of the page, some by changing the page, some
by changing the catalogue after the answer; a dialect only says how its provider throttles
and shapes an error, and may add kinds of its own (a provider's "internal error" code).
"""

from __future__ import annotations

import threading
from collections.abc import Container, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: Faults that break the answer: a gateway's page or the provider's own answer instead of
#: the page, or the real page's body or connection broken.
ANSWER_KINDS = frozenset(
    {"http_500", "http_503", "http_429", "html_200"}
    | {"throttle", "error_200"}
    | {"malformed", "truncated", "reset"}
)
#: Faults that change what the page holds.
PAGE_KINDS = frozenset({"empty_page", "short_page", "duplicate", "page_cap", "listing_cap"})
#: Faults that change the catalogue once the page is answered.
CHANGE_KINDS = frozenset({"shrink", "insert", "remove"})
#: Every engine fault kind.
FAULT_KINDS = ANSWER_KINDS | PAGE_KINDS | CHANGE_KINDS | {"latency"}
#: Kinds that need a ``value`` (a number of items).
VALUE_KINDS = frozenset({"page_cap", "listing_cap"})


def _count(value: object) -> bool:
    # bool is an int subclass; "page": true is a mistake, not page 1.
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Make page ``page`` (1-based; None = every page) misbehave ``times`` times (None =
    always). ``latency_s`` is for ``latency``, ``value`` for the caps."""

    kind: str
    page: int | None = None
    times: int | None = None
    latency_s: float = 0.0
    value: int | None = None

    def __post_init__(self) -> None:
        # A cap without its size would silently cap nothing (or everything).
        bad = self.value is not None and (not _count(self.value) or self.value < 0)
        if (self.kind in VALUE_KINDS) != (self.value is not None) or bad:
            raise ValueError(f"fault value is a count of items for {sorted(VALUE_KINDS)} only")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], kinds: Container[str] = FAULT_KINDS) -> FaultRule:
        """Parse one rule of the control API, refusing what would silently never match."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a fault rule is a JSON object, not {data!r}")
        unknown = set(data) - {"kind", "page", "times", "latency_s", "value"}
        if unknown:
            raise ValueError(f"unknown fault rule field {sorted(unknown)[0]!r}")
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in kinds:
            known = ", ".join(sorted(kinds)) if isinstance(kinds, Iterable) else "?"
            raise ValueError(f"unknown fault kind {kind!r} (known: {known})")
        page, times, latency = data.get("page"), data.get("times"), data.get("latency_s", 0.0)
        value = data.get("value")
        if page is not None and (not _count(page) or page < 1):
            raise ValueError(f"fault page must be a page number from 1, not {page!r}")
        if times is not None and (not _count(times) or times < 0):
            raise ValueError(f"fault times must be a count from 0, not {times!r}")
        if not isinstance(latency, int | float) or isinstance(latency, bool) or latency < 0:
            raise ValueError(f"fault latency_s must be seconds from 0, not {latency!r}")
        return cls(kind=kind, page=page, times=times, latency_s=float(latency), value=value)

    def to_dict(self) -> dict[str, Any]:
        """The rule as the control API shows it (``value`` only for the caps)."""
        return {k: v for k, v in asdict(self).items() if k != "value" or v is not None}


class Faults:
    """A thread-safe list of fault rules, each with the uses it has left."""

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._lock = threading.Lock()
        # [rule, remaining uses or None]; a list so a use can be counted in place.
        self._rules: list[list[Any]] = [[r, r.times] for r in rules]

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append([rule, rule.times])

    def replace(self, rules: Iterable[FaultRule]) -> None:
        with self._lock:
            self._rules = [[r, r.times] for r in rules]

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[FaultRule]:
        """The rules that can still fire, in the order they were added."""
        with self._lock:
            return [rule for rule, left in self._rules if left is None or left > 0]

    def take_all(self, page: int) -> list[FaultRule]:
        """The live rules for ``page``, each use counted: at most one ``latency`` rule and
        one other, in the order they were added, so a stall can precede a failure."""
        taken: dict[bool, FaultRule] = {}  # by "is a latency rule": one of each at most
        with self._lock:
            for entry in self._rules:
                rule, left = entry
                is_latency = rule.kind == "latency"
                if rule.page not in (None, page) or is_latency in taken:
                    continue
                if left is not None and left <= 0:
                    continue
                if left is not None:
                    entry[1] = left - 1
                taken[is_latency] = rule
                if len(taken) == 2:
                    break
        return list(taken.values())
