"""Migrations upgrade from empty, match the models exactly, and downgrade to empty."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from inventory.config import parse_settings
from inventory.db import make_engine
from inventory.errors import InventoryError
from inventory.migrate import (
    HEAD,
    current_revision,
    downgrade,
    ensure_current,
    head_revision,
    ours,
    upgrade,
)
from inventory.models import Base
from inventory.providers import PROVIDERS
from inventory.reports import REPORT_VIEWS
from inventory.sync import sync_source

from .helpers import fetch_all


@pytest.fixture
def empty_engine(pg_server):  # type: ignore[no-untyped-def]
    engine = make_engine(pg_server.create_database("inventory_mig"))
    yield engine
    engine.dispose()


def test_upgrade_matches_models_and_downgrades_to_empty(empty_engine: Engine) -> None:
    with pytest.raises(InventoryError, match="run `inventory migrate`"):
        ensure_current(empty_engine)
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision() == HEAD  # HEAD kept up to date
    ensure_current(empty_engine)

    with empty_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": ours})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    assert {"procrastinate_jobs", "procrastinate_workers"} <= set(
        inspect(empty_engine).get_table_names()
    )

    tables = set(inspect(empty_engine).get_table_names())
    assert {"sources", "sync_runs", "images", "image_status_history", "image_events"} <= tables
    assert set(REPORT_VIEWS) <= set(inspect(empty_engine).get_view_names())

    downgrade(empty_engine, "base")
    left = set(inspect(empty_engine).get_table_names()) - {"alembic_version"}
    assert left == set()
    with empty_engine.connect() as conn:
        functions = conn.execute(
            text(
                "SELECT count(*) FROM pg_proc"
                " WHERE proname LIKE 'inventory_%' OR proname LIKE 'procrastinate%'"
            )
        ).scalar_one()
        types = conn.execute(
            text("SELECT count(*) FROM pg_type WHERE typname LIKE '%procrastinate%'")
        ).scalar_one()
    assert (functions, types) == (0, 0)
    assert inspect(empty_engine).get_view_names() == []

    upgrade(empty_engine)  # and up again from empty
    assert current_revision(empty_engine) == head_revision()


def test_alembic_check_cli_reports_no_drift(empty_engine: Engine) -> None:
    """`alembic check` as an operator would run it, against the repository's alembic.ini."""
    import subprocess
    import sys
    from pathlib import Path

    upgrade(empty_engine)
    root = Path(__file__).resolve().parents[2]
    url = empty_engine.url.render_as_string(hide_password=False)
    env = {**__import__("os").environ, "INVENTORY_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "check"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "No new upgrade operations detected" in done.stdout + done.stderr


def test_events_are_append_only(engine: Engine, database_url: str) -> None:
    with engine.begin() as conn:
        sid = conn.execute(
            text(
                "INSERT INTO sources (name, provider, location) VALUES ('s', 'qingcloud', 'z') "
                "RETURNING id"
            )
        ).scalar_one()
        rid = conn.execute(
            text(
                "INSERT INTO sync_runs (source_id, trigger, started_at, status) "
                "VALUES (:s, 'test', now(), 'running') RETURNING id"
            ),
            {"s": sid},
        ).scalar_one()
        iid = conn.execute(
            text(
                "INSERT INTO images (source_id, provider_image_id, status, raw, fingerprint, "
                "first_seen_at, last_changed_at) VALUES (:s, 'img-1', 'available', '{}', 'f', "
                "now(), now()) RETURNING id"
            ),
            {"s": sid},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO image_events (image_id, source_id, run_id, occurred_at, kind) "
                "VALUES (:i, :s, :r, now(), 'appeared')"
            ),
            {"i": iid, "s": sid, "r": rid},
        )
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("UPDATE image_events SET kind = 'changed'")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM image_events")
        conn.rollback()
        # Deleting the image cascades to its events: allowed.
        conn.execute("DELETE FROM images")
        assert conn.execute("SELECT count(*) FROM image_events").fetchone() == (0,)


