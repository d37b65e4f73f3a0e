"""``inventory scheduler``: a long-running process that syncs each source on its schedule.

Wiring, in order of what matters:

- **One active replica.** Any number of schedulers may run against one database. Each tries
  to take a PostgreSQL advisory lock (:data:`LEADER_KEY`) on a connection it keeps open;
  the one that holds it is *active* and schedules jobs, the others stand by and retry every
  ``leader_poll_s``. When the active process dies its connection closes, PostgreSQL frees
  the lock, and a standby takes over within one poll. The active one re-checks that it
  still holds the lock on every poll and stops scheduling at once if it lost it (a dropped
  connection). APScheduler's own job stores are never shared between processes: two
  processes sharing one run every tick twice.
- **One run per source.** Jobs use ``max_instances=1`` and ``coalesce=True`` (missed runs
  collapse into one), a misfire grace time and optional jitter; on top of that every run
  takes the source's advisory lock, so the scheduler and a cron-run ``inventory sync`` are
  safe side by side: the one that finds the source busy skips, logs and counts it.
- **Clean shutdown.** SIGTERM/SIGINT stops taking new runs; runs in flight may finish within
  ``stop_grace_s``, then they are cancelled at their next page boundary and recorded as
  ``aborted`` (nothing applied). The merge itself is one transaction, so a run is never
  half applied. Runs left ``running`` by a process that died are marked ``aborted`` when a
  scheduler becomes active (and by the next sync of that source).

Jobs call :func:`inventory.sync.sync_source`, exactly as the CLI does.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, Engine, text

from inventory import cron, store
from inventory.config import Settings, SourceConfig
from inventory.discovery import discover_sources
from inventory.errors import AlreadyRunning, InventoryError
from inventory.sync import sync_source

log = logging.getLogger(__name__)

#: (namespace, key) of the advisory lock that makes a scheduler the active one.
LEADER_KEY = (0x1A6E_0003, 1)


class Leadership:
    """The leader lock, held on one dedicated connection for as long as we are active."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            with self._conn.begin():
                got = self._conn.execute(
                    text("SELECT pg_try_advisory_lock(:ns, :key)"),
                    {"ns": LEADER_KEY[0], "key": LEADER_KEY[1]},
                ).scalar()
            return bool(got)
        except Exception as err:
            log.warning("could not ask for the scheduler lock: %s", err)
            self._drop()
            return False

    def still_held(self) -> bool:
        """True while this session holds the lock (a lost connection means it does not)."""
        if self._conn is None:
            return False
        try:
            with self._conn.begin():
                held = self._conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid() AND classid = :ns AND objid = :key "
                        "AND granted"
                    ),
                    {"ns": LEADER_KEY[0], "key": LEADER_KEY[1]},
                ).scalar()
            return bool(held)
        except Exception as err:
            log.error("lost the scheduler database connection: %s", err)
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            with self._conn.begin():
                self._conn.execute(
                    text("SELECT pg_advisory_unlock(:ns, :key)"),
                    {"ns": LEADER_KEY[0], "key": LEADER_KEY[1]},
                )
        except Exception:  # the connection is gone: so is the lock
            log.debug("releasing the scheduler lock failed", exc_info=True)
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                log.debug("closing the scheduler connection failed", exc_info=True)
        self._conn = None


def sweep_orphans(engine: Engine) -> int:
    """Mark runs left ``running`` by dead processes as aborted, for every source whose lock
    is free (a held lock means a live run). Returns how many runs were marked."""
    marked = 0
    with engine.connect() as conn:
        sources = conn.execute(
            text("SELECT DISTINCT source_id FROM sync_runs WHERE status = 'running'")
        ).scalars()
        ids = list(sources)
        conn.rollback()
        for source_id in ids:
            with conn.begin():
                locked = store.try_lock_source(conn, source_id)
            if not locked:
                continue
            try:
                with conn.begin():
                    marked += store.abort_orphaned_runs(conn, source_id)
            finally:
                with conn.begin():
                    store.unlock_source(conn, source_id)
    if marked:
        log.warning("marked %d run(s) left running by dead processes as aborted", marked)
    return marked


