"""Queries behind the read-only commands: status, the demo's summary, ``report``, ``history``.

The report queries read the views of migration 0002 (docs/reporting.md), so the CLI, the
SQL cookbook and dashboards built on the views all agree on what "flagged" or "stale"
means. Functions return plain Python values; inventory/report_render.py formats them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from inventory.errors import UsageError

if TYPE_CHECKING:
    from inventory.config import Settings


@dataclass(frozen=True)
class SourceStatus:
    name: str
    provider: str
    location: str
    account: str | None
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
    #: The ``regions = "*"`` table that found the source, and when it retired (or None).
    discovered_by: str | None = None
    retired_at: datetime | None = None


def source_status(conn: Connection) -> list[SourceStatus]:
    rows = conn.execute(
        text(
            """
            SELECT s.name, s.provider, s.location, s.account, s.discovered_by, s.retired_at,
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
              -- one pass over the images for every source (a lookup per source would
              -- visit each image through the index: 13 times slower at a million)
              LEFT JOIN (
                    SELECT source_id,
                           count(*) FILTER (WHERE gone_at IS NULL) AS images,
                           count(*) FILTER (WHERE gone_at IS NULL AND status IN
                               ('deprecated', 'suspended', 'deleted', 'ceased', 'failed'))
                               AS flagged,
                           count(*) FILTER (WHERE gone_at IS NOT NULL) AS gone
                      FROM images GROUP BY source_id) c ON c.source_id = s.id
             ORDER BY s.account NULLS FIRST, s.name
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


def freshness(row: SourceStatus, settings: Settings, now: datetime | None = None) -> str:
    """``retired``; ``STALE`` or ``ok`` against the source's schedule in ``settings``
    (no success within ``[scheduler] stale_after_intervals`` of its intervals); ``-`` when
    it is not configured here or has no schedule (nothing promises when it runs)."""
    if row.retired_at is not None:
        return "retired"
    # A discovered source is scheduled as the [[sources]] table that found it.
    configured = {s.name: s for s in (*settings.sources, *settings.templates)}
    source = configured.get(row.name) or configured.get(row.discovered_by or "")
    if source is None or not source.schedule:
        return "-"
    intervals = settings.scheduler.stale_after_intervals
    late = stale_since(row.last_success_at, source.schedule, source.timezone, intervals, now)
    return "STALE" if late is not None else "ok"


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


# -- report commands (views from migration 0002) ---------------------------------------------

#: The views behind the report commands and the SQL cookbook (docs/reporting.md).
REPORT_VIEWS: tuple[str, ...] = (
    "report_images",
    "report_flagged_images",
    "report_status_changes",
    "report_sync_health",
    "report_daily_status_counts",
)

#: The tables those views read; the read-only role may select from these too.
REPORT_TABLES: tuple[str, ...] = (
    "sources",
    "sync_runs",
    "images",
    "image_status_history",
    "image_events",
)

#: ``inventory_images_as_of(at timestamptz, source text DEFAULT NULL)``.
AS_OF_FUNCTION = "inventory_images_as_of(timestamptz, text)"

_SINCE = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None, option: str = "--since") -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w``, ``90s`` ago, or an ISO 8601 date or time (UTC if
    no offset is given). Raises ValueError with the accepted forms, naming ``option``."""
    now = now or datetime.now(UTC)
    match = _SINCE.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        try:
            return now - timedelta(**{_UNITS[unit]: amount})
        except OverflowError:
            raise ValueError(
                f"{option} {value!r}: that is before the year 1; give a smaller age"
            ) from None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{option} {value!r}: give an age such as 7d, 12h, 30m, 2w, or an ISO date or "
            "time such as 2026-11-01 or 2026-11-01T08:00:00+01:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    """The options every report takes; None means no filter."""

    since: datetime | None = None
    source: str | None = None
    provider: str | None = None
    status: str | None = None
    account: str | None = None
    limit: int | None = None  # at most this many rows (Table.more says whether there were more)
    offset: int = 0  # after skipping this many (a page of the web dashboard)


@dataclass(frozen=True)
class Table:
    """A report's result: column names and rows of plain Python values."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    more: bool = False  # rows beyond the limit were left out

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def report_statuses(kind: str) -> list[str]:
    """The values report ``kind``'s status filter takes."""
    from inventory.models import HISTORY_STATUSES, RUN_STATUSES
    from inventory.records import FLAGGED_STATUSES

    return {
        # as report_flagged_images shows them: missing is flagged until confirmed gone
        "flagged": [
            *(s for s in HISTORY_STATUSES if s in FLAGGED_STATUSES or s == "gone"),
            "missing",
        ],
        "changes": list(HISTORY_STATUSES),
        "summary": list(HISTORY_STATUSES),
        "as-of": list(HISTORY_STATUSES),
        "health": list(RUN_STATUSES),
    }[kind]