def test_one_open_history_interval_enforced(engine: Engine) -> None:
    with engine.begin() as conn:
        sid = conn.execute(
            text(
                "INSERT INTO sources (name, provider, location) VALUES ('s', 'qingcloud', 'z') "
                "RETURNING id"
            )
        ).scalar_one()
        iid = conn.execute(
            text(
                "INSERT INTO images (source_id, provider_image_id, status, raw, fingerprint, "
                "first_seen_at, last_changed_at) VALUES (:s, 'img-1', 'available', '{}', 'f', "
                "now(), now()) RETURNING id"
            ),
            {"s": sid},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO image_status_history (image_id, status, valid_from) "
                "VALUES (:i, 'available', now())"
            ),
            {"i": iid},
        )
    with pytest.raises(Exception, match="uq_image_status_history_open"), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO image_status_history (image_id, status, valid_from) "
                "VALUES (:i, 'deprecated', now())"
            ),
            {"i": iid},
        )


def _images(engine: Engine) -> dict[tuple[str, str], tuple[object, ...]]:
    """Every image's normalized size, word size, architecture and fingerprint."""
    rows = fetch_all(
        engine,
        """SELECT s.provider, i.provider_image_id, i.size_gb, i.min_disk_gb, i.word_size,
                  i.architecture, i.fingerprint
             FROM images i JOIN sources s ON s.id = i.source_id""",
    )
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def test_0006_backfills_what_the_normalizers_now_read(
    empty_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database synced before 0006 (its meanings restored by the downgrade) gets, from
    the upgrade's backfill, exactly what a sync with today's normalizers stores: every size
    column, word size, architecture and fingerprint; the next sync then changes nothing."""
    upgrade(empty_engine)
    emulators = [PROVIDERS.emulated(p).start(images=60, seed=6, name=f"mig-{p}") for p in PROVIDERS]
    try:
        for running in emulators:
            for name, value in running.env.items():
                monkeypatch.setenv(name, value)
            if running.provider == "qingcloud":  # one says its architecture (Go SDK field)
                arm = running.catalogue.ids()[0]
                running.catalogue.edit(arm, architecture="arm64", owner=running.catalogue.owner)
        settings = parse_settings({"sources": [r.source for r in emulators]}, None)
        for source in settings.sources:
            assert sync_source(empty_engine, settings, source).status == "succeeded"
        synced = _images(empty_engine)

        downgrade(empty_engine, "0005")
        old = _images_0005(empty_engine)  # size_gb, architecture as they were stored then
        for key, (size, _, word_size, architecture, _) in synced.items():
            provider = key[0]
            if provider in ("ksyun", "huawei-iec", "huawei-ims-v1"):
                assert old[key][0] == synced[key][1]  # size_gb held the minimum disk
            if provider == "qingcloud":
                assert old[key][1] == {64: "x86_64", 32: "i386"}[word_size]
                assert architecture == ("aarch64" if key[1] == arm else None)
            if provider == "tencent":
                assert old[key][:2] == (size, architecture)

        upgrade(empty_engine)
        assert _images(empty_engine) == synced
        by_provider = {p: [v for k, v in synced.items() if k[0] == p] for p in PROVIDERS}
        assert all(v[0] is None and v[1] is not None for v in by_provider["ksyun"])
        assert all(v[2] in (32, 64) for v in by_provider["qingcloud"])
        assert any(v[0] is not None and v[0] % 1 for v in by_provider["huawei-ims-v1"])
        for source in settings.sources:
            result = sync_source(empty_engine, settings, source)
            assert (result.status, result.inserted, result.changed) == ("succeeded", 0, 0)
    finally:
        for running in emulators:
            running.stop()


def _images_0005(engine: Engine) -> dict[tuple[str, str], tuple[object, ...]]:
    rows = fetch_all(
        engine,
        """SELECT s.provider, i.provider_image_id, i.size_gb, i.architecture, i.fingerprint
             FROM images i JOIN sources s ON s.id = i.source_id""",
    )
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


#: The flagged streak as the view of 0005 worked it out from the history, per image.
_STREAK_FROM_HISTORY = """
SELECT i.provider_image_id, fs.valid_from, fs.opened_by_run_id
  FROM images i
  LEFT JOIN LATERAL (
        SELECT f.valid_from, f.opened_by_run_id FROM image_status_history f
         WHERE f.image_id = i.id
           AND f.valid_from > coalesce(
                 (SELECT max(n.valid_from) FROM image_status_history n
                   WHERE n.image_id = i.id AND n.status NOT IN
                         ('deprecated', 'suspended', 'deleted', 'ceased', 'failed', 'gone')),
                 '-infinity')
         ORDER BY f.valid_from, f.id LIMIT 1) fs ON true
"""


def _streaks(engine: Engine) -> tuple[dict[str, tuple[object, ...]], dict[str, tuple[object, ...]]]:
    """(stored, derived from the history): image -> (flagged_since, flagged_run_id)."""
    stored = fetch_all(
        engine, "SELECT provider_image_id, flagged_since, flagged_run_id FROM images"
    )
    derived = fetch_all(engine, _STREAK_FROM_HISTORY)
    return {r[0]: tuple(r[1:]) for r in stored}, {r[0]: tuple(r[1:]) for r in derived}


def test_0007_flagged_streak_kept_by_the_merge_and_backfilled(
    empty_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through deprecations, ceasings, removals, reappearances (as flagged and as available)
    and a return to available, every image's stored flagged_since and flagged_run_id equal
    what the history says; a database downgraded to 0006 gets the same back from 0007's
    backfill."""
    upgrade(empty_engine)
    running = PROVIDERS.emulated("qingcloud").start(
        images=80, seed=7, name="mig-streak", system_share=0.0
    )
    try:
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        settings = parse_settings(
            {"sources": [running.source], "sync": {"confirm_gone_runs": 1}}, None
        )
        source = settings.sources[0]
        catalogue = running.catalogue

        def synced() -> dict[str, tuple[object, ...]]:
            assert sync_source(empty_engine, settings, source).status == "succeeded"
            stored, derived = _streaks(empty_engine)
            assert stored == derived
            return stored

        first = synced()
        assert any(v[0] is not None for v in first.values())  # some start flagged
        changed = catalogue.mutate(11, deprecate=8, cease=3, delete=2, remove=6)
        second = synced()
        for iid in changed["deprecate"]:
            assert second[iid][0] is not None and second[iid][1] is not None
        deprecated = changed["deprecate"]
        catalogue.edit(deprecated[0], status="available")  # the streak ends
        catalogue.edit(deprecated[1], status="ceased")  # goes on, since deprecated
        catalogue.restore(changed["remove"][0], status="deprecated")  # gone -> deprecated
        catalogue.restore(changed["remove"][1], status="available")  # gone -> available
        third = synced()
        assert third[deprecated[0]] == (None, None)
        assert third[deprecated[1]] == second[deprecated[1]]
        assert third[changed["remove"][0]] == second[changed["remove"][0]]
        assert third[changed["remove"][1]] == (None, None)
        catalogue.mutate(12, deprecate=5, remove=3)
        final = synced()

        downgrade(empty_engine, "0006")
        upgrade(empty_engine)
        assert _streaks(empty_engine)[0] == final
    finally:
        running.stop()


def test_0008_deleting_runs_and_sources_does_what_the_dropped_keys_did(
    empty_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run columns have no foreign key (no trigger per written row); deleting runs
    still nulls them and deletes the runs' events, set-based, and deleting a source still
    takes everything of it and nothing of another."""
    upgrade(empty_engine)
    emulators = [
        PROVIDERS.emulated("qingcloud").start(images=60, seed=s, name=f"del-{s}", system_share=0.0)
        for s in (1, 2)
    ]
    try:
        for running in emulators:
            for name, value in running.env.items():
                monkeypatch.setenv(name, value)
        settings = parse_settings({"sources": [r.source for r in emulators]}, None)
        keep, drop = settings.sources
        for source in settings.sources:
            assert sync_source(empty_engine, settings, source).status == "succeeded"
        emulators[1].catalogue.mutate(3, deprecate=10)
        churn = sync_source(empty_engine, settings, drop)
        assert churn.changed == 10

        def count(sql: str, **params: object) -> int:
            return int(fetch_all(empty_engine, sql, **params)[0][0])

        with empty_engine.begin() as conn:
            conn.execute(text("DELETE FROM sync_runs WHERE id = :r"), {"r": churn.run_id})
        assert count("SELECT count(*) FROM image_events WHERE run_id = :r", r=churn.run_id) == 0
        for table, column in (
            ("images", "last_changed_run_id"),
            ("images", "flagged_run_id"),
            ("image_status_history", "opened_by_run_id"),
            ("image_status_history", "closed_by_run_id"),
        ):
            sql = f"SELECT count(*) FROM {table} WHERE {column} = :r"
            assert count(sql, r=churn.run_id) == 0, column
        assert count("SELECT count(*) FROM images WHERE flagged_since IS NOT NULL") >= 10

        kept = count("SELECT count(*) FROM image_events")
        with empty_engine.begin() as conn:
            conn.execute(text("DELETE FROM sources WHERE name = :n"), {"n": drop.name})
        for table in ("images", "sync_runs", "image_events"):
            assert count(f"SELECT count(*) FROM {table} WHERE source_id <> 1") == 0, table
        assert count("SELECT count(*) FROM image_status_history") == 60
        assert 0 < count("SELECT count(*) FROM image_events") < kept
        assert count("SELECT count(*) FROM images WHERE source_id = 1") == 60
        assert sync_source(empty_engine, settings, keep).unchanged == 60
    finally:
        for running in emulators:
            running.stop()


def test_0009_ownership_kept_by_triggers_on_delete_update_and_truncate(
    empty_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """images.source_id and the history's and events' image_id have no foreign key (no
    trigger per written row); deleting an image still takes its history and events, an id
    cannot change, a TRUNCATE that would leave rows naming nothing is refused, and the
    downgrade puts the keys back."""
    upgrade(empty_engine)
    running = PROVIDERS.emulated("qingcloud").start(images=30, seed=4, name="own", system_share=0.0)
    try:
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        settings = parse_settings({"sources": [running.source]}, None)
        assert sync_source(empty_engine, settings, settings.sources[0]).inserted == 30
        running.catalogue.mutate(2, deprecate=5)
        assert sync_source(empty_engine, settings, settings.sources[0]).changed == 5
    finally:
        running.stop()

    def count(sql: str) -> int:
        return int(fetch_all(empty_engine, sql)[0][0])

    victim = count("SELECT min(image_id) FROM image_events WHERE kind = 'status_changed'")
    history, events = (
        count("SELECT count(*) FROM image_status_history"),
        count("SELECT count(*) FROM image_events"),
    )
    with empty_engine.begin() as conn:
        conn.execute(text("DELETE FROM images WHERE id = :i"), {"i": victim})
    assert count(f"SELECT count(*) FROM image_status_history WHERE image_id = {victim}") == 0
    assert count(f"SELECT count(*) FROM image_events WHERE image_id = {victim}") == 0
    assert count("SELECT count(*) FROM image_status_history") == history - 2  # two intervals
    assert count("SELECT count(*) FROM image_events") == events - 2  # appeared, changed

    libpq = empty_engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as conn:
        for statement, refused in (
            ("UPDATE sources SET id = id + 100", "sources.id cannot change"),
            ("UPDATE images SET id = id + 1000", "images.id cannot change"),
            ("TRUNCATE sources CASCADE", "cannot truncate sources alone: images keeps rows"),
            ("TRUNCATE images", "cannot truncate images alone: image_status_history keeps"),
        ):
            with pytest.raises(psycopg.Error, match=refused):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute("SELECT count(*) FROM images").fetchone() == (29,)

    downgrade(empty_engine, "0008")  # the keys come back, checked against the rows
    with empty_engine.connect() as conn:
        keys = {
            fk["name"]
            for t in ("images", "image_events")
            for fk in inspect(conn).get_foreign_keys(t)
        }
    assert {"fk_images_source_id_sources", "fk_image_events_image_id_images"} <= keys
    upgrade(empty_engine)
    with psycopg.connect(libpq) as conn:
        conn.execute("TRUNCATE sources, images, image_status_history, image_events CASCADE")
        assert conn.execute("SELECT count(*) FROM image_events").fetchone() == (0,)
