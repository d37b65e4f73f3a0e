"""What ``inventory sync`` shows a person at a terminal (built on rich).

While sources sync, stderr shows one live row per source in flight (page, images of the
total, a bar, the rate and the time left when the provider says how many there are; the
latest retry when a call is being retried) under a row counting the sources done. Rows
vanish as their source finishes; at the end stdout gets one table (source, outcome, new,
changed, deprecated, ceased, gone, duration...) and, under it, each failure or warning
once. Colour and live rows only on a terminal; rich honours ``NO_COLOR``. Piped output is
not made here: the CLI's plain lines stay as they were, stable for scripts.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from inventory.errors import without_source

if TYPE_CHECKING:
    from inventory.sync import RunResult

#: Status columns of the summary, always shown; others only when some source had them.
ALWAYS_BECAME = ("deprecated", "ceased")
OTHER_BECAME = ("suspended", "deleted", "failed", "available", "unknown")
OUTCOME_STYLE = {"succeeded": "green", "failed": "bold red", "aborted": "red", "skipped": "yellow"}


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 page``, ``12,345 pages``."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


class _Count(ProgressColumn):
    """``1,200/5,000 images p.3`` (no total: ``1,200 images p.3``)."""

    def render(self, task: Task) -> Text:
        if task.fields.get("kind") == "overall":
            return Text(f"{int(task.completed):,}/{int(task.total or 0):,} sources")
        pages = int(task.fields.get("pages", 0))
        images = int(task.completed)
        of = f"/{int(task.total):,}" if task.total is not None else ""
        return Text(f"{images:,}{of} images p.{pages:,}")


class _Rate(ProgressColumn):
    """Images a second over the last pages (rich's own moving window)."""

    def render(self, task: Task) -> Text:
        if task.fields.get("kind") == "overall" or not task.speed:
            return Text("")
        return Text(f"{task.speed:,.0f}/s", style="cyan")


class _Note(ProgressColumn):
    def render(self, task: Task) -> Text:
        note = str(task.fields.get("note", ""))
        return Text(note, style="yellow", overflow="ellipsis", no_wrap=True)


def _shown_in_rows(record: logging.LogRecord) -> bool:
    """Retries are said in their source's row (and the failure they end in, once, under
    the table): not also as log lines between the rows."""
    return getattr(record, "fields", {}).get("event") != "retry"


class SyncDisplay:
    """Live per-source progress on stderr and a closing table on stdout (if a terminal)."""

    def __init__(self, sources: Sequence[str], *, live: bool, table: bool) -> None:
        self.err = Console(stderr=True)
        self.out = Console(file=sys.stdout, highlight=False)
        self.live, self.table = live, table
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self.results: list[RunResult] = []
        self.skipped: list[tuple[str, str]] = []
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=12),
            _Count(table_column=Column(no_wrap=True)),
            _Rate(table_column=Column(no_wrap=True)),
            TimeRemainingColumn(compact=True),
            _Note(table_column=Column(no_wrap=True, overflow="ellipsis", max_width=48)),
            console=self.err,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._overall = self._progress.add_task(
            "synced", total=len(sources), kind="overall", visible=len(sources) > 1
        )

    @contextmanager
    def shown(self) -> Iterator[SyncDisplay]:
        """Live rows while the block runs; log lines are printed above them meanwhile."""
        if not self.live:
            yield self
            return
        handlers = [
            h
            for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler) and h.stream is sys.stderr
        ]
        with self._progress:
            proxy = FileProxy(self.err, sys.stderr)
            for handler in handlers:
                handler.setStream(proxy)
                handler.addFilter(_shown_in_rows)
            try:
                yield self
            finally:
                for handler in handlers:
                    handler.setStream(sys.stderr)
                    handler.removeFilter(_shown_in_rows)

    # -- the sync's callbacks (from its worker threads) --------------------------------

    def progress(self, source: str, pages: int, images: int, total: int | None) -> None:
        if not self.live:
            return
        task = self._task(source)
        self._progress.update(
            task, completed=images, total=total, pages=pages, note="", refresh=False
        )

    def retrying(self, source: str, attempt: int, attempts: int, reason: str) -> None:
        if not self.live:
            return
        note = f"retry {attempt} of {attempts - 1}: {reason}"
        self._progress.update(self._task(source), note=note)

    def _task(self, source: str) -> TaskID:
        with self._lock:
            if source not in self._tasks:
                self._tasks[source] = self._progress.add_task(
                    source, total=None, pages=0, note="", kind="source"
                )
            return self._tasks[source]

    def finished(self, result: RunResult) -> None:
        self.results.append(result)
        self._done(result.source)

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append((source, reason))
        self._done(source)

    def _done(self, source: str) -> None:
        if not self.live:
            return
        with self._lock:
            task = self._tasks.pop(source, None)
        if task is not None:
            self._progress.remove_task(task)
        self._progress.advance(self._overall)

    # -- the end -------------------------------------------------------------------------

    def summary(self) -> None:
        if not self.table or not (self.results or self.skipped):
            return
        self.out.print(summary_table(self.results, self.skipped))
        for line in notes(self.results, self.skipped):
            self.out.print(line, soft_wrap=True)


