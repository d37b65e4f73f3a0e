"""Create the reporting views, the as-of function and the indexes behind them.

Views (documented column by column in docs/reporting.md):

- ``report_images``: every image's current state with its source, provider and flags;
- ``report_flagged_images``: images now deprecated, suspended, deleted, ceased, failed or
  gone, with since when and the run that saw it first;
- ``report_status_changes``: every status transition (old -> new) with its run;
- ``report_sync_health``: per source: last run, last success, outcome, failure streak and
  staleness judged from the source's own run cadence (the schedule lives in the config,
  which the database never sees);
- ``report_daily_status_counts``: images per UTC day, provider and status.

``inventory_images_as_of(at, source)`` is the status of every image at a moment, from the
SCD2 history. It is a single-statement STABLE SQL function so PostgreSQL inlines it into
the calling query and uses the indexes with the actual arguments.

Indexes: ``image_events (source_id, occurred_at)`` serves "changes of source X since T" and
makes deleting a source (which cascades to its events) not scan every event; the partial
``sync_runs (source_id, started_at DESC) WHERE status = 'succeeded'`` finds a source's last
success without walking back through a long failure streak; ``images (provider_image_id)``
finds an image by the provider's id alone (``inventory history``). All are declared in
inventory/models.py as well, so ``alembic check`` sees no drift.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Written out rather than imported: a migration must keep meaning what it meant when it was
# written, whatever the application's constants become later.
FLAGGED = "('deprecated', 'suspended', 'deleted', 'ceased', 'failed', 'gone')"

#: A source is judged stale after this many of its typical gaps between runs, never sooner
#: than STALE_FLOOR (a few syncs run by hand in a row must not make it stale minutes later).
STALE_GAPS = 3
STALE_FLOOR = "30 minutes"

VIEWS: dict[str, str] = {
    "report_images": f"""
SELECT i.id AS image_id,
       s.id AS source_id, s.name AS source, s.provider, s.location, s.account,
       i.provider_image_id, i.name, i.description,
       i.status, i.raw_status,
       CASE WHEN i.gone_at IS NULL THEN i.status ELSE 'gone' END AS effective_status,
       (i.gone_at IS NOT NULL OR i.status IN {FLAGGED}) AS flagged,
       i.gone_at IS NULL AS listed,
       h.valid_from AS status_since, h.opened_by_run_id AS status_run_id,
       i.os_family, i.os_name, i.platform, i.architecture, i.size_gb, i.visibility,
       i.owner, i.image_type, i.provider_created_at, i.tags,
       i.first_seen_at, i.first_seen_run_id, i.last_changed_at, i.last_changed_run_id,
       i.gone_at,
       CASE WHEN i.gone_at IS NULL THEN seen.finished_at END AS last_seen_at
  FROM images i
  JOIN sources s ON s.id = i.source_id
  LEFT JOIN image_status_history h ON h.image_id = i.id AND h.valid_to IS NULL
  LEFT JOIN LATERAL (
        SELECT r.finished_at FROM sync_runs r
         WHERE r.source_id = s.id AND r.status = 'succeeded' AND r.listing_complete
         ORDER BY r.started_at DESC LIMIT 1) seen ON true
""",
    "report_flagged_images": f"""
SELECT i.id AS image_id,
       s.id AS source_id, s.name AS source, s.provider, s.location,
       i.provider_image_id, i.name,
       CASE WHEN i.gone_at IS NULL THEN i.status ELSE 'gone' END AS status,
       i.raw_status,
       fs.valid_from AS flagged_since, fs.opened_by_run_id AS flagged_run_id,
       h.valid_from AS status_since, h.opened_by_run_id AS status_run_id,
       i.first_seen_at, i.gone_at
  FROM images i
  JOIN sources s ON s.id = i.source_id
  LEFT JOIN image_status_history h ON h.image_id = i.id AND h.valid_to IS NULL
  -- The flagged streak starts at the first interval after the image's last unflagged one
  -- (deprecated -> ceased -> gone is one streak, flagged since it became deprecated).
  LEFT JOIN LATERAL (
        SELECT f.valid_from, f.opened_by_run_id
          FROM image_status_history f
         WHERE f.image_id = i.id
           AND f.valid_from > coalesce(
                 (SELECT max(n.valid_from) FROM image_status_history n
                   WHERE n.image_id = i.id AND n.status NOT IN {FLAGGED}),
                 '-infinity')
         ORDER BY f.valid_from, f.id
         LIMIT 1) fs ON true
 WHERE i.gone_at IS NOT NULL OR i.status IN {FLAGGED}
""",
    "report_status_changes": """
SELECT e.id AS event_id, e.occurred_at, e.run_id,
       s.id AS source_id, s.name AS source, s.provider, s.location,
       e.image_id, i.provider_image_id, i.name AS image_name,
       e.kind, e.old_status, e.new_status
  FROM image_events e
  JOIN images i ON i.id = e.image_id
  JOIN sources s ON s.id = e.source_id
 WHERE e.kind IN ('status_changed', 'disappeared', 'reappeared')
""",
    "report_sync_health": f"""
