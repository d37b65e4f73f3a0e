"""One sync run of one source: lock, collect, stage, merge — and the run's record.

This module owns the transactions. The order of events for a run:

1. upsert the ``sources`` row; take the source's advisory lock on a dedicated connection
   (held for the whole run; PostgreSQL frees it if the process dies), or raise
   :class:`~inventory.errors.AlreadyRunning`;
2. mark runs orphaned by dead processes as ``aborted``; insert this run as ``running``;
3. page through the provider, normalize each page, COPY it into the staging table;
4. merge and diff in ONE transaction, which also closes the run row as ``succeeded`` and
   writes the run's alert outbox rows (:mod:`inventory.alerts.rules`).

Any failure before step 4 commits is recorded as ``failed`` with an error naming the
source, the page and the cause; nothing of the listing is applied, so nothing stored is
lost and nothing is marked gone. An interrupt (SIGINT/SIGTERM turned into an exception)
records the run as ``aborted`` the same way.
"""

from __future__ import annotations

import bisect
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from inventory import staging, store
from inventory.alerts import rules as alert_rules
from inventory.config import Settings
from inventory.errors import (
    AlreadyRunning,
    DatabaseLost,
    DatabaseRefused,
    InventoryError,
    ProviderError,
    RunAborted,
)
from inventory.http import RetryPolicy
from inventory.providers import PROVIDERS, Collector
from inventory.secrets import scrub
from inventory.source import SourceConfig
from inventory.storable import Storable

log = logging.getLogger(__name__)

#: Items of a streamed answer (one KSyun listing) normalized and staged at a time, so its
#: size never sets the sync's memory.
STREAM_BATCH = 500

#: progress(source_name, pages_done, images_done, total_or_None)
Progress = Callable[[str, int, int, int | None], None]
#: retrying(source_name, attempt, attempts, reason): a call failed and is tried again.
Retrying = Callable[[str, int, int, str], None]


@dataclass
class RunResult:
    """What one run did; mirrors its ``sync_runs`` row."""

    source: str
    run_id: int | None
    status: str  # succeeded, failed, aborted, skipped
    listing_complete: bool = False
    incomplete_reason: str | None = None
    pages: int = 0
    retries: int = 0
    images_seen: int = 0
    inserted: int = 0
    changed: int = 0
    unchanged: int = 0
    disappeared: int = 0
    reappeared: int = 0
    #: Absent from this complete listing but not yet from confirm_gone_runs in a row.
    missing: int = 0
    disappearance_blocked: bool = False
    disappearance_candidates: int = 0
    unknown_statuses: dict[str, int] = field(default_factory=dict)
    #: Of ``changed``, how many moved to each status ({"deprecated": 5, "ceased": 2}).
    became: dict[str, int] = field(default_factory=dict)
    warning: str | None = None
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def sync_source(
    engine: Engine,
    settings: Settings,
    source: SourceConfig,
    *,
    trigger: str = "cli",
    allow_mass_disappearance: bool = False,
    progress: Progress | None = None,
    policy: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
    retrying: Retrying | None = None,
    failure_level: int = logging.ERROR,
) -> RunResult:
    """Run one sync of ``source``. Raises AlreadyRunning or ConfigError; records the rest.

    ``cancel``, when set, stops the run at the next page boundary (or before the merge) and
    records it as ``aborted``; once the merge has begun the run completes, so a run is
    never half applied. ``retrying`` hears of each retried call; ``failure_level`` is the
    log level of a failed run's line (lower when the caller shows the failure itself)."""
    provider = PROVIDERS[source.provider]
    policy = policy or RetryPolicy(max_attempts=source.max_attempts)
    started = time.monotonic()
    retries = [0]  # a cell the collector's retry hook and the run recorder share
    counting = threading.Lock()  # pages in flight retry from several threads

    def count_retry(attempt: int, err: BaseException) -> None:
        with counting:
            retries[0] += 1
        if retrying is not None:
            reason = err.message if isinstance(err, ProviderError) else str(err)
            retrying(source.name, attempt, policy.max_attempts, reason)

    # Credentials are resolved here, before a run row exists: a missing secret is a
    # configuration error, not a failed run.
    collector = provider.collector(source, policy, count_retry)
    try:
        with engine.connect() as conn:
            with conn.begin():
                source_id = store.upsert_source(conn, source)
            with conn.begin():
                locked = store.try_lock_source(conn, source_id)
            if not locked:
                raise AlreadyRunning(
                    f"source {source.name!r} is already being synced by another process; "
                    "this run was skipped"
                )
            try:
                with conn.begin():
                    orphans = store.abort_orphaned_runs(conn, source_id)
                    run_id = store.start_run(conn, source_id, trigger)
                if orphans:
                    log.warning(
                        "source %s: marked %d run(s) left running by a dead process as aborted",
                        source.name,
                        orphans,
                    )
                result = RunResult(source=source.name, run_id=run_id, status="running")

                def collect(collector: Collector, known: bool) -> None:
                    _collect_and_merge(
                        conn,
                        settings,
                        source,
                        source_id,
                        run_id,
                        collector,
                        result,
                        allow_mass_disappearance,
                        progress,
                        retries,
                        cancel,
                        known=known,
                    )

                try:
                    try:
                        collect(collector, known=True)
                    except store.KnownRowChanged as err:  # once in 10**19: all in full
                        log.warning("source %s: %s", source.name, err)
                        collector.close()
                        collector = provider.collector(source, policy, count_retry)
                        collect(collector, known=False)
                except BaseException as err:
                    result.retries = retries[0]
                    if _connection_lost(err):  # the run's connection is dead: use a new one
                        err = _lost(source, result, err)
                        _record_failure_anew(engine, run_id, result, err)
                    else:
                        _record_failure(conn, run_id, result, err)
                    if not isinstance(err, InventoryError):
                        raise
                finally:
                    result.retries = retries[0]
                    result.duration_s = time.monotonic() - started
            finally:
                _release(conn, source_id)
    finally:
        collector.close()
    _log_result(result, failure_level)
    return result