class InventoryScheduler:
    """The daemon: leader election, one cron job per scheduled source, clean shutdown."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        on_skipped: Callable[[str], None] | None = None,
        housekeeping: list[tuple[str, str, Callable[[], None]]] | None = None,
    ) -> None:
        #: As configured; :attr:`settings` adds the sources discovery finds.
        self.configured = settings
        self.settings = settings
        self.engine = engine
        self.on_skipped = on_skipped
        #: (job id, cron expression, function) run on the active replica only.
        self.housekeeping = housekeeping or []
        self.identity = f"pid {os.getpid()} on {socket.gethostname()}"
        self.stopping = threading.Event()
        self.cancel = threading.Event()
        self.active = threading.Event()
        self._leadership = Leadership(engine)
        self._aps: BackgroundScheduler | None = None
        self._in_flight = 0
        self._idle = threading.Condition()
        #: Queue mode's app (``[scheduler] mode = "queue"``), open while the process runs.
        self.queue: Any = None
        if settings.scheduler.mode == "queue":
            from inventory.queue import make_app

            self.queue = make_app(settings, engine).open()

    # -- lifecycle ------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Called from a signal handler: stop taking new runs and begin shutting down."""
        self.stopping.set()

    def run(self) -> None:
        """Block until :meth:`request_stop`: stand by, become active, schedule, shut down."""
        poll = self.settings.scheduler.leader_poll_s
        scheduled = [
            s.name for s in (*self.settings.sources, *self.settings.templates) if s.schedule
        ]
        log.info(
            "scheduler %s starting: %d scheduled source(s): %s",
            self.identity,
            len(scheduled),
            ", ".join(scheduled) or "none",
            extra={"fields": {"event": "scheduler_start", "sources": scheduled}},
        )
        announced_standby = False
        try:
            while not self.stopping.is_set():
                if not self.active.is_set():
                    if self._leadership.try_acquire():
                        self._become_active()
                    elif not announced_standby:
                        log.info(
                            "scheduler %s standing by: another replica is active",
                            self.identity,
                            extra={"fields": {"event": "scheduler_standby"}},
                        )
                        announced_standby = True
                elif not self._leadership.still_held():
                    log.error("scheduler %s lost the leader lock; stopping its jobs", self.identity)
                    self._stop_jobs(grace_s=0.0)
                    announced_standby = False
                self.stopping.wait(poll)
        finally:
            self._stop_jobs(grace_s=self.settings.scheduler.stop_grace_s)
            self._leadership.release()
            if self.queue is not None:
                self.queue.close()
            log.info(
                "scheduler %s stopped",
                self.identity,
                extra={"fields": {"event": "scheduler_stop"}},
            )

    def _become_active(self) -> None:
        log.info(
            "scheduler %s is now the active scheduler",
            self.identity,
            extra={"fields": {"event": "scheduler_active"}},
        )
        self.cancel.clear()
        try:
            sweep_orphans(self.engine)
        except Exception:
            log.exception("could not check for orphaned runs")
        sched = self.settings.scheduler
        self._discover()
        sources = [s for s in self.settings.sources if s.schedule]
        aps = BackgroundScheduler(
            timezone=UTC,
            # [sync] jobs sources at once (the rest wait for a worker), plus housekeeping.
            executors={
                "default": ThreadPoolExecutor(
                    max_workers=max(1, min(self.settings.sync.jobs, len(sources)))
                    + len(self.housekeeping)
                )
            },
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(sched.misfire_grace_s),
            },
        )
        for source in sources:
            self._add_sync_job(aps, source)
        for job_id, expression, function in self.housekeeping:
            aps.add_job(
                self._guarded(function, job_id), trigger=cron.trigger(expression), id=job_id
            )
        if self.settings.templates:
            aps.add_job(
                self._guarded(lambda: self._rediscover(aps), "discover"),
                trigger=IntervalTrigger(seconds=sched.discover_every_s),
                id="discover",
            )
        aps.start()
        self._aps = aps
        self.active.set()

    def _add_sync_job(self, aps: BackgroundScheduler, source: SourceConfig) -> None:
        assert source.schedule is not None
        aps.add_job(
            self._run_source,
            trigger=cron.trigger(source.schedule, source.timezone),
            args=[source.name],
            id=f"sync:{source.name}",
            name=f"sync {source.name}",
            jitter=int(self.settings.scheduler.jitter_s) or None,
        )

    def _discover(self) -> None:
        """Ask the providers for the regions of the ``regions = "*"`` sources (a provider's
        failure keeps the regions found before: inventory/discovery.py). Any other error
        keeps the sources of the last discovery too: the written-out ones are scheduled
        whatever happens here."""
        try:
            self.settings, _ = discover_sources(self.configured, self.engine)
        except Exception:
            log.exception("could not discover the regions; the sources found before stay")

    def _rediscover(self, aps: BackgroundScheduler) -> None:
        """Discover again: jobs for the regions new since, none for those retired."""
        before = {s.name for s in self.settings.sources if s.schedule}
        self._discover()
        after = {s.name: s for s in self.settings.sources if s.schedule}
        for name in before - after.keys():
            aps.remove_job(f"sync:{name}")
        for name in after.keys() - before:
            self._add_sync_job(aps, after[name])

    def _stop_jobs(self, grace_s: float) -> None:
        """Stop taking new runs; let runs in flight finish within ``grace_s``, then cancel."""
        aps, self._aps = self._aps, None
        self.active.clear()
        if aps is None:
            return
        aps.shutdown(wait=False)
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace_s):
                log.warning(
                    "%d run(s) still in flight after %.0fs; aborting them at the next page",
                    self._in_flight,
                    grace_s,
                )
                self.cancel.set()
                self._idle.wait_for(lambda: self._in_flight == 0, timeout=120.0)

    # -- jobs -----------------------------------------------------------------------------

    def _run_source(self, name: str) -> None:
        if self.stopping.is_set() or self.cancel.is_set():
            return
        if self.queue is not None:
            self._queue_source(name)
            return
        with self._idle:
            self._in_flight += 1
        try:
            source = self.settings.source(name)
            sync_source(self.engine, self.settings, source, trigger="scheduler", cancel=self.cancel)
        except AlreadyRunning as err:
            log.info(
                "%s",
                err,
                extra={"fields": {"event": "sync_skipped", "source": name}},
            )
            if self.on_skipped is not None:
                self.on_skipped(name)
        except InventoryError as err:
            log.error("source %s: %s", name, err)
        except Exception:
            log.exception("source %s: the sync crashed", name)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _queue_source(self, name: str) -> None:
        """Queue mode: a job for the workers instead of a run here (inventory/queue.py)."""
        from inventory.queue import enqueue

        assert self.queue is not None
        try:
            job = enqueue(self.queue, name, "scheduler")
        except Exception:
            log.exception("source %s: could not queue its sync", name)
            return
        if job is None:
            log.info(
                "source %s: a sync already waits in the queue; not queued again",
                name,
                extra={"fields": {"event": "sync_skipped", "source": name}},
            )
            if self.on_skipped is not None:
                self.on_skipped(name)
            return
        log.info(
            "source %s: sync queued (job %d)",
            name,
            job,
            extra={"fields": {"event": "sync_queued", "source": name, "job": job}},
        )

    def _guarded(self, function: Callable[[], None], job_id: str) -> Callable[[], None]:
        def run() -> None:
            try:
                function()
            except Exception:
                log.exception("housekeeping job %s failed", job_id)

        return run
