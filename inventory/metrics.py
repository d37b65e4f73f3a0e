"""Prometheus metrics, read from PostgreSQL at scrape time.

:class:`InventoryCollector` queries the database on every collection rather than keeping
counters in memory, so every scheduler replica (leader or standby) serves the same truth,
a restarted process loses nothing, and a one-shot ``inventory sync`` can write the very
same series to a file for node_exporter's textfile collector (:func:`write_textfile`).
:func:`serve_metrics` serves them over HTTP at ``/metrics`` (the scheduler).

Series (label ``source`` is the source's name in the config, ``provider`` its provider).
"Last run" means the source's most recent *finished* run (succeeded, failed or aborted),
so a run in progress does not hide the previous outcome; see ``inventory_run_in_progress``.

=========================================== ======= ===================================
series                                      type    labels, meaning
=========================================== ======= ===================================
inventory_source_info                       gauge   source, provider, location, account;
                                                    always 1 (for joins and listings)
inventory_run_in_progress                   gauge   source, provider; 1 while the newest
                                                    run is ``running`` (also a run left
                                                    by a dead process, until the next
                                                    sync of that source marks it aborted)
inventory_last_run_status                   gauge   source, provider, status; 1 for the
                                                    last run's status, 0 for the others
                                                    (status: succeeded, failed, aborted)
inventory_last_run_start_timestamp_seconds  gauge   source, provider; Unix time
inventory_last_run_finish_timestamp_seconds gauge   source, provider; Unix time
inventory_last_run_duration_seconds         gauge   source, provider; finish - start
inventory_last_run_pages                    gauge   source, provider; pages fetched
inventory_last_run_retries                  gauge   source, provider; retried calls
inventory_last_run_listing_complete         gauge   source, provider; 1 if the run paged
                                                    through the whole listing
inventory_last_run_disappearance_blocked    gauge   source, provider; 1 if the deletion
                                                    guard refused a mass disappearance
inventory_last_success_timestamp_seconds    gauge   source, provider; finish time of the
                                                    last succeeded run, 0 if none ever did
inventory_images                            gauge   source, provider, status; images still
                                                    listed (not gone) by normalized
                                                    status; every status is exported, 0
                                                    when none
inventory_images_gone                       gauge   source, provider; images a complete
                                                    listing no longer showed
inventory_images_missing                    gauge   source, provider; images absent from
                                                    the last complete listing(s), not yet
                                                    confirmed gone
inventory_runs_total                        counter source, provider, status; finished
                                                    runs (succeeded, failed, aborted)
inventory_pages_fetched_total               counter source, provider; pages over finished
                                                    runs
inventory_retries_total                     counter source, provider; retried calls over
                                                    finished runs
inventory_images_disappeared_total          counter source, provider; images marked gone,
                                                    over all runs
inventory_sync_skipped_total                counter source; runs skipped because another
                                                    process held the source's lock
                                                    (process-local, see below)
inventory_database_up                       gauge   1 if the last collection could read
                                                    the database, else 0 (and the
                                                    database series are absent)
=========================================== ======= ===================================

The ``_total`` series are sums over the ``sync_runs`` table of runs that have finished. A
run row changes from ``running`` to one final status exactly once and never back, and rows
are only appended, so each sum only grows: they are true counters. Deleting old runs
(a retention job) lowers them; Prometheus reads that as a counter reset.

``inventory_sync_skipped_total`` cannot come from the database (a skipped run writes no
row), so it is counted in the process by :func:`count_skipped`. In the scheduler it resets
when the process restarts, like any counter. :func:`write_textfile` carries it across
one-shot processes by adding this process's new skips to the value already in the file.

Cost per collection: one snapshot (REPEATABLE READ, read only, with a statement timeout),
three queries. Per source, three LATERAL lookups of the top of the index
``ix_sync_runs_source_id_started_at`` (newest run, newest finished run, newest success);
one aggregate pass over ``sync_runs`` for the counters; one aggregate pass over ``images``
for the status counts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    start_http_server,
    write_to_textfile,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from inventory.records import ImageStatus
from inventory.secrets import scrub

log = logging.getLogger(__name__)

#: Final run statuses, as in ``sync_runs.status``; ``running`` is not final.
FINAL_RUN_STATUSES = ("succeeded", "failed", "aborted")
IMAGE_STATUSES = tuple(s.value for s in ImageStatus)

#: A scrape must never hang on a locked or overloaded database.
STATEMENT_TIMEOUT_MS = 10_000

SKIPPED = "inventory_sync_skipped"

_skipped_lock = threading.Lock()
_skipped: dict[str, float] = {}
#: Serializes textfile writes in this process, so two writers cannot both add the same skips.
_textfile_lock = threading.Lock()
#: Per textfile: the skip counts of this process already added into that file.
_flushed: dict[Path, dict[str, float]] = {}


def count_skipped(source: str) -> None:
    """Count one run of ``source`` skipped because another process was syncing it."""
    with _skipped_lock:
        _skipped[source] = _skipped.get(source, 0.0) + 1


def skipped_counts() -> dict[str, float]:
    """This process's skipped runs per source (a copy)."""
    with _skipped_lock:
        return dict(_skipped)


