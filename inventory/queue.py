"""Queue mode: sync jobs in a task queue kept in the inventory's own PostgreSQL.

The queue is `procrastinate <https://procrastinate.readthedocs.io>`_ (its schema installed
by migration 0012): no broker to run. ``inventory worker`` processes, on any number of
machines, run its jobs; with ``[scheduler] mode = "queue"`` the active scheduler queues
each scheduled sync instead of running it, and ``inventory sync --enqueue`` does the same
from cron. A job is ``inventory.sync`` with a source name, or ``inventory.dispatch_alerts``.

What holds, and how (docs/operations.md, "Queue mode"):

- **At most one job of a source waits**: its ``queueing_lock`` is ``sync:<source>``;
  queueing another while one waits is refused by the database and reported as "already
  waiting" (a slow source does not pile up runs).
- **At most one runs**: its ``lock`` is the same, so no worker starts a source's job
  while another of its jobs runs; the run also takes the source's advisory lock, as every
  sync does, so a cron ``inventory sync`` beside the workers is skipped, not doubled.
- **Retries**: a run recorded ``failed`` (the provider could not be listed after the
  page retries, the database went away) is retried with a doubling backoff,
  ``[queue] retry_base_s`` up to ``retry_max_s``, for ``max_attempts`` runs in all; a
  configuration error is not retried.
- **Dead workers**: each worker beats every ``heartbeat_s``; every worker looks just as
  often for jobs left running by a worker silent for ``stalled_after_s`` and puts them
  back in the queue. The dead run, left ``running``, is marked aborted by the retry (the
  source's advisory lock died with its connection); nothing of it was applied.
- **SIGTERM**: a worker takes no new job; jobs running may finish within ``[scheduler]
  stop_grace_s``; then they stop at their next page (recorded ``aborted``, nothing
  applied) and go back in the queue for another worker.
- **Provider limits across workers**: a worker paces each account and region through the
  database (:class:`inventory.http.SharedRateLimiter`), so however many workers sync an
  account's sources, its requests stay within its ``rate_limit_per_s`` together.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import procrastinate
from procrastinate import JobContext, RetryDecision
from procrastinate.exceptions import AlreadyEnqueued, JobAborted
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy
from sqlalchemy import Engine, text

from inventory.config import QueueSettings, Settings
from inventory.errors import AlreadyRunning, ConfigError

log = logging.getLogger(__name__)

SYNC_TASK = "inventory.sync"
DISPATCH_TASK = "inventory.dispatch_alerts"
#: The last schema migration of the procrastinate release whose schema 0012 installs: a
#: release with a newer one needs a revision of ours applying it (a unit test checks).
SCHEMA_MIGRATION = "03.04.00_50_post_add_retry_failed_job_procedure.sql"


class SyncFailed(Exception):
    """A queued sync ran and was recorded ``failed``: retried after a backoff."""


def lock_of(source: str) -> str:
    """The queueing lock and lock of a source's jobs."""
    return f"sync:{source}"