def check_filters(
    conn: Connection, kind: str, filters: Filters, label: str | None = None, flag: str = "--"
) -> None:
    """Refuse a filter no row could ever match (a typo reads as "nothing flagged"
    otherwise): the source, provider, account and status must exist for this report.
    Messages start with ``label`` (default ``report <kind>``) and name options as
    ``<flag>status`` (the dashboard's query parameters have no dashes)."""
    from inventory.providers import PROVIDERS

    statuses = report_statuses(kind)
    what = {"health": "last-run outcome", "changes": "new status"}.get(kind, "status")
    label = label or f"report {kind}"
    if filters.status is not None and filters.status not in statuses:
        raise UsageError(
            f"{label}: {flag}status {filters.status!r} is not a {what}; "
            f"use one of {', '.join(statuses)}"
        )
    if filters.provider is not None and filters.provider not in PROVIDERS:
        raise UsageError(
            f"{label}: {flag}provider {filters.provider!r} is not a provider; "
            f"use one of {', '.join(sorted(PROVIDERS))}"
        )
    for option, column, value in (
        (f"{flag}source", "name", filters.source),
        (f"{flag}account", "account", filters.account),
    ):
        if value is None:
            continue
        known = list(
            conn.execute(
                text(f"SELECT DISTINCT {column} FROM sources WHERE {column} IS NOT NULL ORDER BY 1")
            ).scalars()
        )
        if value not in known:
            listed = ", ".join(known[:20]) + (
                f" and {len(known) - 20} more" if len(known) > 20 else ""
            )
            none = "no source has been synced yet" if column == "name" else "none has one"
            raise UsageError(
                f"{label}: {option} {value!r} matches no synced source; "
                + (f"known: {listed}" if known else none)
            )


def _where(
    filters: Filters, *, since_column: str | None, status_column: str
) -> tuple[str, dict[str, Any]]:
    """The filters on a report view aliased ``v``, joined to its ``sources`` row ``s``."""
    clauses: list[str] = ["true"]
    params: dict[str, Any] = {}
    if filters.since is not None and since_column is not None:
        clauses.append(f"v.{since_column} >= :since")
        params["since"] = filters.since
    for column, value in (
        ("v.source", filters.source),
        ("v.provider", filters.provider),
        (f"v.{status_column}", filters.status),
        ("s.account", filters.account),
    ):
        if value is not None:
            name = column.split(".", 1)[1]
            clauses.append(f"{column} = :{name}")
            params[name] = value
    return " AND ".join(clauses), params


def _table(
    conn: Connection, sql: str, params: dict[str, Any], limit: int | None = None, offset: int = 0
) -> Table:
    """The query's result, at most ``limit`` rows after the first ``offset``; its
    ``account`` column only when some source has an account (the sources of one account
    are listed together either way)."""
    if limit is not None:
        sql, params = f"{sql} LIMIT :limit_plus_one", {**params, "limit_plus_one": limit + 1}
    if offset:
        sql, params = f"{sql} OFFSET :offset", {**params, "offset": offset}
    result = conn.execute(text(sql), params)
    columns, rows = tuple(result.keys()), [tuple(row) for row in result.all()]
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    if "account" in columns:
        at = columns.index("account")
        if all(row[at] is None for row in rows):
            columns = columns[:at] + columns[at + 1 :]
            rows = [row[:at] + row[at + 1 :] for row in rows]
    return Table(columns, rows, more)


#: How a report view ``v`` reaches its source's account.
_ACCOUNT_JOIN = "LEFT JOIN sources s ON s.id = v.source_id"


