"""The JSON document of one alert message, which every channel renders from.

Built at delivery time from the outbox row and the events it names. Events are
append-only and the image fields read here (name, ids, visibility, owner) describe the
image, so a redelivery renders the same events under the same idempotency key.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, text

#: How many events a digest lists in human-readable channels (Slack, email).
TEXT_LINES = 50


def build(conn: Connection, row: Row[Any]) -> dict[str, Any]:
    """The payload of outbox row ``row`` (a row of ``alert_outbox``)."""
    source = conn.execute(
        text("SELECT name, provider, location FROM sources WHERE id = :id"),
        {"id": row.source_id},
    ).one()
    base: dict[str, Any] = {
        "type": "inventory.alert",
        "version": 1,
        "alert_id": row.id,
        "idempotency_key": row.idempotency_key,
        "kind": row.kind,
        "severity": row.severity,
        "rule": row.rule,
        "source": {"name": source.name, "provider": source.provider, "location": source.location},
        "run_id": row.run_id,
        "created_at": row.created_at.isoformat(),
    }
    if row.kind == "health":
        extra = dict(row.payload or {})
        base["summary"] = extra.get("summary", "source health changed")
        base["health"] = {"state": extra.get("state"), "reason": extra.get("reason")}
        base["event_count"] = 0
        base["events"] = []
        return base
    events = [
        {
            "event_id": e.id,
            "kind": e.kind,
            "occurred_at": e.occurred_at.isoformat(),
            "provider_image_id": e.provider_image_id,
            "name": e.name,
            "old_status": e.old_status,
            "new_status": e.new_status,
            "visibility": e.visibility,
            "owner": e.owner,
        }
        for e in conn.execute(
            text(
                """
                SELECT e.id, e.kind, e.occurred_at, e.old_status, e.new_status,
                       i.provider_image_id, i.name, i.visibility, i.owner
                  FROM image_events e JOIN images i ON i.id = e.image_id
                 WHERE e.id = ANY (:ids) ORDER BY e.id
                """
            ),
            {"ids": list(row.event_ids)},
        )
    ]
    base["event_count"] = len(events)
    base["events"] = events
    base["summary"] = summary(source.name, events)
    return base


def describe(event: dict[str, Any]) -> str:
    label = event["name"] or event["provider_image_id"]
    ident = event["provider_image_id"]
    if event["kind"] == "disappeared":
        return f"{label} ({ident}) disappeared from the listing (was {event['old_status']})"
    if event["kind"] in ("status_changed", "reappeared"):
        return f"{label} ({ident}): {event['old_status']} -> {event['new_status']}"
    return f"{label} ({ident}): {event['kind']}"


def summary(source: str, events: list[dict[str, Any]]) -> str:
    if len(events) == 1:
        return f"{source}: {describe(events[0])}"
    return f"{source}: {len(events)} images changed"


def text_body(payload: dict[str, Any]) -> str:
    """Plain text for people: the summary and up to TEXT_LINES events."""
    lines = [f"[{payload['severity']}] {payload['summary']}"]
    events = payload["events"]
    lines += [f"- {describe(e)}" for e in events[:TEXT_LINES]]
    if len(events) > TEXT_LINES:
        lines.append(f"... and {len(events) - TEXT_LINES} more (run {payload['run_id']})")
    return "\n".join(lines)