_SOURCES_SQL = """
SELECT s.id, s.name, s.provider, s.location, coalesce(s.account, '') AS account,
       coalesce(cur.status = 'running', false) AS in_progress,
       r.status, extract(epoch FROM r.started_at) AS started,
       extract(epoch FROM r.finished_at) AS finished,
       extract(epoch FROM r.finished_at - r.started_at) AS duration,
       r.pages, r.retries, r.listing_complete, r.disappearance_blocked,
       extract(epoch FROM ok.finished_at) AS last_success
  FROM sources s
  LEFT JOIN LATERAL (
        SELECT status FROM sync_runs WHERE source_id = s.id
         ORDER BY started_at DESC LIMIT 1) cur ON true
  LEFT JOIN LATERAL (
        SELECT * FROM sync_runs WHERE source_id = s.id AND status <> 'running'
         ORDER BY started_at DESC LIMIT 1) r ON true
  LEFT JOIN LATERAL (
        SELECT finished_at FROM sync_runs WHERE source_id = s.id AND status = 'succeeded'
         ORDER BY started_at DESC LIMIT 1) ok ON true
 ORDER BY s.name
"""

_RUN_TOTALS_SQL = """
SELECT source_id, status, count(*) AS runs, coalesce(sum(pages), 0) AS pages,
       coalesce(sum(retries), 0) AS retries, coalesce(sum(disappeared), 0) AS disappeared
  FROM sync_runs
 WHERE status <> 'running'
 GROUP BY source_id, status
"""

_IMAGE_COUNTS_SQL = """
SELECT source_id, status,
       count(*) FILTER (WHERE gone_at IS NULL) AS active,
       count(*) FILTER (WHERE gone_at IS NOT NULL) AS gone,
       count(*) FILTER (WHERE gone_at IS NULL AND missing_since IS NOT NULL) AS missing
  FROM images
 GROUP BY source_id, status
"""


def _num(value: Any) -> float:
    """Database numbers (int, Decimal from extract()) as the float Prometheus wants."""
    if isinstance(value, Decimal | int | float):
        return float(value)
    return float(value or 0)


class _Families:
    """Every family this collector exports, created empty (also serves describe())."""

    def __init__(self) -> None:
        sp = ["source", "provider"]

        def gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=sp if labels is None else labels)

        def counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=sp if labels is None else labels)

        self.info = gauge(
            "inventory_source_info",
            "A configured source that has been synced at least once (always 1).",
            [*sp, "location", "account"],
        )
        self.in_progress = gauge(
            "inventory_run_in_progress", "1 while the source's newest run is still running."
        )
        self.last_status = gauge(
            "inventory_last_run_status",
            "Outcome of the source's last finished run: 1 for its status, 0 for the others.",
            [*sp, "status"],
        )
        self.last_start = gauge(
            "inventory_last_run_start_timestamp_seconds", "When the last finished run started."
        )
        self.last_finish = gauge(
            "inventory_last_run_finish_timestamp_seconds", "When the last finished run ended."
        )
        self.last_duration = gauge(
            "inventory_last_run_duration_seconds", "How long the last finished run took."
        )
        self.last_pages = gauge("inventory_last_run_pages", "Pages the last finished run fetched.")
        self.last_retries = gauge(
            "inventory_last_run_retries", "Retried calls in the last finished run."
        )
        self.last_complete = gauge(
            "inventory_last_run_listing_complete",
            "1 if the last finished run paged through the whole listing.",
        )
        self.last_blocked = gauge(
            "inventory_last_run_disappearance_blocked",
            "1 if the deletion guard refused to mark images gone in the last finished run.",
        )
        self.last_success = gauge(
            "inventory_last_success_timestamp_seconds",
            "When the source's last succeeded run finished; 0 if none ever succeeded.",
        )
        self.images = gauge(
            "inventory_images",
            "Images still listed (not gone), by normalized status.",
            [*sp, "status"],
        )
        self.gone = gauge(
            "inventory_images_gone", "Images that a complete listing no longer showed."
        )
        self.missing = gauge(
            "inventory_images_missing",
            "Images absent from the last complete listing(s), not yet confirmed gone.",
        )
        self.runs = counter(
            "inventory_runs", "Finished sync runs, by final status.", [*sp, "status"]
        )
        self.pages = counter("inventory_pages_fetched", "Pages fetched by finished runs.")
        self.retries = counter("inventory_retries", "Retried provider calls in finished runs.")
        self.disappeared = counter(
            "inventory_images_disappeared", "Images marked gone, summed over runs."
        )
        self.skipped = counter(
            SKIPPED,
            "Runs skipped because another process was already syncing the source.",
            ["source"],
        )
        self.db_up = gauge(
            "inventory_database_up",
            "1 if the metrics could be read from the database, else 0.",
            [],
        )

    def all(self) -> list[Metric]:
        return [m for m in vars(self).values() if isinstance(m, Metric)]

    def database_series(self) -> list[Metric]:
        """All but the two that do not come from the database."""
        return [m for m in self.all() if m is not self.skipped and m is not self.db_up]