@dataclass(frozen=True)
class _Listing:
    """A listing report's query: its SELECT, its ORDER BY (left out to count the rows,
    where sorting would cost several times the counting) and its parameters."""

    select: str
    order: str
    params: dict[str, Any]

    @property
    def sql(self) -> str:
        return f"{self.select} ORDER BY {self.order}"


def _flagged_query(filters: Filters) -> _Listing:
    where, params = _where(filters, since_column="flagged_since", status_column="status")
    return _Listing(
        f"""
        SELECT v.source, s.account, v.provider, v.provider_image_id, v.name, v.status,
               v.raw_status, v.flagged_since, v.flagged_run_id, v.status_since, v.status_run_id
          FROM report_flagged_images v {_ACCOUNT_JOIN}
         WHERE {where}
        """,
        "s.account NULLS FIRST, v.flagged_since DESC, v.source, v.provider_image_id",
        params,
    )


def _changes_query(filters: Filters) -> _Listing:
    where, params = _where(filters, since_column="occurred_at", status_column="new_status")
    return _Listing(
        f"""
        SELECT v.occurred_at, v.source, s.account, v.provider, v.provider_image_id,
               v.image_name, v.kind, v.old_status, v.new_status, v.run_id
          FROM report_status_changes v {_ACCOUNT_JOIN}
         WHERE {where}
        """,
        "s.account NULLS FIRST, v.occurred_at DESC, v.source, v.provider_image_id, v.event_id",
        params,
    )


def _as_of_query(filters: Filters, at: datetime) -> _Listing:
    params: dict[str, Any] = {"at": at, "source": filters.source}
    clauses = ["true"]
    for column, value in (("a.provider", filters.provider), ("a.status", filters.status)):
        if value is not None:
            name = column.split(".", 1)[1]
            clauses.append(f"{column} = :{name}")
            params[name] = value
    return _Listing(
        f"""
        SELECT a.source, a.provider, a.provider_image_id, a.name, a.status, a.raw_status,
               a.status_since, a.status_until
          FROM inventory_images_as_of(:at, :source) a
         WHERE {" AND ".join(clauses)}
        """,
        "a.source, a.provider_image_id",
        params,
    )


def report_as_of(conn: Connection, filters: Filters, at: datetime) -> Table:
    """Every image's status at the moment ``at`` (``inventory_images_as_of``), by source
    and provider id; ``source``, ``provider`` and ``status`` filter it."""
    query = _as_of_query(filters, at)
    return _table(conn, query.sql, query.params, filters.limit, filters.offset)


def as_of_counts(conn: Connection, at: datetime, source: str | None = None) -> dict[str, int]:
    """How many images were in each status at ``at`` (gone included)."""
    rows = conn.execute(
        text("SELECT status, count(*) FROM inventory_images_as_of(:at, :source) GROUP BY status"),
        {"at": at, "source": source},
    )
    return {status: int(n) for status, n in rows}


def report_flagged(conn: Connection, filters: Filters) -> Table:
    """Images now flagged; ``since`` keeps those flagged since then or later."""
    query = _flagged_query(filters)
    return _table(conn, query.sql, query.params, filters.limit, filters.offset)


def report_changes(conn: Connection, filters: Filters) -> Table:
    """Status transitions since ``since``; ``status`` filters the new status."""
    query = _changes_query(filters)
    return _table(conn, query.sql, query.params, filters.limit, filters.offset)