SELECT s.id AS source_id, s.name AS source, s.provider, s.location,
       coalesce(n.runs, 0) AS runs,
       last.id AS last_run_id, last.status AS last_run_status, last.trigger AS last_run_trigger,
       last.started_at AS last_run_started_at, last.finished_at AS last_run_finished_at,
       last.error AS last_run_error, last.warning AS last_run_warning,
       ok.id AS last_success_run_id, ok.finished_at AS last_success_at,
       complete.finished_at AS last_complete_listing_at,
       coalesce(streak.failures, 0) AS failure_streak,
       gap.typical_gap,
       now() - ok.finished_at AS since_success,
       greatest({STALE_GAPS} * gap.typical_gap, interval '{STALE_FLOOR}') AS stale_after,
       CASE WHEN coalesce(n.runs, 0) = 0 THEN NULL
            WHEN ok.id IS NULL THEN true
            WHEN gap.typical_gap IS NULL THEN NULL
            ELSE now() - ok.finished_at
                 > greatest({STALE_GAPS} * gap.typical_gap, interval '{STALE_FLOOR}')
       END AS stale
  FROM sources s
  LEFT JOIN LATERAL (SELECT count(*) AS runs FROM sync_runs r WHERE r.source_id = s.id) n
         ON true
  LEFT JOIN LATERAL (
        SELECT r.* FROM sync_runs r WHERE r.source_id = s.id
         ORDER BY r.started_at DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (
        SELECT r.id, r.started_at, r.finished_at FROM sync_runs r
         WHERE r.source_id = s.id AND r.status = 'succeeded'
         ORDER BY r.started_at DESC LIMIT 1) ok ON true
  LEFT JOIN LATERAL (
        SELECT r.finished_at FROM sync_runs r
         WHERE r.source_id = s.id AND r.status = 'succeeded' AND r.listing_complete
         ORDER BY r.started_at DESC LIMIT 1) complete ON true
  LEFT JOIN LATERAL (
        SELECT count(*) AS failures FROM sync_runs r
         WHERE r.source_id = s.id AND r.status IN ('failed', 'aborted')
           AND r.started_at > coalesce(ok.started_at, '-infinity')) streak ON true
  -- The median gap between the starts of the last 11 runs: the cadence the source keeps.
  LEFT JOIN LATERAL (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY g.gap) AS typical_gap
          FROM (SELECT r.started_at - lag(r.started_at) OVER (ORDER BY r.started_at) AS gap
                  FROM (SELECT started_at FROM sync_runs
                         WHERE source_id = s.id ORDER BY started_at DESC LIMIT 11) r) g
         WHERE g.gap IS NOT NULL) gap ON true
""",
    "report_daily_status_counts": """
-- End-of-day (UTC) counts from the history intervals: each interval adds one on the day it
-- opens and removes one on the day it closes; a running sum per provider and status gives
-- the count at the end of each day. One pass over the history instead of one per day.
WITH deltas AS (
    SELECT s.provider, h.status, (h.valid_from AT TIME ZONE 'UTC')::date AS day, 1 AS delta
      FROM image_status_history h
      JOIN images i ON i.id = h.image_id
      JOIN sources s ON s.id = i.source_id
    UNION ALL
    SELECT s.provider, h.status, (h.valid_to AT TIME ZONE 'UTC')::date, -1
      FROM image_status_history h
      JOIN images i ON i.id = h.image_id
      JOIN sources s ON s.id = i.source_id
     WHERE h.valid_to IS NOT NULL
), per_day AS (
    SELECT provider, status, day, sum(delta) AS delta FROM deltas GROUP BY provider, status, day
), days AS (
    SELECT f.provider, f.status, d::date AS day
      FROM (SELECT provider, status, min(day) AS first FROM per_day GROUP BY provider, status) f
     CROSS JOIN LATERAL generate_series(
           f.first::timestamp, (now() AT TIME ZONE 'UTC')::date::timestamp, interval '1 day') d
)
SELECT d.day, d.provider, d.status,
       (sum(coalesce(p.delta, 0)) OVER (PARTITION BY d.provider, d.status ORDER BY d.day))::bigint
           AS images
  FROM days d
  LEFT JOIN per_day p ON p.provider = d.provider AND p.status = d.status AND p.day = d.day
""",
}

AS_OF_FUNCTION = """
CREATE FUNCTION inventory_images_as_of(p_at timestamptz, p_source text DEFAULT NULL)
RETURNS TABLE (
    source text, provider text, image_id bigint, provider_image_id text, name text,
    status text, raw_status text, status_since timestamptz, status_until timestamptz,
    opened_by_run_id bigint
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT s.name, s.provider, i.id, i.provider_image_id, i.name,
           h.status, h.raw_status, h.valid_from, h.valid_to, h.opened_by_run_id
      FROM sources s
      JOIN images i ON i.source_id = s.id
      JOIN image_status_history h ON h.image_id = i.id
     WHERE (p_source IS NULL OR s.name = p_source)
       AND h.valid_from <= p_at AND (h.valid_to IS NULL OR h.valid_to > p_at)
$$
"""


def upgrade() -> None:
    op.create_index("ix_images_provider_image_id", "images", ["provider_image_id"], unique=False)
    op.create_index(
        "ix_image_events_source_id_occurred_at",
        "image_events",
        ["source_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_sync_runs_source_id_started_at_succeeded",
        "sync_runs",
        ["source_id", sa.text("started_at DESC")],
        unique=False,
        postgresql_where=sa.text("status = 'succeeded'"),
    )
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
    op.execute(AS_OF_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS inventory_images_as_of(timestamptz, text)")
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index(
        "ix_sync_runs_source_id_started_at_succeeded",
        table_name="sync_runs",
        postgresql_where=sa.text("status = 'succeeded'"),
    )
    op.drop_index("ix_image_events_source_id_occurred_at", table_name="image_events")
    op.drop_index("ix_images_provider_image_id", table_name="images")
