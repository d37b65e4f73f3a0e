"""``inventory demo``: the whole pipeline on one machine, with nothing configured.

It starts every provider's emulator in-process on free loopback ports, uses the embedded
PostgreSQL (or ``$INVENTORY_DATABASE_URL`` when set), migrates, and for each provider
syncs a source, lets the emulated provider deprecate, cease, delete, remove and add images
(each in its own vocabulary: Tencent cannot cease, KEC only adds and removes), syncs again
(and once more to confirm what went missing is gone, as ``[sync] confirm_gone_runs`` asks)
and prints what was flagged. It leaves the embedded PostgreSQL running (as ``inventory db
start`` does) so that the SQL it points to works at once; ``inventory db stop`` stops it.

The demo tells one continuing story: each catalogue is derived from a seed plus the number
of demo rounds already stored for that source, so a second ``make demo`` reuses the same
database and picks up where the first left off (its first syncs find nothing changed).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from inventory.config import Settings, parse_settings
from inventory.db import make_engine, resolve_target
from inventory.dbserver import configured_url, start_service
from inventory.emulation import Running
from inventory.invocation import command
from inventory.migrate import upgrade
from inventory.providers import PROVIDERS
from inventory.reports import FlaggedImage, flagged_in_runs
from inventory.sync import Progress, RunResult, sync_source

#: What each emulated provider changes between the two syncs of each round.
ROUND_CHANGES = {"deprecate": 12, "cease": 6, "delete": 4, "remove": 8, "add": 10, "rename": 5}
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_VERBS = {
    "deprecate": "deprecated",
    "cease": "ceased",
    "delete": "deleted",
    "add": "added",
    "rename": "renamed",
}


def run_demo(
    *,
    images: int = 300,
    seed: int = 7,
    progress: Progress | None = None,
    out: Callable[[str], None] = print,
) -> int:
    settings = Settings(path=None)
    if configured_url(settings) is None:
        start_service()  # kept running: the SQL the ending points to works at once
    target = resolve_target(settings)
    engine = make_engine(target.url)
    try:
        upgrade(engine)
        out(f"Database: {target.describe()}")
        flagged: dict[str, list[FlaggedImage]] = {}
        for provider in map(PROVIDERS.emulated, PROVIDERS):
            out("")
            runs = _provider_round(
                engine, provider.provider, provider.label, images, seed, progress, out
            )
            if runs is None:
                return 1
            with engine.connect() as conn:
                flagged[provider.label] = flagged_in_runs(conn, runs)
        out("")
        out(_flagged_report(flagged))
        out("")
        out(_ending(target.pgdata is not None))
        return 0
    finally:
        engine.dispose()


def _provider_round(
    engine: Engine,
    provider: str,
    label: str,
    images: int,
    seed: int,
    progress: Progress | None,
    out: Callable[[str], None],
) -> list[int] | None:
    """Two syncs of one provider's demo source around one round of upstream changes."""
    name = f"demo-{provider}"
    done = _rounds_done(engine, name)
    running: Running = PROVIDERS.emulated(provider).start(images=images, seed=seed, name=name)
    try:
        for past in range(1, done + 1):
            running.catalogue.mutate(
                seed * 1000 + past, now=_EPOCH + timedelta(days=past), **ROUND_CHANGES
            )
        for key, value in running.env.items():
            os.environ.setdefault(key, value)
        settings = Settings(path=None)
        source = parse_settings({"sources": [running.source]}, None).sources[0]
        note = "reusing the database of earlier rounds" if done else "a fresh database"
        out(f"{label} — demo round {done + 1} ({note}); emulator {source.endpoint}")
        first = sync_source(engine, settings, source, trigger="demo", progress=progress)
        out(_run_line("  sync 1", first))
        if not first.ok:
            return None
        changes = running.catalogue.mutate(
            seed * 1000 + done + 1, now=_EPOCH + timedelta(days=done + 1), **ROUND_CHANGES
        )
        done_upstream = [f"{_VERBS[k]} {len(v)}" for k, v in changes.items() if v and k != "remove"]
        left = len(changes.get("remove", ()))
        out(
            "  upstream: the provider "
            + ", ".join(done_upstream)
            + " images"
            + (f"; {left} left its listing" if left else "")
        )
        second = sync_source(engine, settings, source, trigger="demo", progress=progress)
        out(_run_line("  sync 2", second))
        if not second.ok:
            return None
        runs = [first.run_id, second.run_id]
        if second.missing:  # gone only once missing from confirm_gone_runs listings in a row
            third = sync_source(engine, settings, source, trigger="demo-confirm", progress=progress)
            out(_run_line("  sync 3", third) + " (confirms what sync 2 found missing)")
            runs.append(third.run_id)
        return [r for r in runs if r is not None]
    finally:
        running.stop()