def summary_table(results: Sequence[RunResult], skipped: Sequence[tuple[str, str]] = ()) -> Table:
    became = [*ALWAYS_BECAME, *(s for s in OTHER_BECAME if any(r.became.get(s) for r in results))]
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("SOURCE", no_wrap=True, overflow="fold")
    table.add_column("OUTCOME", no_wrap=True)
    for name in ("SEEN", "NEW", "CHANGED", *(s.upper() for s in became), "GONE"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("TIME", justify="right", no_wrap=True)
    for r in sorted(results, key=lambda r: r.source):
        counts = (r.images_seen, r.inserted, r.changed, *(r.became.get(s, 0) for s in became))
        cells = [_number(n) for n in counts] if r.ok else ["-"] * len(counts)
        gone = _number(r.disappeared) if r.ok else "-"
        if r.ok and r.missing:
            gone += f" (+{r.missing:,} missing)"
        table.add_row(
            r.source,
            Text(_outcome(r), style=OUTCOME_STYLE.get(r.status, "")),
            *cells,
            gone,
            f"{r.duration_s:.1f}s",
        )
    for source, _reason in skipped:
        dashes = ["-"] * (4 + len(became))
        table.add_row(source, Text("skipped", style=OUTCOME_STYLE["skipped"]), *dashes, "-")
    return table


def _number(n: int) -> str:
    return f"{n:,}" if n else "0"


def _outcome(r: RunResult) -> str:
    if r.ok and r.disappearance_blocked:
        return "guarded"
    if r.ok and not r.listing_complete:
        return "partial"
    return r.status


def notes(results: Sequence[RunResult], skipped: Sequence[tuple[str, str]] = ()) -> list[Any]:
    """Under the table, once each: failures (with their endpoint and cause), the deletion
    guard, incomplete listings, warnings, skips."""
    lines: list[Any] = []
    for r in sorted(results, key=lambda r: r.source):
        if not r.ok:
            lines.append(
                Text.assemble((f"{r.source}: ", "bold"), (f"{r.status}: ", "red"), local(r))
            )
            continue
        if r.disappearance_blocked:
            lines.append(
                f"{r.source}: {r.disappearance_candidates:,} images missing at once; the "
                "deletion guard marked none gone (rerun with --allow-mass-disappearance if "
                "they really are)"
            )
        if not r.listing_complete:
            lines.append(
                f"{r.source}: listing incomplete, nothing marked gone: {r.incomplete_reason}"
            )
        if r.warning:
            lines.append(f"{r.source}: warning: {r.warning}")
    for source, reason in skipped:
        lines.append(f"{source}: skipped: {reason}")
    return lines


def local(result: RunResult) -> str:
    """The run's error without the source's name in front (the line says it already)."""
    return without_source(result.source, result.error or "")


def _age(moment: Any) -> str:
    from datetime import UTC, datetime

    from inventory.report_render import duration

    if moment is None:
        return "never"
    return f"{duration(datetime.now(UTC) - moment)} ago"


def _yes(value: Any) -> str:
    return "-" if value is None else ("yes" if value else "no")


def print_health(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``report health`` for a person at a terminal of any width (80 columns included):
    the columns that answer "is it healthy?", ages instead of timestamps, and each last
    error in full under the table (wrapped, never cut). Every column: --format csv|json."""
    out = Console(file=sys.stdout, highlight=False)
    if not rows:
        out.print("(no rows)")
        return
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    accounts = "account" in columns
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("SOURCE", overflow="fold")
    if accounts:
        table.add_column("ACCOUNT", overflow="fold")
    for name in ("LAST RUN", "FINISHED", "LAST SUCCESS"):
        table.add_column(name, no_wrap=True)
    table.add_column("FAILS", justify="right", no_wrap=True)
    table.add_column("STALE", no_wrap=True)
    for r in records:
        stale = r["stale"] or bool(r.get("schedule_stale"))
        status = str(r["last_run_status"] or "never")
        table.add_row(
            str(r["source"]),
            *((str(r["account"] or "-"),) if accounts else ()),
            Text(status, style=OUTCOME_STYLE.get(status, "")),
            _age(r["last_run_finished_at"]),
            _age(r["last_success_at"]),
            f"{int(r['failure_streak'] or 0):,}",
            Text(_yes(stale), style="bold red" if stale else ""),
        )
    out.print(table)
    for r in records:
        if r["last_run_error"]:
            out.print(
                Text.assemble((f"{r['source']}: ", "bold"), ("last error: ", "red"))
                + Text(without_source(str(r["source"]), str(r["last_run_error"]))),
                soft_wrap=False,
            )
    out.print(Text("every column: --format csv or --json", style="dim"))
