"""Deliver pending outbox rows: claim, send, record the attempt, retry or give up.

Each configured channel is drained by its own thread, so a dead or slow channel (every
send has its channel's timeout) never holds back the others; rows are independent.

A row is claimed with ``SELECT ... FOR NO KEY UPDATE SKIP LOCKED`` in a transaction that
stays open while the message is sent: concurrent dispatchers skip it, and if this process
dies mid-send PostgreSQL drops the lock with the connection, so the next run sends it again
(at-least-once; the idempotency key is the same). ``FOR NO KEY UPDATE`` rather than
``FOR UPDATE`` because the attempt row is inserted first on a second connection and
committed, so even a killed attempt stays on record; its foreign-key check takes a KEY SHARE
lock that ``FOR UPDATE`` would block. An attempt found still ``started`` when its row is
claimed again was interrupted, and counts against ``max_attempts``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from inventory.alerts import channels as channel_mod
from inventory.alerts.payload import build
from inventory.alerts.rules import evaluate_health
from inventory.config import AlertSettings, ChannelConfig, Settings
from inventory.secrets import scrub

log = logging.getLogger("inventory.alerts")


@dataclass
class DispatchResult:
    sent: int = 0
    failed: int = 0  # attempts that failed and will be retried
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DispatchResult) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.dead += other.dead
        self.errors += other.errors


def backoff_s(alerts: AlertSettings, attempt: int) -> float:
    """Seconds before retry number ``attempt`` + 1: exponential, capped."""
    return float(min(alerts.backoff_max_s, alerts.backoff_base_s * 2 ** (attempt - 1)))


def dispatch(engine: Engine, settings: Settings, *, health: bool = True) -> DispatchResult:
    """Send everything due on every configured channel; evaluate source health first."""
    alerts = settings.alerts
    if health:
        with engine.begin() as conn:
            evaluate_health(conn, alerts, (*settings.sources, *settings.templates))
    total = DispatchResult()
    if not alerts.channels:
        return total
    with ThreadPoolExecutor(max_workers=len(alerts.channels)) as pool:
        futures = [pool.submit(drain, engine, alerts, ch) for ch in alerts.channels.values()]
        for future in futures:
            total.add(future.result())
    return total


_CLAIM = """
SELECT * FROM alert_outbox
 WHERE channel = :channel AND status = 'pending' AND next_attempt_at <= now()
 ORDER BY next_attempt_at, id
 LIMIT 1
 FOR NO KEY UPDATE SKIP LOCKED
"""


def drain(engine: Engine, alerts: AlertSettings, channel: ChannelConfig) -> DispatchResult:
    """Deliver due rows of one channel until none is left (retries bounded by attempts)."""
    result = DispatchResult()
    while True:
        with engine.connect() as conn, conn.begin():
            row = conn.execute(text(_CLAIM), {"channel": channel.name}).first()
            if row is None:
                return result
            interrupted = conn.execute(
                text(
                    """
                    UPDATE alert_attempts
                       SET outcome = 'failed', finished_at = now(),
                           error = 'interrupted: the dispatcher stopped during delivery'
                     WHERE outbox_id = :id AND outcome = 'started'
                    """
                ),
                {"id": row.id},
            ).rowcount
            attempt = row.attempts + interrupted + 1
            with engine.begin() as side:
                attempt_id = side.execute(
                    text(
                        """
                        INSERT INTO alert_attempts (outbox_id, attempt, outcome)
                        SELECT :id, count(*) + 1, 'started' FROM alert_attempts
                         WHERE outbox_id = :id
                        RETURNING id
                        """
                    ),
                    {"id": row.id},
                ).scalar_one()
            error = _deliver(conn, channel, row)
            if error is None:
                status, outcome = "sent", "sent"
                result.sent += 1
            elif attempt >= alerts.max_attempts:
                status, outcome = "dead", "failed"
                result.dead += 1
                result.errors.append(error)
                log.error(
                    "alert %s to %s is dead after %d attempts: %s",
                    row.id,
                    channel.name,
                    attempt,
                    error,
                )
            else:
                status, outcome = "pending", "failed"
                result.failed += 1
                log.warning(
                    "alert %s to %s failed (attempt %d of %d): %s",
                    row.id,
                    channel.name,
                    attempt,
                    alerts.max_attempts,
                    error,
                )
            conn.execute(
                text(
                    """
                    UPDATE alert_outbox
                       SET status = :status, attempts = :attempt, last_error = :error,
                           sent_at = CASE WHEN :status = 'sent' THEN now() END,
                           next_attempt_at = now() + make_interval(secs => :delay)
                     WHERE id = :id
                    """
                ),
                {
                    "status": status,
                    "attempt": attempt,
                    "error": error,
                    "delay": backoff_s(alerts, attempt),
                    "id": row.id,
                },
            )
            conn.execute(
                text(
                    """
                    UPDATE alert_attempts SET outcome = :outcome, error = :error,
                           finished_at = now()
                     WHERE id = :id
                    """
                ),
                {"outcome": outcome, "error": error, "id": attempt_id},
            )


def _deliver(conn: Any, channel: ChannelConfig, row: Any) -> str | None:
    """Send one row; the error text, or None when the channel accepted it."""
    try:
        channel_mod.send(channel, build(conn, row))
    except Exception as err:  # any failure is this row's, never the dispatcher's
        return scrub(str(err)) or type(err).__name__
    return None


def replay(engine: Engine, alert_id: int) -> bool:
    """Re-queue a dead alert with a fresh attempt budget; False if no dead row has that id."""
    with engine.begin() as conn:
        return (
            conn.execute(
                text(
                    """
                    UPDATE alert_outbox
                       SET status = 'pending', attempts = 0, next_attempt_at = now()
                     WHERE id = :id AND status = 'dead'
                    """
                ),
                {"id": alert_id},
            ).rowcount
            == 1
        )


def list_alerts(engine: Engine, status: str | None = None, limit: int = 100) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    """
                    SELECT o.id, o.status, o.channel, o.kind, o.severity, o.rule,
                           s.name AS source, o.run_id, cardinality(o.event_ids) AS events,
                           o.attempts, o.created_at, o.sent_at, o.next_attempt_at,
                           o.last_error
                      FROM alert_outbox o JOIN sources s ON s.id = o.source_id
                     WHERE CAST(:status AS text) IS NULL OR o.status = :status
                     ORDER BY o.id DESC LIMIT :limit
                    """
                ),
                {"status": status, "limit": limit},
            )
        )


def sample_payload(channel: ChannelConfig) -> dict[str, Any]:
    """A message that exercises a channel without touching the outbox."""
    from datetime import UTC, datetime

    from inventory.alerts.rules import idempotency_key

    now = datetime.now(UTC).isoformat()
    return {
        "type": "inventory.alert",
        "version": 1,
        "alert_id": None,
        "idempotency_key": idempotency_key("test", channel.name, now),
        "kind": "test",
        "severity": "info",
        "rule": "test",
        "source": None,
        "run_id": None,
        "created_at": now,
        "summary": f"test message from inventory to channel {channel.name}",
        "event_count": 0,
        "events": [],
    }
