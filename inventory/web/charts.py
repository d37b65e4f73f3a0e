"""Geometry of the dashboard's two charts, drawn as inline SVG by the templates.

Pure functions from rows to rectangles: no database, no markup. The templates turn each
shape into an SVG element whose class names its status (``st-deprecated``), so colours
live in one stylesheet and the browser tests can read the chart back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

#: The order statuses are stacked and listed in: healthy first, then the flagged ones.
STATUS_ORDER = (
    "available",
    "pending",
    "unknown",
    "deprecated",
    "suspended",
    "failed",
    "deleted",
    "ceased",
    "gone",
)

WIDTH = 960  # the SVG's user units; the stylesheet scales it to the page
DAILY_HEIGHT = 220  # a daily chart's height, its day labels included
_MIN_SEGMENT = 24.0  # a status held for seconds in a month-long timeline stays visible


def status_key(status: str) -> tuple[int, str]:
    """Sorts statuses in :data:`STATUS_ORDER`, any other after them by name."""
    rank = STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)
    return rank, status


def in_status_order(counts: Mapping[str, int]) -> dict[str, int]:
    """Counts per status, their keys in :func:`status_key` order (for badges and JSON)."""
    return {status: counts[status] for status in sorted(counts, key=status_key)}


@dataclass(frozen=True)
class Segment:
    """One status interval of an image's timeline."""

    status: str
    start: datetime
    end: datetime | None  # None: still open
    x: float
    width: float


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    segments: list[Segment]
    ticks: list[Tick]
    width: int = WIDTH


def timeline(intervals: Sequence[dict[str, Any]], now: datetime) -> Timeline:
    """Segments for an image's history intervals (``status``, ``valid_from``,
    ``valid_to``), oldest first, spread over the time from the first one to ``now``.

    Each segment is as wide as its interval lasted, except that a status held for a
    moment is widened to stay visible (to ``_MIN_SEGMENT``, less when there are many) at
    the expense of the long ones, which keep at least three quarters of the chart between
    them. The ticks are placed by the same mapping, so each falls inside the segment of
    the status the image had at that moment. An open interval runs to ``now``.
    """
    if not intervals:
        return Timeline([], [])
    start = intervals[0]["valid_from"]
    end = max(now, *(i["valid_to"] or now for i in intervals))
    lasted = [
        max(((i["valid_to"] or end) - i["valid_from"]).total_seconds(), 0.0) for i in intervals
    ]
    total = sum(lasted) or 1.0
    raw = [d / total * WIDTH for d in lasted]
    floor = min(_MIN_SEGMENT, WIDTH / (4 * len(raw)))
    need = sum(floor - w for w in raw if w < floor)  # what the short ones are given...
    spare = sum(w - floor for w in raw if w >= floor)  # ...from what the long ones have
    widths = [floor if w < floor else w - (w - floor) * need / spare for w in raw]
    segments, x = [], 0.0
    for interval, width in zip(intervals, widths, strict=True):
        status, begun, ended = interval["status"], interval["valid_from"], interval["valid_to"]
        segments.append(Segment(status, begun, ended, x, width))
        x += width
    span = end - start
    ticks = [
        Tick(_x_at(start + span * k / 4, segments, end), _moment(start + span * k / 4, span))
        for k in range(5)
    ]
    return Timeline(segments, ticks)


def _x_at(moment: datetime, segments: list[Segment], end: datetime) -> float:
    """Where ``moment`` falls on the drawn timeline."""
    for s in segments:
        until = s.end or end
        if moment <= until:
            lasted = (until - s.start).total_seconds()
            into = max((moment - s.start).total_seconds(), 0.0)
            return s.x + (s.width * into / lasted if lasted > 0 else 0.0)
    return WIDTH


def _moment(at: datetime, span: timedelta) -> str:
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d" if span > timedelta(days=3) else "%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Bar:
    """One status's share of one day's bar."""

    day: date
    status: str
    images: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class DailyChart:
    source: str
    provider: str
    days: list[date]
    statuses: list[str]  # those with a count above zero on some day, in STATUS_ORDER
    bars: list[Bar]
    totals: dict[date, int]
    latest: dict[str, int]  # each status's count on the last day, for the legend
    top: int  # the y axis' maximum
    width: int = WIDTH
    height: int = DAILY_HEIGHT


def daily_charts(rows: Sequence[dict[str, Any]]) -> list[DailyChart]:
    """One stacked bar chart per source from ``daily_counts`` rows (``day``, ``source``,
    ``provider``, ``status``, ``images``)."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    return [_chart(name, found) for name, found in by_source.items()]


def _chart(source: str, rows: list[dict[str, Any]]) -> DailyChart:
    days = sorted({r["day"] for r in rows})
    counts = {(r["day"], r["status"]): int(r["images"]) for r in rows}
    statuses = sorted({r["status"] for r in rows if r["images"]}, key=status_key)
    totals = {d: sum(counts.get((d, s), 0) for s in statuses) for d in days}
    top = _nice(max(totals.values(), default=0))
    plot = DAILY_HEIGHT - 20  # room for the day labels
    slot = WIDTH / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        base = float(plot)
        for status in statuses:
            images = counts.get((day, status), 0)
            if not images:
                continue
            height = images / top * plot
            base -= height
            bars.append(Bar(day, status, images, index * slot + 1, base, max(slot - 2, 1), height))
    latest = {s: counts.get((days[-1], s), 0) for s in statuses}
    return DailyChart(source, rows[0]["provider"], days, statuses, bars, totals, latest, top)


def _nice(value: int) -> int:
    """The smallest of 1, 2, 5 times 10^n at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return max(step * factor, 1)
        step *= 10