class InventoryCollector:
    """A prometheus_client collector reading the inventory database at collection time.

    ``skipped`` returns the skip counts to export; by default this process's
    (:func:`skipped_counts`). Database errors never break a scrape: they are logged, the
    database series are left out and ``inventory_database_up`` is 0.
    """

    def __init__(
        self, engine: Engine, *, skipped: Callable[[], Mapping[str, float]] = skipped_counts
    ) -> None:
        self.engine = engine
        self.skipped = skipped

    def describe(self) -> Iterable[Metric]:
        # Names only, without touching the database: registering must not need it.
        return _Families().all()

    def collect(self) -> Iterable[Metric]:
        fam = _Families()
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    self._read(conn, fam)
        except SQLAlchemyError as err:
            log.warning(
                "metrics: could not read the database: %s", scrub(f"{type(err).__name__}: {err}")
            )
            fam.db_up.add_metric([], 0)
            database: list[Metric] = []
        else:
            fam.db_up.add_metric([], 1)
            database = fam.database_series()
        for source, count in sorted(self.skipped().items()):
            fam.skipped.add_metric([source], count)
        return [*database, fam.skipped, fam.db_up]

    def _read(self, conn: Connection, fam: _Families) -> None:
        # One consistent, read-only snapshot for all three queries, so a run committing
        # mid-scrape cannot make the counters disagree with the gauges.
        conn.execute(text("SET TRANSACTION READ ONLY"))
        conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
        labels: dict[int, list[str]] = {}
        for row in conn.execute(text(_SOURCES_SQL)):
            sp = [row.name, row.provider]
            labels[row.id] = sp
            fam.info.add_metric([*sp, row.location, row.account], 1)
            fam.in_progress.add_metric(sp, 1 if row.in_progress else 0)
            fam.last_success.add_metric(sp, _num(row.last_success))
            if row.status is None:
                continue  # no run of this source has finished yet
            for status in FINAL_RUN_STATUSES:
                fam.last_status.add_metric([*sp, status], 1 if row.status == status else 0)
            fam.last_start.add_metric(sp, _num(row.started))
            fam.last_finish.add_metric(sp, _num(row.finished))
            fam.last_duration.add_metric(sp, _num(row.duration))
            fam.last_pages.add_metric(sp, _num(row.pages))
            fam.last_retries.add_metric(sp, _num(row.retries))
            fam.last_complete.add_metric(sp, 1 if row.listing_complete else 0)
            fam.last_blocked.add_metric(sp, 1 if row.disappearance_blocked else 0)

        # Zero-filled, so a series exists before its first event and rate() sees it start.
        runs = {(sid, st): 0.0 for sid in labels for st in FINAL_RUN_STATUSES}
        sums = {sid: [0.0, 0.0, 0.0] for sid in labels}  # pages, retries, disappeared
        for row in conn.execute(text(_RUN_TOTALS_SQL)):
            if row.source_id not in labels:
                continue
            runs[(row.source_id, row.status)] = _num(row.runs)
            total = sums[row.source_id]
            total[0] += _num(row.pages)
            total[1] += _num(row.retries)
            total[2] += _num(row.disappeared)
        for (sid, status), count in runs.items():
            fam.runs.add_metric([*labels[sid], status], count)
        for sid, (pages, retries, disappeared) in sums.items():
            fam.pages.add_metric(labels[sid], pages)
            fam.retries.add_metric(labels[sid], retries)
            fam.disappeared.add_metric(labels[sid], disappeared)

        active = {(sid, st): 0.0 for sid in labels for st in IMAGE_STATUSES}
        gone = dict.fromkeys(labels, 0.0)
        missing = dict.fromkeys(labels, 0.0)
        for row in conn.execute(text(_IMAGE_COUNTS_SQL)):
            if row.source_id not in labels:
                continue
            if row.active:
                key = (row.source_id, row.status)
                active[key] = active.get(key, 0.0) + _num(row.active)
            gone[row.source_id] += _num(row.gone)
            missing[row.source_id] += _num(row.missing)
        for (sid, status), count in active.items():
            fam.images.add_metric([*labels[sid], status], count)
        for sid, count in gone.items():
            fam.gone.add_metric(labels[sid], count)
        for sid, count in missing.items():
            fam.missing.add_metric(labels[sid], count)