def conninfo(engine: Engine) -> str:
    """The libpq URL of the engine's database (for procrastinate's own pool)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Backoff(BaseRetryStrategy):
    """Retry a failed run after ``retry_base_s``, doubled each time, at most ``retry_max_s``,
    until ``max_attempts`` runs; a configuration error never."""

    def __init__(self, queue: QueueSettings) -> None:
        self.queue = queue

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, JobAborted):  # stopped by a worker's shutdown: not a failure
            return RetryDecision(retry_in={"seconds": 0})
        if isinstance(exception, ConfigError) or job.attempts + 1 >= self.queue.max_attempts:
            return None
        delay = min(self.queue.retry_max_s, self.queue.retry_base_s * 2**job.attempts)
        return RetryDecision(retry_in={"seconds": delay})


@dataclass
class WorkerCounts:
    """What this worker did, by task and outcome (for /metrics): ``succeeded``, ``failed``,
    ``aborted`` (stopped by a shutdown), ``skipped`` (another process was syncing the
    source); and ``retried``, the runs that were a retry of a failed or aborted one."""

    jobs: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, task: str, outcome: str) -> None:
        with self.lock:
            self.jobs[(task, outcome)] = self.jobs.get((task, outcome), 0) + 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self.lock:
            return dict(self.jobs)


@dataclass
class Runtime:
    """What the jobs of this worker process run with."""

    settings: Settings
    engine: Engine
    counts: WorkerCounts = field(default_factory=WorkerCounts)


_runtime: Runtime | None = None


def make_app(settings: Settings, engine: Engine) -> procrastinate.App:
    """The queue's app, its two tasks registered with the settings' retry policy."""
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(engine), min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)
    app.task(name=SYNC_TASK, pass_context=True, retry=Backoff(settings.queue))(_sync_job)
    app.task(name=DISPATCH_TASK, queueing_lock="alerts-dispatch")(_dispatch_job)
    return app


#: Whether a job of the source waits or runs (then no other is queued).
_BUSY = (
    "SELECT count(*) AS busy FROM procrastinate_jobs"
    " WHERE queueing_lock = %(lock)s AND status IN ('todo', 'doing')"
)


def enqueue(app: procrastinate.App, source: str, trigger: str) -> int | None:
    """Queue a sync of ``source``; its job id, or None when one of its jobs already waits
    or runs. (A job queued beside a running one would block that one's retry: both would
    wait with one queueing lock, which the database refuses.)"""
    lock = lock_of(source)
    connector = app.connector.get_sync_connector()
    if connector.execute_query_one(_BUSY, lock=lock)["busy"]:
        return None
    deferrer = app.tasks[SYNC_TASK].configure(lock=lock, queueing_lock=lock)
    try:
        return deferrer.defer(source=source, trigger=trigger)
    except AlreadyEnqueued:  # another process queued one first
        return None


def enqueue_dispatch(app: procrastinate.App) -> int | None:
    try:
        return app.tasks[DISPATCH_TASK].defer()
    except AlreadyEnqueued:
        return None


def _sync_job(context: JobContext, source: str, trigger: str = "queue") -> str:
    from inventory.discovery import source_named
    from inventory.sync import sync_source

    runtime = _running()
    if context.job.attempts:
        runtime.counts.count(SYNC_TASK, "retried")  # this run is a retry
    try:  # a source no longer configured, or retired: a configuration error, not retried
        config = source_named(runtime.settings, runtime.engine, source)
    except ConfigError:
        runtime.counts.count(SYNC_TASK, "failed")
        raise
    cancel, done = threading.Event(), threading.Event()

    def watch() -> None:  # a stop past the grace period asks the sync to stop at a page
        while not done.wait(0.2):
            if context.should_abort():
                cancel.set()
                return

    threading.Thread(target=watch, name=f"abort-{source}", daemon=True).start()
    try:
        result = sync_source(
            runtime.engine, runtime.settings, config, trigger=trigger, cancel=cancel
        )
    except AlreadyRunning as err:
        if context.job.attempts:
            # A retry finding the source locked: the lock may be a dead worker's session
            # that the server has not dropped yet (a host lost, not a process), so try
            # again later instead of calling the job done.
            runtime.counts.count(SYNC_TASK, "failed")
            raise SyncFailed(f"{err} (a retry: tried again later)") from None
        runtime.counts.count(SYNC_TASK, "skipped")
        log.info("%s", err, extra={"fields": {"event": "sync_skipped", "source": source}})
        return f"skipped: {err}"
    except Exception:
        runtime.counts.count(SYNC_TASK, "failed")
        raise
    finally:
        done.set()
    if result.status == "aborted" and cancel.is_set():
        runtime.counts.count(SYNC_TASK, "aborted")
        raise JobAborted(f"source {source!r}: stopped at a page by the worker's shutdown")
    if not result.ok:
        runtime.counts.count(SYNC_TASK, "failed")
        raise SyncFailed(f"source {source!r}: run {result.run_id} {result.status}: {result.error}")
    runtime.counts.count(SYNC_TASK, "succeeded")
    return f"run {result.run_id} succeeded: {result.images_seen} images, {result.inserted} new"


def _dispatch_job() -> str:
    from inventory.alerts.dispatcher import dispatch

    runtime = _running()
    sent = dispatch(runtime.engine, runtime.settings)
    runtime.counts.count(DISPATCH_TASK, "succeeded")
    return f"{sent}"


def _running() -> Runtime:
    if _runtime is None:
        raise RuntimeError("queue jobs run in `inventory worker` only")
    return _runtime


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(
    settings: Settings,
    engine: Engine,
    *,
    concurrency: int,
    counts: WorkerCounts | None = None,
    name: str | None = None,
) -> Runtime:
    """Run jobs until SIGTERM or SIGINT (then as the module docstring says), counting
    them in ``counts``; return what this worker did."""
    global _runtime
    from inventory.http import share_limits_through

    queue = settings.queue
    runtime = _runtime = Runtime(settings, engine, counts or WorkerCounts())
    share_limits_through(conninfo(engine))
    app = make_app(settings, engine)
    name = name or worker_name()

    async def main() -> None:
        # Sync jobs run in the loop's default executor: one thread each, and a few for
        # the database driver's own (name lookups), whatever the core count.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(concurrency + 4, thread_name_prefix="job")
        )
        async with app.open_async():
            recovery = asyncio.create_task(_requeue_stalled(app, queue))
            pruning = asyncio.create_task(_prune_finished(app, queue))
            try:
                await app.run_worker_async(
                    name=name,
                    concurrency=concurrency,
                    shutdown_graceful_timeout=settings.scheduler.stop_grace_s,
                    update_heartbeat_interval=queue.heartbeat_s,
                    stalled_worker_timeout=queue.stalled_after_s,
                    fetch_job_polling_interval=min(5.0, queue.heartbeat_s),
                    abort_job_polling_interval=1.0,
                )
            finally:
                recovery.cancel()
                pruning.cancel()

    log.info(
        "worker %s starting: %d job(s) at once",
        name,
        concurrency,
        extra={"fields": {"event": "worker_start", "worker": name}},
    )
    try:
        asyncio.run(main())
    finally:
        share_limits_through(None)
        _runtime = None
        log.info("worker %s stopped", name, extra={"fields": {"event": "worker_stop"}})
    return runtime


_REQUEUE = """
UPDATE procrastinate_jobs
   SET status = 'todo', attempts = attempts + 1, scheduled_at = now()
 WHERE id = %(id)s AND status = 'doing' AND worker_id IS NOT DISTINCT FROM %(worker)s