def _rounds_done(engine: Engine, source_name: str) -> int:
    with engine.connect() as conn:
        runs = conn.execute(
            text(
                """
                SELECT count(*) FROM sync_runs r JOIN sources s ON s.id = r.source_id
                 WHERE s.name = :name AND r.status = 'succeeded' AND r.trigger = 'demo'
                """
            ),
            {"name": source_name},
        ).scalar_one()
    return int(runs) // 2


def _run_line(label: str, result: RunResult) -> str:
    if not result.ok:
        return f"{label}: {result.status}: {result.error}"
    return (
        f"{label}: {result.images_seen} images in {result.pages} "
        f"{'page' if result.pages == 1 else 'pages'}, {result.duration_s:.1f}s"
        f" — {result.inserted} new, {result.changed} changed, {result.unchanged} unchanged, "
        f"{result.disappeared} gone, {result.reappeared} reappeared"
        + (f", {result.missing} missing (gone once confirmed)" if result.missing else "")
    )


_ORDER = ["deprecated", "suspended", "deleted", "ceased", "failed", "gone"]
_EXAMPLES = 3


def _flagged_report(flagged: dict[str, list[FlaggedImage]]) -> str:
    total = sum(len(items) for items in flagged.values())
    lines = [f"Flagged images ({total}):"]
    for label, items in flagged.items():
        groups: dict[str, list[FlaggedImage]] = {}
        for item in items:
            groups.setdefault(item.new_status or "gone", []).append(item)
        ordered = sorted(groups, key=lambda s: _ORDER.index(s) if s in _ORDER else 99)
        summary = ", ".join(
            f"{len(groups[s])} {'gone' if s == 'gone' else 'became ' + s}" for s in ordered
        )
        lines.append(f"  {label}: {summary or 'none'}")
        for status in ordered:
            for item in groups[status][:_EXAMPLES]:
                change = "gone" if status == "gone" else f"became {status}"
                lines.append(
                    f"    {item.provider_image_id:<38} {(item.name or '(no name)')[:36]:<36} "
                    f"{change} (was {item.old_status})"
                )
            if len(groups[status]) > _EXAMPLES:
                lines.append(f"    … and {len(groups[status]) - _EXAMPLES} more {status}")
    return "\n".join(lines)


def _ending(embedded: bool) -> str:
    """What to do next, as commands that work as printed here."""
    inv = command()
    steps = [
        (f"{inv} report flagged", f"every flagged image, not only the first {_EXAMPLES}"),
        (f"{inv} report changes", "each status change of the last 7 days"),
        (f"{inv} history IMAGE_ID", "one image's timeline"),
        (f"{inv} status", "each source's last run"),
        (f"{inv} web", "all of it in a browser, on http://127.0.0.1:8080/"),
        ("docs/sql-cookbook.md", "questions answered in SQL, for the command below"),
    ]
    width = max(len(step) for step, _ in steps)
    lines = [
        "Gone: an image no longer in the provider's complete listing (the word the reports",
        "and docs use). Next:",
        *(f"  {step.ljust(width)}  {why}" for step, why in steps),
        f'  {inv} db psql -c "SELECT source, effective_status, count(*) FROM report_images'
        ' GROUP BY 1, 2 ORDER BY 1, 2"',
    ]
    if embedded:
        lines += [
            f"The embedded PostgreSQL keeps running for that: `{inv} db url` prints its URL",
            f"for your own psql, Grafana or Metabase; `{inv} db stop` stops it.",
        ]
    lines.append("Run the demo again to continue the story.")
    return "\n".join(lines)
