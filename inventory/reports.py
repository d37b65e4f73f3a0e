"""Queries behind the read-only commands (status, the demo's summary)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class SourceStatus:
    name: str
    provider: str
    location: str
    run_id: int | None
    run_status: str | None
    started_at: datetime | None
    finished_at: datetime | None
    age_s: float | None
    last_success_at: datetime | None
    error: str | None
    warning: str | None
    images: int
    flagged: int
    gone: int


def source_status(conn: Connection) -> list[SourceStatus]:
    rows = conn.execute(
        text(
            """
            SELECT s.name, s.provider, s.location,
                   r.id AS run_id, r.status AS run_status, r.started_at, r.finished_at,
                   extract(epoch FROM now() - coalesce(r.finished_at, r.started_at))
                       AS age_s,
                   ok.finished_at AS last_success_at, r.error, r.warning,
                   coalesce(c.images, 0) AS images, coalesce(c.flagged, 0) AS flagged,
                   coalesce(c.gone, 0) AS gone
              FROM sources s
              LEFT JOIN LATERAL (
                    SELECT * FROM sync_runs WHERE source_id = s.id
                     ORDER BY started_at DESC LIMIT 1) r ON true
              LEFT JOIN LATERAL (
                    SELECT finished_at FROM sync_runs
                     WHERE source_id = s.id AND status = 'succeeded'
                     ORDER BY started_at DESC LIMIT 1) ok ON true
              LEFT JOIN LATERAL (
                    SELECT count(*) FILTER (WHERE gone_at IS NULL) AS images,
                           count(*) FILTER (WHERE gone_at IS NULL AND status IN
                               ('deprecated', 'suspended', 'deleted', 'ceased', 'failed'))
                               AS flagged,
                           count(*) FILTER (WHERE gone_at IS NOT NULL) AS gone
                      FROM images WHERE source_id = s.id) c ON true
             ORDER BY s.name
            """
        )
    ).all()
    return [SourceStatus(**row._asdict()) for row in rows]


def stale_since(
    last_success: datetime | None,
    schedule: str | None,
    timezone: str,
    intervals: float,
    now: datetime | None = None,
) -> timedelta | None:
    """How far past its allowance a source is, or None when it is not stale.

    A source is stale when its last success is older than ``intervals`` of its schedule's
    interval (a never-successful source counts from the Unix epoch). Unscheduled sources
    are never stale: nothing promises when they run.
    """
    from inventory import cron

    if not schedule:
        return None
    now = now or datetime.now(UTC)
    allowance = cron.typical_interval(schedule, timezone, now) * intervals
    since = last_success or datetime(1970, 1, 1, tzinfo=UTC)
    overdue = now - since - allowance
    return overdue if overdue > timedelta(0) else None


@dataclass(frozen=True)
class FlaggedImage:
    source: str
    provider_image_id: str
    name: str | None
    kind: str
    old_status: str | None
    new_status: str | None
    occurred_at: datetime
    run_id: int


def flagged_in_runs(conn: Connection, run_ids: list[int]) -> list[FlaggedImage]:
    """Images that these runs saw become deprecated, suspended, deleted, ceased, failed or gone."""
    rows = conn.execute(
        text(
            """
            SELECT s.name AS source, i.provider_image_id, i.name, e.kind, e.old_status,
                   e.new_status, e.occurred_at, e.run_id
              FROM image_events e
              JOIN images i ON i.id = e.image_id
              JOIN sources s ON s.id = e.source_id
             WHERE e.run_id = ANY(:runs)
               AND (e.kind = 'disappeared'
                    OR (e.kind = 'status_changed' AND e.new_status IN
                        ('deprecated', 'suspended', 'deleted', 'ceased', 'failed')))
             ORDER BY s.name, e.new_status, i.provider_image_id
            """
        ),
        {"runs": run_ids},
    ).all()
    return [FlaggedImage(**row._asdict()) for row in rows]
