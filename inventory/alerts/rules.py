"""Alert rules applied to a run's events, set-based, inside the run's merge transaction.

:func:`enqueue_run_alerts` is one INSERT ... SELECT from ``image_events WHERE run_id = :run``
joined to the rules (passed as a JSON parameter), so the outbox rows commit or roll back
with the events they report: an alert exists exactly when its events do. Failed runs write
no events, hence no alerts; the first successful run of a source writes none either, so a
new source never announces every image it finds.

Per channel, a run's matching events become one message each, or, when more than
``digest_threshold`` match, one digest. The idempotency key is the sha256 of the run id, the
channel and the event ids, so it is the same however often a message is delivered.

:func:`evaluate_health` compares each source's recent runs with its ``source_health`` row
and enqueues one alert when a source starts failing and one when it recovers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from inventory import cron
from inventory.config import AlertRule, AlertSettings
from inventory.source import SourceConfig

#: Namespace of the advisory lock that serializes health evaluation (store.py uses 0x1A6E_0002).
HEALTH_LOCK_NAMESPACE = 0x1A6E_0003
SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}


def glob_to_like(pattern: str) -> str:
    """A shell glob (``*``, ``?``) as a LIKE pattern with the default ``\\`` escape."""
    out = []
    for char in pattern:
        if char in "%_\\":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


def rules_json(rules: Sequence[AlertRule]) -> str:
    """The rules as the JSON the enqueue SQL reads; empty filters become NULL (match all)."""

    def arr(values: Sequence[str]) -> list[str] | None:
        return list(values) or None

    return json.dumps(
        [
            {
                "pos": pos,
                "name": rule.name,
                "kinds": list(rule.events),
                "statuses": arr(rule.statuses),
                "sources": arr(rule.sources),
                "providers": arr(rule.providers),
                "names": arr([glob_to_like(g) for g in rule.names]),
                "visibilities": arr(rule.visibility),
                "owners": arr(rule.owners),
                "severity": rule.severity,
                "sev_rank": SEVERITY_RANK[rule.severity],
                "channels": list(rule.channels),
            }
            for pos, rule in enumerate(rules)
        ]
    )


_ENQUEUE_SQL = """
WITH rules AS (
    SELECT * FROM jsonb_to_recordset(CAST(:rules AS jsonb)) AS r(
        pos int, name text, kinds text[], statuses text[], sources text[], providers text[],
        names text[], visibilities text[], owners text[], severity text, sev_rank int,
        channels text[])
), matched AS (
    -- One row per (channel, event): the first matching rule that names the channel wins.
    SELECT DISTINCT ON (c.channel, e.id)
           c.channel, e.id AS event_id, r.name AS rule, r.severity, r.sev_rank
      FROM image_events e
      JOIN images i ON i.id = e.image_id
      JOIN sources s ON s.id = e.source_id
      JOIN rules r
        ON e.kind = ANY (r.kinds)
       AND (e.kind <> 'status_changed' OR r.statuses IS NULL OR e.new_status = ANY (r.statuses))
       AND (r.sources IS NULL OR s.name = ANY (r.sources))
       AND (r.providers IS NULL OR s.provider = ANY (r.providers))
       AND (r.names IS NULL OR EXISTS (SELECT 1 FROM unnest(r.names) p WHERE i.name LIKE p))
       AND (r.visibilities IS NULL OR i.visibility = ANY (r.visibilities))
       AND (r.owners IS NULL OR i.owner = ANY (r.owners))
     CROSS JOIN LATERAL unnest(r.channels) AS c(channel)
     WHERE e.run_id = :run
       -- The first successful sync of a source only discovers what exists: no alerts.
       AND EXISTS (SELECT 1 FROM sync_runs p
                    WHERE p.source_id = :sid AND p.status = 'succeeded' AND p.id <> :run)
     ORDER BY c.channel, e.id, r.pos
), counted AS (
    SELECT m.*, count(*) OVER (PARTITION BY m.channel) AS n FROM matched m
), grouped AS (
    SELECT channel,
           CASE WHEN n > :threshold THEN 'digest' ELSE 'event' END AS kind,
           array_agg(event_id ORDER BY event_id) AS event_ids,
           (array_agg(severity ORDER BY sev_rank DESC, rule))[1] AS severity,
           string_agg(DISTINCT rule, ', ') AS rule
      FROM counted
     GROUP BY channel, n > :threshold, CASE WHEN n > :threshold THEN 0 ELSE event_id END
)
INSERT INTO alert_outbox (run_id, source_id, channel, kind, rule, severity, event_ids,
                          idempotency_key)
SELECT :run, :sid, g.channel, g.kind, g.rule, g.severity, g.event_ids,
       encode(sha256(convert_to(
           'run:' || :run || '|channel:' || g.channel || '|events:'
           || array_to_string(g.event_ids, ','), 'UTF8')), 'hex')
  FROM grouped g
