"""Cron expressions for source schedules: 5 fields, or 6 with seconds first.

``"0 * * * *"`` is the usual minute-hour-day-month-weekday form. A sixth, leading field
adds seconds (``"*/10 * * * * *"`` = every 10 seconds), which tests and demos use to
schedule quickly. Every expression is evaluated in a timezone (default UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger


def timezone(name: str) -> ZoneInfo:
    """The zone called ``name``; ValueError naming it when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r} (use an IANA name such as 'UTC')") from None


def trigger(expression: str, tz: str = "UTC") -> CronTrigger:
    """A CronTrigger for a 5- or 6-field expression; ValueError saying what is wrong."""
    fields = expression.split()
    zone = timezone(tz)
    if len(fields) == 5:
        return CronTrigger.from_crontab(expression, timezone=zone)
    if len(fields) == 6:
        second, minute, hour, day, month, day_of_week = fields
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            timezone=zone,
        )
    raise ValueError(
        f"{expression!r} has {len(fields)} fields; write 5 (min hour day month weekday) "
        "or 6 (with seconds first)"
    )


def check(expression: str, tz: str = "UTC") -> None:
    """ValueError unless ``expression`` is valid and fires at least once from now on."""
    if trigger(expression, tz).get_next_fire_time(None, datetime.now(UTC)) is None:
        raise ValueError(
            f"{expression!r} never fires: no date matches its day and month fields (such as "
            "February 30); check them"
        )


def typical_interval(expression: str, tz: str = "UTC", now: datetime | None = None) -> timedelta:
    """The gap between the next two firings after ``now``: the schedule's interval."""
    cron = trigger(expression, tz)
    now = now or datetime.now(UTC)
    first = cron.get_next_fire_time(None, now)
    if first is None:
        return timedelta(0)
    second = cron.get_next_fire_time(first, first + timedelta(microseconds=1))
    return (second - first) if second is not None else timedelta(0)