def status_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Images per source and effective status (``gone`` for gone ones), as
    ``report_summary`` counts them without filters, in one pass over the images."""
    rows = conn.execute(
        text(
            """
            SELECT s.name, c.status, c.images
              FROM (SELECT source_id, CASE WHEN gone_at IS NULL THEN status ELSE 'gone' END
                               AS status, count(*) AS images
                      FROM images GROUP BY 1, 2) c
              JOIN sources s ON s.id = c.source_id
            """
        )
    )
    counts: dict[str, dict[str, int]] = {}
    for source, status, images in rows:
        counts.setdefault(source, {})[status] = int(images)
    return counts


def flagged_per_source(conn: Connection) -> dict[str, int]:
    """How many images of each source ``report_flagged_images`` lists (gone and missing
    ones included, as ``inventory report flagged`` and the dashboard's flagged page)."""
    rows = conn.execute(text("SELECT source, count(*) FROM report_flagged_images GROUP BY 1"))
    return {source: int(n) for source, n in rows}


def count_rows(conn: Connection, kind: str, filters: Filters, at: datetime | None = None) -> int:
    """How many rows report ``kind`` (flagged, changes, as-of ``at``) has under
    ``filters``, all pages."""
    if kind == "as-of":
        assert at is not None
        query = _as_of_query(filters, at)
    else:
        query = {"flagged": _flagged_query, "changes": _changes_query}[kind](filters)
    counted = f"SELECT count(*) FROM ({query.select}) q"
    return int(conn.execute(text(counted), query.params).scalar_one())


def report_summary(conn: Connection, filters: Filters) -> Table:
    """Images per provider, source and status (``gone`` included); ``changed_since`` counts
    those whose current status began at or after ``since`` (null when no ``since``)."""
    where, params = _where(filters, since_column=None, status_column="effective_status")
    params["since"] = filters.since
    return _table(
        conn,
        f"""
        SELECT v.provider, s.account, v.source, v.effective_status AS status,
               count(*) AS images,
               CASE WHEN CAST(:since AS timestamptz) IS NULL THEN NULL
                    ELSE count(*) FILTER (WHERE v.status_since >= CAST(:since AS timestamptz))
               END AS changed_since
          FROM report_images v {_ACCOUNT_JOIN}
         WHERE {where}
         GROUP BY v.provider, s.account, v.source, v.effective_status
         ORDER BY v.provider, s.account NULLS FIRST, v.source, v.effective_status
        """,
        params,
        filters.limit,
        filters.offset,
    )


def report_health(
    conn: Connection,
    filters: Filters,
    schedules: Mapping[str, tuple[str, str]] | None = None,
    stale_after_intervals: float = 3.0,
    now: datetime | None = None,
) -> Table:
    """Per source sync health; ``status`` filters the last run's outcome.

    ``schedules`` maps source names to (cron schedule, timezone) from the config: for those
    the ``schedule_stale`` column says whether the last success is older than
    ``stale_after_intervals`` schedule intervals (null for sources without a schedule).
    """
    where, params = _where(filters, since_column=None, status_column="last_run_status")
    table = _table(
        conn,
        f"""
        SELECT v.source, s.account, v.provider, v.location, v.runs, v.last_run_id,
               v.last_run_status, v.last_run_started_at, v.last_run_finished_at,
               v.last_success_at, v.failure_streak, v.typical_gap, v.since_success, v.stale,
               v.last_run_error
          FROM report_sync_health v {_ACCOUNT_JOIN}
         WHERE {where}
         ORDER BY s.account NULLS FIRST, v.source
        """,
        params,
        filters.limit,
        filters.offset,
    )
    schedules = schedules or {}
    at = table.columns.index("last_success_at")
    rows = []
    for row in table.rows:
        planned = schedules.get(row[0])
        late: bool | None = None
        if planned is not None:
            late = (
                stale_since(row[at], planned[0], planned[1], stale_after_intervals, now) is not None
            )
        rows.append((*row[:-1], late, row[-1]))
    columns = (*table.columns[:-1], "schedule_stale", table.columns[-1])
    return Table(columns, rows, table.more)


class AmbiguousImage(UsageError):
    """Several sources hold an image with this provider id: the caller must name one."""

    def __init__(self, provider_image_id: str, sources: list[str]) -> None:
        super().__init__(
            f"image {provider_image_id!r} is in several sources ({', '.join(sources)}); "
            "choose one with --source"
        )
        self.provider_image_id, self.sources = provider_image_id, sources


@dataclass(frozen=True)
class ImageHistory:
    """One image: its current row, its status intervals and its events, oldest first."""

    image: dict[str, Any]
    intervals: Table
    events: Table


def image_history(conn: Connection, provider_image_id: str, source: str | None) -> ImageHistory:
    """The timeline of one image by provider id; ``source`` is needed when several sources
    hold an image with that id. Raises UsageError when none or several match."""
    matches = conn.execute(
        text(
            """
            SELECT image_id, source, provider, location, provider_image_id, name, status,
                   raw_status, effective_status, first_seen_at, last_changed_at, gone_at,
                   last_seen_at, missing_since, missing_runs
              FROM report_images
             WHERE provider_image_id = :id AND (CAST(:source AS text) IS NULL OR source = :source)
             ORDER BY source
            """
        ),
        {"id": provider_image_id, "source": source},
    ).all()
    if not matches:
        where = f" in source {source!r}" if source else ""
        raise UsageError(f"no image {provider_image_id!r}{where} in the inventory")
    if len(matches) > 1:
        raise AmbiguousImage(provider_image_id, [m.source for m in matches])
    image = matches[0]._asdict()
    params = {"image": image["image_id"]}
    intervals = _table(
        conn,
        """
        SELECT status, raw_status, valid_from, valid_to,
               coalesce(valid_to, now()) - valid_from AS duration,
               opened_by_run_id, closed_by_run_id
          FROM image_status_history WHERE image_id = :image
         ORDER BY valid_from, id
        """,
        params,
    )
    events = _table(
        conn,
        """
        SELECT occurred_at, kind, old_status, new_status,
               array_to_string(changed_fields, ',') AS changed_fields, run_id
          FROM image_events WHERE image_id = :image
         ORDER BY occurred_at, id
        """,
        params,
    )
    return ImageHistory(image, intervals, events)


def image_record(conn: Connection, image_id: int) -> dict[str, Any]:
    """An image's normalized fields and its raw record as last stored (``images.raw``)."""
    row = conn.execute(
        text(
            """
            SELECT v.description, v.os_family, v.os_name, v.platform, v.architecture,
                   v.word_size, v.size_gb, v.min_disk_gb, v.visibility, v.owner, v.image_type,
                   v.provider_created_at, v.tags, v.account, i.raw
              FROM report_images v JOIN images i ON i.id = v.image_id
             WHERE v.image_id = :image
            """
        ),
        {"image": image_id},
    ).one()
    return dict(row._asdict())


def daily_counts(conn: Connection, days: int, source: str | None = None) -> Table:
    """Images per UTC day, source and status (``gone`` included) at each day's end (today:
    now), for the last ``days`` days; zero rows are kept so a chart drops to zero.

    As ``report_daily_status_counts`` but per source and over a window, in one pass over
    the history: each interval still open when the window starts, or opened in it, adds one
    on the day it opens (the window's first day for those open already) and removes one on
    the day it closes; a running sum over the window's days gives each day's count.
    Intervals closed before the window are left out at once.
    """
    return _table(
        conn,
        """
        WITH chosen AS (
            SELECT id FROM sources WHERE CAST(:source AS text) IS NULL OR name = :source
        ), window_start AS (
            SELECT (now() AT TIME ZONE 'UTC')::date - (:days - 1) AS day
        ), open_in_window AS (
            -- the intervals still open when the window starts, or opened in it
            SELECT i.source_id, h.status, (h.valid_from AT TIME ZONE 'UTC')::date AS opened,
                   (h.valid_to AT TIME ZONE 'UTC')::date AS closed
              FROM image_status_history h
              JOIN images i ON i.id = h.image_id, window_start w
             WHERE i.source_id IN (SELECT id FROM chosen)
               AND (h.valid_to IS NULL OR h.valid_to >= w.day::timestamp AT TIME ZONE 'UTC')
        ), deltas AS (
            SELECT o.source_id, o.status, greatest(o.opened, w.day) AS day, 1 AS delta
              FROM open_in_window o, window_start w
            UNION ALL
            SELECT source_id, status, closed, -1 FROM open_in_window WHERE closed IS NOT NULL
        ), per_day AS (
            SELECT source_id, status, day, sum(delta) AS delta
              FROM deltas GROUP BY source_id, status, day
        ), series AS (
            SELECT DISTINCT source_id, status FROM per_day
        ), days AS (
            SELECT d::date AS day
              FROM window_start w,
                   generate_series(w.day, (now() AT TIME ZONE 'UTC')::date, interval '1 day') d
        )
        SELECT d.day, s.name AS source, s.provider, k.status,
               sum(coalesce(p.delta, 0)) OVER (PARTITION BY k.source_id, k.status
                                                 ORDER BY d.day)::bigint AS images
          FROM series k
          JOIN sources s ON s.id = k.source_id
         CROSS JOIN days d
          LEFT JOIN per_day p
                 ON p.source_id = k.source_id AND p.status = k.status AND p.day = d.day
         ORDER BY s.name, d.day, k.status
        """,
        {"days": days, "source": source},
    )
