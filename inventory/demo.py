"""``inventory demo``: the whole pipeline on one machine, with nothing configured.

It starts the QingCloud emulator in-process on a free loopback port, uses the embedded
PostgreSQL (or ``$INVENTORY_DATABASE_URL`` when set), migrates, syncs, lets the emulated
provider deprecate, cease, delete, remove and add images, syncs again and prints what was
flagged.

The demo tells one continuing story: its catalogue is derived from a seed plus the number
of demo rounds already stored in the database, so a second ``make demo`` reuses the same
database and picks up where the first left off (its first sync finds nothing changed).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from sqlalchemy import Engine, text

from inventory.config import SecretRef, Settings, SourceConfig
from inventory.db import make_engine, resolve_target
from inventory.emulators.base import EmulatorServer
from inventory.emulators.qingcloud import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_SECRET_ACCESS_KEY,
    QingCloudApp,
    QingCloudCatalogue,
)
from inventory.migrate import upgrade
from inventory.reports import FlaggedImage, flagged_in_runs
from inventory.sync import Progress, RunResult, sync_source

SOURCE_NAME = "demo-qingcloud"
ACCESS_KEY_ENV = "INVENTORY_DEMO_QY_ACCESS_KEY_ID"
SECRET_ENV = "INVENTORY_DEMO_QY_SECRET_ACCESS_KEY"  # noqa: S105 - a variable name
#: What the emulated provider changes between the two syncs of each round.
ROUND_CHANGES = {"deprecate": 12, "cease": 6, "delete": 4, "remove": 8, "add": 10, "rename": 5}
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def run_demo(
    *,
    images: int = 500,
    seed: int = 7,
    progress: Progress | None = None,
    out: Callable[[str], None] = print,
) -> int:
    target = resolve_target(Settings(path=None))
    engine = make_engine(target.url)
    try:
        return _run(engine, target.describe(), images, seed, progress, out)
    finally:
        engine.dispose()


def _run(
    engine: Engine,
    where: str,
    images: int,
    seed: int,
    progress: Progress | None,
    out: Callable[[str], None],
) -> int:
    upgrade(engine)
    done = _rounds_done(engine)
    out(f"Database: {where}")
    out(
        "Demo round {n}{note}".format(
            n=done + 1,
            note=" (reusing the database of earlier rounds)" if done else " (a fresh database)",
        )
    )

    catalogue = QingCloudCatalogue.generate(images, seed)
    for past in range(1, done + 1):
        catalogue.mutate(
            seed=seed * 1000 + past, now=_EPOCH + timedelta(days=past), **ROUND_CHANGES
        )
    app = QingCloudApp(catalogue)
    os.environ.setdefault(ACCESS_KEY_ENV, DEFAULT_ACCESS_KEY_ID)
    os.environ.setdefault(SECRET_ENV, DEFAULT_SECRET_ACCESS_KEY)

    with EmulatorServer(app) as server:
        source = SourceConfig(
            name=SOURCE_NAME,
            provider="qingcloud",
            location="pek3a",
            endpoint=f"{server.url}/iaas/",
            page_size=50,
            credentials=MappingProxyType(
                {
                    "access_key_id": SecretRef("env", ACCESS_KEY_ENV, "demo"),
                    "secret_access_key": SecretRef("env", SECRET_ENV, "demo"),
                }
            ),
        )
        settings = Settings(path=None)
        listed = len(catalogue.listing((("owner", catalogue.owner),)))
        out(
            f"QingCloud emulator: {server.url}/iaas/ ({len(catalogue)} images, {listed} of "
            "them the account's own, which is what DescribeImages lists by default)"
        )
        out("")
        first = sync_source(engine, settings, source, trigger="demo", progress=progress)
        out(_run_line("sync 1", first))
        if not first.ok:
            return 1

        changes = catalogue.mutate(
            seed=seed * 1000 + done + 1, now=_EPOCH + timedelta(days=done + 1), **ROUND_CHANGES
        )
        out(
            "upstream: the provider "
            + ", ".join(f"{_VERBS[k]} {len(v)}" for k, v in changes.items() if v)
            + " images"
        )
        second = sync_source(engine, settings, source, trigger="demo", progress=progress)
        out(_run_line("sync 2", second))
        if not second.ok:
            return 1

    with engine.connect() as conn:
        flagged = flagged_in_runs(conn, [r for r in (first.run_id, second.run_id) if r])
    out("")
    out(_flagged_report(flagged))
    out("")
    out("Look around: `inventory status`; the tables are sources, sync_runs, images,")
    out("image_status_history and image_events. Run the demo again to continue the story.")
    return 0


_VERBS = {
    "deprecate": "deprecated",
    "cease": "ceased",
    "delete": "deleted",
    "remove": "removed",
    "add": "added",
    "rename": "renamed",
}


def _rounds_done(engine: Engine) -> int:
    with engine.connect() as conn:
        runs = conn.execute(
            text(
                """
                SELECT count(*) FROM sync_runs r JOIN sources s ON s.id = r.source_id
                 WHERE s.name = :name AND r.status = 'succeeded' AND r.trigger = 'demo'
                """
            ),
            {"name": SOURCE_NAME},
        ).scalar_one()
    return int(runs) // 2


def _run_line(label: str, result: RunResult) -> str:
    if not result.ok:
        return f"{label}: {result.status}: {result.error}"
    return (
        f"{label}: {result.images_seen} images in {result.pages} pages, {result.duration_s:.1f}s"
        f" — {result.inserted} new, {result.changed} changed, {result.unchanged} unchanged, "
        f"{result.disappeared} disappeared, {result.reappeared} reappeared"
    )


def _flagged_report(flagged: list[FlaggedImage]) -> str:
    if not flagged:
        return "Flagged images: none"
    groups: dict[str, list[FlaggedImage]] = {}
    for item in flagged:
        groups.setdefault(item.new_status or "gone", []).append(item)
    lines = [f"Flagged images ({len(flagged)}):"]
    order = ["deprecated", "suspended", "deleted", "ceased", "failed", "gone"]
    for status in sorted(groups, key=lambda s: order.index(s) if s in order else 99):
        items = groups[status]
        label = "disappeared from the listing" if status == "gone" else f"became {status}"
        lines.append(f"  {label}: {len(items)}")
        for item in items:
            was = f"was {item.old_status}"
            lines.append(f"    {item.provider_image_id}  {item.name or '(no name)':<40} {was}")
    return "\n".join(lines)