class WorkerCollector:
    """Queue mode, for ``inventory worker``'s /metrics: the jobs this worker ran, by task
    and outcome, and the jobs in the queue now, by status (a database read at scrape
    time; left out, with a warning, when the database cannot be read)."""

    def __init__(
        self, engine: Engine, worker: str, counts: Callable[[], Mapping[tuple[str, str], int]]
    ) -> None:
        self.engine, self.worker, self.counts = engine, worker, counts

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily]:
        jobs = CounterMetricFamily(
            "inventory_worker_jobs",
            "Jobs this worker ran, by task and outcome: succeeded, failed, aborted (by a "
            "shutdown), skipped (another process was syncing); retried counts the runs that "
            "were retries",
            labels=["worker", "task", "outcome"],
        )
        depth = GaugeMetricFamily(
            "inventory_queue_jobs",
            "Jobs in the queue by status (todo: waiting, doing: running)",
            labels=["status"],
        )
        return jobs, depth

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        from inventory.queue import queue_depth

        jobs, depth = self._families()
        for (task, outcome), count in sorted(self.counts().items()):
            jobs.add_metric([self.worker, task, outcome], count)
        try:
            by_status = queue_depth(self.engine)
        except SQLAlchemyError as err:
            log.warning("metrics: could not read the queue: %s", scrub(f"{type(err).__name__}"))
            return [jobs]
        for status in ("todo", "doing", "succeeded", "failed", "cancelled", "aborted"):
            depth.add_metric([status], by_status.get(status, 0))
        return [jobs, depth]


def build_registry(
    engine: Engine, *, process_metrics: bool = False, extra: Sequence[Any] = ()
) -> CollectorRegistry:
    """A fresh registry holding an :class:`InventoryCollector` (never the global one, so
    several servers or files in one process do not clash), and the ``extra`` collectors."""
    registry = CollectorRegistry()
    registry.register(InventoryCollector(engine))
    for collector in extra:
        registry.register(collector)
    if process_metrics:
        # CPU, memory, file descriptors, Python version: meaningful for a long-running
        # process only, so the textfile of a one-shot sync leaves them out.
        registry.register(PROCESS_COLLECTOR)
        registry.register(PLATFORM_COLLECTOR)
    return registry


class MetricsServer:
    """A running /metrics HTTP server; :meth:`stop` (or leaving ``with``) shuts it down."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.addr = str(httpd.server_address[0])
        self.port = int(httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_metrics(
    engine: Engine, port: int, addr: str = "127.0.0.1", extra: Sequence[Any] = ()
) -> MetricsServer:
    """Serve the metrics over HTTP at ``http://addr:port/metrics`` from a daemon thread.

    ``port`` 0 picks a free port (read it from the result's ``port``). The default address
    is loopback; in a container, pass ``0.0.0.0`` so Prometheus can reach it. Raises
    OSError when the address cannot be bound (port in use).
    """
    httpd, thread = start_http_server(
        port, addr=addr, registry=build_registry(engine, process_metrics=True, extra=extra)
    )
    server = MetricsServer(httpd, thread)
    log.info("serving metrics at %s", server.url)
    return server


def _skipped_in_file(path: Path) -> dict[str, float]:
    """The skip counts already in a textfile written earlier (by any process)."""
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    found: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(content):
            if family.name != SKIPPED:
                continue
            for sample in family.samples:
                if sample.name == f"{SKIPPED}_total" and "source" in sample.labels:
                    found[sample.labels["source"]] = float(sample.value)
    except ValueError:
        # A damaged file: start the counters again; Prometheus sees a counter reset.
        log.warning("metrics: could not parse %s; skip counters start again", path)
        return {}
    return found


def write_textfile(engine: Engine, path: str | Path) -> None:
    """Write every inventory series to ``path`` for node_exporter's textfile collector.

    The file is written to a temporary name beside ``path`` and renamed over it, so the
    collector never reads half a file (node_exporter reads only ``*.prom``; name the file
    so). ``inventory_sync_skipped_total`` is the file's previous value plus the skips this
    process counted since it last wrote this file, so it keeps counting across one-shot
    runs. Raises OSError when the file cannot be written; a database that cannot be read
    gives a file with ``inventory_database_up 0``.
    """
    target = Path(path)
    with _textfile_lock:
        current = skipped_counts()
        flushed = _flushed.get(target, {})
        totals = _skipped_in_file(target)
        for source, count in current.items():
            totals[source] = totals.get(source, 0.0) + count - flushed.get(source, 0.0)
        registry = CollectorRegistry()
        registry.register(InventoryCollector(engine, skipped=lambda: totals))
        write_to_textfile(str(target), registry)
        _flushed[target] = current