"""


def enqueue_run_alerts(
    conn: Connection, alerts: AlertSettings, *, source_id: int, run_id: int
) -> int:
    """Write the outbox rows of one run; call inside the run's merge transaction."""
    if not alerts.enabled or not alerts.rules:
        return 0
    result = conn.execute(
        text(_ENQUEUE_SQL),
        {
            "rules": rules_json(alerts.rules),
            "run": run_id,
            "sid": source_id,
            "threshold": alerts.digest_threshold,
        },
    )
    return result.rowcount


def idempotency_key(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def evaluate_health(
    conn: Connection,
    alerts: AlertSettings,
    sources: Sequence[SourceConfig],
    now: datetime | None = None,
) -> int:
    """Enqueue health alerts for sources whose state changed; return how many rows.

    A source is failing when its last ``health_failures`` finished runs all failed, or
    when it has a schedule and its last success (or, never having succeeded, its first
    run) is older than ``health_stale_intervals`` of that schedule's interval. ``sources``
    are the configured ones, ``regions = "*"`` tables included (their sources are
    scheduled as they are).
    """
    if not alerts.enabled or not alerts.health_channels:
        return 0
    now = now or datetime.now(UTC)
    configured = {s.name: s for s in sources}
    # One evaluator at a time (a cron dispatch beside the scheduler's): the lock is taken
    # in its own statement, so the query below, in READ COMMITTED, sees the state the
    # previous evaluator committed and never alerts the same transition twice.
    conn.execute(text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": HEALTH_LOCK_NAMESPACE})
    rows = conn.execute(
        text(
            """
            SELECT s.id, s.name, s.provider, s.discovered_by, s.retired_at, h.state,
                   (SELECT max(started_at) FROM sync_runs r
                     WHERE r.source_id = s.id AND r.status = 'succeeded') AS last_success,
                   (SELECT min(started_at) FROM sync_runs r WHERE r.source_id = s.id)
                       AS first_run,
                   (SELECT array_agg(status ORDER BY started_at DESC)
                      FROM (SELECT status, started_at FROM sync_runs r
                             WHERE r.source_id = s.id AND r.status <> 'running'
                             ORDER BY started_at DESC LIMIT :n) t) AS recent
              FROM sources s
              LEFT JOIN source_health h ON h.source_id = s.id
             ORDER BY s.id
            """
        ),
        {"n": alerts.health_failures},
    ).all()
    written = 0
    for row in rows:
        recent = list(row.recent or [])
        reason = None
        if len(recent) >= alerts.health_failures and all(s == "failed" for s in recent):
            reason = f"the last {alerts.health_failures} runs failed"
        # A discovered source is scheduled as the table that found it; a retired one is
        # not synced, so it cannot be late.
        source = configured.get(row.name) or configured.get(row.discovered_by or "")
        if reason is None and source is not None and source.schedule and not row.retired_at:
            interval = cron.typical_interval(source.schedule, source.timezone, now)
            since = row.last_success or row.first_run
            if since is not None and interval.total_seconds() > 0:
                limit = interval * alerts.health_stale_intervals
                if now - since > limit:
                    reason = f"no successful run for {now - since} (limit {limit})"
        state = "failing" if reason else "ok"
        previous = row.state or "ok"
        if state == previous:
            continue
        conn.execute(
            text(
                """
                INSERT INTO source_health (source_id, state, reason, changed_at)
                VALUES (:sid, :state, :reason, now())
                ON CONFLICT (source_id) DO UPDATE
                   SET state = EXCLUDED.state, reason = EXCLUDED.reason, changed_at = now()
                """
            ),
            {"sid": row.id, "state": state, "reason": reason},
        )
        summary = (
            f"source {row.name} is failing: {reason}"
            if reason
            else f"source {row.name} recovered: it syncs successfully again"
        )
        payload = {
            "state": state,
            "reason": reason,
            "summary": summary,
            "source": {"name": row.name, "provider": row.provider},
        }
        for channel in alerts.health_channels:
            conn.execute(
                text(
                    """
                    INSERT INTO alert_outbox (source_id, channel, kind, rule, severity, payload,
                                              idempotency_key)
                    VALUES (:sid, :channel, 'health', 'source-health', :severity,
                            CAST(:payload AS jsonb), :key)
                    """
                ),
                {
                    "sid": row.id,
                    "channel": channel,
                    "severity": "critical" if reason else "info",
                    "payload": json.dumps(payload),
                    # The moment of the transition makes each flip its own message.
                    "key": idempotency_key("health", row.id, state, now.isoformat(), channel),
                },
            )
            written += 1
    return written