RETURNING id
"""


async def _requeue_stalled(app: procrastinate.App, queue: QueueSettings) -> None:
    """Put back in the queue the jobs of workers silent for ``stalled_after_s``."""
    manager = app.job_manager
    while True:
        await asyncio.sleep(queue.heartbeat_s)
        try:
            stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=queue.stalled_after_s)
            for job in stalled:
                # Only if it is still the stalled worker's: another worker may have put it
                # back, and a third started it, since the list was read.
                requeued = await app.connector.execute_query_one_async(
                    _REQUEUE, id=job.id, worker=job.worker_id
                )
                if requeued is None:
                    continue
                log.warning(
                    "job %s (%s) was running on a worker silent for %gs: queued again",
                    job.id,
                    job.task_kwargs.get("source", job.task_name),
                    queue.stalled_after_s,
                    extra={"fields": {"event": "job_requeued", "job": job.id}},
                )
        except Exception:  # never let recovery take the worker down
            log.exception("could not look for stalled jobs")


async def _prune_finished(app: procrastinate.App, queue: QueueSettings) -> None:
    """At the start and hourly: delete the jobs finished more than ``keep_jobs_days`` ago
    (any worker may; deleting twice is harmless). Their runs stay in ``sync_runs``."""
    if not queue.keep_jobs_days:
        return
    while True:
        try:
            await prune_finished(app, hours=24 * queue.keep_jobs_days)
        except Exception:  # never let housekeeping take the worker down
            log.exception("could not delete old jobs")
        await asyncio.sleep(3600)


async def prune_finished(app: procrastinate.App, *, hours: int) -> None:
    """Delete the jobs that ended (succeeded, failed, cancelled, aborted) ``hours`` ago."""
    await app.job_manager.delete_old_jobs(
        nb_hours=hours, include_failed=True, include_cancelled=True, include_aborted=True
    )


@dataclass(frozen=True)
class SourceJobs:
    """``inventory jobs``: one source's jobs in the queue."""

    source: str
    waiting: int
    running: int
    failed: int  # in the window
    done: int  # succeeded in the window
    last_done_at: Any
    last_error: str | None


def source_jobs(engine: Engine, hours: float = 24.0) -> list[SourceJobs]:
    """Per source: jobs waiting and running now, failed and done in the last ``hours``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT j.args->>'source' AS source,
                       count(*) FILTER (WHERE j.status = 'todo') AS waiting,
                       count(*) FILTER (WHERE j.status = 'doing') AS running,
                       count(*) FILTER (WHERE j.status = 'failed' AND e.at > since.at)
                           AS failed,
                       count(*) FILTER (WHERE j.status = 'succeeded' AND e.at > since.at)
                           AS done,
                       max(e.at) FILTER (WHERE j.status = 'succeeded') AS last_done_at
                  FROM procrastinate_jobs j
                 CROSS JOIN (SELECT now() - make_interval(secs => :window) AS at) since
                  LEFT JOIN LATERAL (
                        SELECT max(at) AS at FROM procrastinate_events
                         WHERE job_id = j.id) e ON true
                 WHERE j.task_name = :task
                 GROUP BY 1 ORDER BY 1
                """
            ),
            {"task": SYNC_TASK, "window": hours * 3600.0},
        ).all()
        errors: dict[str, str | None] = dict(
            conn.execute(
                text(
                    """
                    SELECT DISTINCT ON (s.name) s.name, r.error
                      FROM sync_runs r JOIN sources s ON s.id = r.source_id
                     WHERE r.status = 'failed'
                     ORDER BY s.name, r.started_at DESC
                    """
                )
            ).all()
        )
    return [
        SourceJobs(**row._asdict(), last_error=errors.get(row.source) if row.failed else None)
        for row in rows
    ]


def queue_depth(engine: Engine) -> dict[str, int]:
    """Jobs by status now (for /metrics)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1")
        ).all()
    return {status: int(count) for status, count in rows}


def enqueue_sources(
    settings: Settings, engine: Engine, names: Sequence[str], trigger: str
) -> Iterable[tuple[str, int | None]]:
    """Queue a sync of each source: (source, job id or None when one already waits)."""
    app = make_app(settings, engine)
    with app.open():
        for name in names:
            yield name, enqueue(app, name, trigger)