def _collect_and_merge(
    conn: Connection,
    settings: Settings,
    source: SourceConfig,
    source_id: int,
    run_id: int,
    collector: Collector,
    result: RunResult,
    allow_mass_disappearance: bool,
    progress: Progress | None,
    retries: list[int],
    cancel: threading.Event | None,
    known: bool = True,
) -> None:
    """Collect the listing into the staging table and merge it, in one transaction each.
    With ``known``, images listed exactly as stored are staged by id alone."""
    unknown: Counter[str] = Counter()
    normalized_by = staging.normalized_by(source.provider)

    with conn.begin():
        store.create_stage(conn)
        keys = store.known_keys(conn, source_id, normalized_by) if known else None
    # This code has not checked the source's images yet: it normalizes every one, and
    # keeps their digests (store.merge).
    refresh_digests = known and keys is None
    checks = Storable(source.name)
    starts: list[tuple[int, int]] = []  # (staging seq of its first item, page number)
    total: int | None = None

    def written(number: int, staged: int) -> None:
        if progress is not None:
            progress(source.name, number, staged, total)

    try:  # one COPY for the whole listing (store.Stager), applied only by the merge below
        with conn.begin(), store.Stager(conn, keys) as stager:
            batches = staging.Batches(
                source.provider,
                stager,
                checks,
                unknown,
                workers=settings.sync.workers,
                expected=len(keys or ()),
                written=written,
            )
            try:
                for page in collector.pages():
                    starts.append((batches.submitted, page.number))
                    result.pages, total = page.number, page.total
                    for batch in page.batches(STREAM_BATCH):
                        batches.add(page.number, batch, page.total)
                    if cancel is not None and cancel.is_set():
                        raise RunAborted(
                            f"aborted: shutdown requested after page {page.number}; nothing "
                            "was applied"
                        )
                batches.finish()
            finally:
                batches.close()
    except (DBAPIError, psycopg.Error) as err:
        if _connection_lost(err):  # said by _lost
            raise
        raise _refused(source, f"staging pages 1 to {result.pages + 1}", err) from err

    if cancel is not None and cancel.is_set():
        raise RunAborted("aborted: shutdown requested before the merge; nothing was applied")
    complete = collector.complete and not checks.skipped
    reason = collector.incomplete_reason or checks.incomplete_reason()
    result.unknown_statuses = dict(unknown)
    warnings = checks.warnings()
    for warning in warnings:
        log.warning("source %s: %s", source.name, warning)
    if unknown:
        listed = ", ".join(f"{value!r} ({n})" for value, n in unknown.most_common(10))
        warnings.append(
            f"{sum(unknown.values())} image(s) have a status outside the {source.provider} "
            f"table and were stored as unknown: {listed}"
        )
        log.warning("source %s: %s", source.name, warnings[-1])

    try:
        with conn.begin():
            merged = store.merge(
                conn,
                source_id=source_id,
                run_id=run_id,
                listing_complete=complete,
                guard=settings.sync,
                allow_mass_disappearance=allow_mass_disappearance,
                normalized_by=normalized_by,
                refresh_digests=refresh_digests,
            )
            if merged.duplicates:
                complete = False
                at = bisect.bisect_right(starts, (merged.first_repeat or 0, sys.maxsize)) - 1
                first = starts[max(at, 0)][1]
                reason = (
                    f"{merged.duplicates} image id(s) were listed on more than one page (the first "
                    f"repeat on page {first}), so items shifted while paging and others may have "
                    "been skipped"
                )
            elif merged.empty_listing:  # the merge marked nothing gone: say why
                complete = False
                reason = (
                    f"the listing came back empty (page 1 held no image), but "
                    f"{merged.active_before} images of this "
                    "source were listed before, so nothing is marked gone; if they really are "
                    "all gone, run again with --allow-mass-disappearance"
                )
            if merged.disappearance_blocked:
                share = merged.disappearance_candidates / max(merged.active_before, 1)
                warnings.append(
                    f"refused to mark {merged.disappearance_candidates} of "
                    f"{merged.active_before} images ({share:.0%}) as gone at once; the limit is "
                    f"{settings.sync.max_disappearance_share:.0%}. If the images really are "
                    "gone, run again with --allow-mass-disappearance"
                )
            result.status = "succeeded"
            result.listing_complete = complete
            result.incomplete_reason = reason
            result.images_seen = merged.images_seen
            result.inserted = merged.inserted
            result.changed = merged.changed
            result.became = dict(merged.became)
            result.unchanged = merged.unchanged
            result.reappeared = merged.reappeared
            result.disappeared = merged.disappeared
            result.missing = merged.missing
            result.disappearance_blocked = merged.disappearance_blocked
            result.disappearance_candidates = merged.disappearance_candidates
            result.warning = "; ".join(warnings) or None
            store.finish_run(
                conn,
                run_id,
                "succeeded",
                listing_complete=complete,
                incomplete_reason=reason,
                pages=result.pages,
                retries=retries[0],
                images_seen=merged.images_seen,
                inserted=merged.inserted,
                changed=merged.changed,
                unchanged=merged.unchanged,
                disappeared=merged.disappeared,
                reappeared=merged.reappeared,
                unknown_statuses=sum(unknown.values()),
                disappearance_blocked=merged.disappearance_blocked,
                warning=result.warning,
            )
            # Same transaction as the events: an alert exists exactly when its events do.
            alert_rules.enqueue_run_alerts(
                conn, settings.alerts, source_id=source_id, run_id=run_id
            )

    except DBAPIError as err:
        if _connection_lost(err):  # said by _lost
            raise
        raise _refused(source, f"the merge (after page {result.pages})", err) from err


