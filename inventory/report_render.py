"""Render report tables as terminal tables, CSV or JSON. Pure: no database, no I/O.

- ``table``: aligned columns. On a terminal, headers are bold and the widest columns are
  shortened with an ellipsis to fit the window; piped, it is plain text, never cut, with
  no escape codes, so ``grep`` and ``awk`` see every value.
- ``csv``: a header row then one row per record (RFC 4180 quoting by the csv module).
- ``json``: JSON Lines, one object per row (the convention of every ``--json`` of the
  CLI; docs/operations.md, "Output for scripts").

In csv and json, timestamps are ISO 8601 in UTC (``2026-11-24T08:00:00.123456Z``),
durations are seconds (a number), decimals are numbers in json and exact text in csv,
nulls are empty in csv. In the table, timestamps are UTC to the second and durations are
compact (``3d 4h``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

FORMATS = ("table", "csv", "json")

_BOLD, _RESET = "\x1b[1m", "\x1b[0m"
_MIN_WIDTH = 8  # a column is never shortened below this


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """A value as JSON can carry it (also the basis of the csv form)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(plain(v)) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(plain(value))


def duration(delta: timedelta) -> str:
    """Compact and coarse: the two largest units (``3d 4h``, ``12m 5s``)."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return " ".join(str(value).split())  # one line per row, whatever the value holds


def _fit(widths: list[int], limit: int) -> list[int]:
    """Shrink the widest columns until the row fits in ``limit`` characters."""
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > limit:
        widest = max(range(len(widths)), key=lambda i: widths[i])
        if widths[widest] <= _MIN_WIDTH:
            break  # cannot fit: let the terminal wrap rather than show nothing useful
        widths[widest] -= 1
    return widths


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def render_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    terminal_width: int | None = None,
) -> str:
    """Aligned columns; ``terminal_width`` set means a terminal: bold header, fit to width."""
    header = [c.upper() for c in columns]
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    if terminal_width is not None:
        widths = _fit(widths, terminal_width)
    lines = []
    for n, row in enumerate([header, *cells]):
        line = "  ".join(_clip(c, w).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        lines.append(f"{_BOLD}{line}{_RESET}" if n == 0 and terminal_width is not None else line)
    if not rows:
        lines.append("(no rows)")
    return "\n".join(lines)


def render_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_value(v) for v in row])
    return out.getvalue()


def render_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return "".join(json_line(dict(zip(columns, row, strict=True))) + "\n" for row in rows)


def json_line(record: Mapping[str, Any]) -> str:
    """One record as one line of JSON: the output convention of every command
    (times ISO 8601 in UTC with Z, durations in seconds, decimals as numbers, nulls kept)."""
    return json.dumps({k: plain(v) for k, v in record.items()}, ensure_ascii=False)


def render(
    fmt: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    terminal_width: int | None = None,
) -> str:
    if fmt == "csv":
        return render_csv(columns, rows)
    if fmt == "json":
        return render_json(columns, rows)
    if fmt == "table":
        return render_table(columns, rows, terminal_width=terminal_width) + "\n"
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