def _record_failure(conn: Connection, run_id: int, result: RunResult, err: BaseException) -> None:
    if isinstance(err, RunAborted):
        status, message = "aborted", str(err)
    elif isinstance(err, InventoryError):
        status, message = "failed", scrub(str(err))
    elif isinstance(err, KeyboardInterrupt | SystemExit):
        status, message = "aborted", f"aborted: interrupted ({type(err).__name__})"
    else:
        status, message = "failed", scrub(f"internal error: {type(err).__name__}: {err}")
    result.status = status
    result.error = message
    try:
        if conn.in_transaction():
            conn.rollback()
        with conn.begin():
            store.finish_run(
                conn, run_id, status, pages=result.pages, retries=result.retries, error=message
            )
    except Exception:  # the database itself is gone: the next run will mark it aborted
        log.exception("could not record the outcome of run %s", run_id)


def _connection_lost(err: BaseException) -> bool:
    """Whether ``err`` is the database connection breaking (SQLAlchemy's disconnect
    detection, or psycopg's own during the staging COPY), not a query's own error such as
    a statement timeout."""
    if isinstance(err, DBAPIError):
        return err.connection_invalidated
    if isinstance(err, psycopg.OperationalError):
        pgconn = err.pgconn
        return pgconn is None or pgconn.status == psycopg.pq.ConnStatus.BAD
    return False


def _lost(source: SourceConfig, result: RunResult, err: BaseException) -> DatabaseLost:
    cause = err.orig if isinstance(err, DBAPIError) and err.orig else err
    after = f"after page {result.pages}" if result.pages else "before the first page was stored"
    return DatabaseLost(
        f"source {source.name!r}: the database connection was lost during the run ({after}): "
        f"{scrub(str(cause)).strip()}; nothing of this run was applied, and the next run "
        "starts over"
    )


def _refused(source: SourceConfig, where: str, err: BaseException) -> DatabaseRefused:
    """A statement the database refused, as an error naming the source and where the run
    was (a broken connection is :func:`_lost` instead)."""
    cause = err.orig if isinstance(err, DBAPIError) else err
    diag = getattr(cause, "diag", None)
    said = (getattr(diag, "message_primary", None) or str(cause or err)).strip()
    code = getattr(cause, "sqlstate", None)
    return DatabaseRefused(
        f"source {source.name!r}, {where}: the database refused the run's statement: "
        f"{scrub(said)}" + (f" (SQLSTATE {code})" if code else "") + "; nothing of this run "
        "was applied, and the next run starts over"
    )


def _record_failure_anew(
    engine: Engine, run_id: int, result: RunResult, err: BaseException, wait_s: float = 10.0
) -> None:
    """Record the outcome on a new connection, waiting up to ``wait_s`` for a database
    that is restarting; if it stays away, the next run marks this one aborted."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with engine.connect() as conn:
                _record_failure(conn, run_id, result, err)
            return
        except SQLAlchemyError:  # the server still away, or every pooled connection busy
            if time.monotonic() >= deadline:
                log.warning(
                    "run %s: the database is still away; its outcome is not recorded", run_id
                )
                return
            time.sleep(0.5)


def _release(conn: Connection, source_id: int) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()
        with conn.begin():
            store.drop_stage(conn)
            store.unlock_source(conn, source_id)
    except Exception:
        # Never hand a connection that may still hold the lock back to the pool.
        conn.invalidate()


def _log_result(result: RunResult, failure_level: int = logging.ERROR) -> None:
    """The one structured line per run (JSON fields with --log-format json)."""
    fields = {
        "event": "sync_run",
        "source": result.source,
        "run_id": result.run_id,
        "outcome": result.status,
        "duration_s": round(result.duration_s, 3),
        "pages": result.pages,
        "retries": result.retries,
        "images_seen": result.images_seen,
        "inserted": result.inserted,
        "changed": result.changed,
        "unchanged": result.unchanged,
        "disappeared": result.disappeared,
        "missing": result.missing,
        "reappeared": result.reappeared,
        "listing_complete": result.listing_complete,
        "disappearance_blocked": result.disappearance_blocked,
    }
    if result.ok:
        log.info(
            "source %s: run %s %s in %.1fs: %d pages, %d images seen, %d new, %d changed, "
            "%d unchanged, %d gone, %d missing, %d reappeared%s",
            result.source,
            result.run_id,
            result.status,
            result.duration_s,
            result.pages,
            result.images_seen,
            result.inserted,
            result.changed,
            result.unchanged,
            result.disappeared,
            result.missing,
            result.reappeared,
            "" if result.listing_complete else f" (incomplete: {result.incomplete_reason})",
            extra={"fields": fields},
        )
    else:
        fields["error"] = result.error
        log.log(
            failure_level,
            "source %s: run %s %s: %s",
            result.source,
            result.run_id,
            result.status,
            result.error,
            extra={"fields": fields},
        )
