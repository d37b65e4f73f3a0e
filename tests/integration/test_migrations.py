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
from inventory.migrate import current_revision, downgrade, ensure_current, head_revision, upgrade
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
    assert current_revision(empty_engine) == head_revision()
    ensure_current(empty_engine)

    with empty_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []

    tables = set(inspect(empty_engine).get_table_names())
    assert {"sources", "sync_runs", "images", "image_status_history", "image_events"} <= tables
    assert set(REPORT_VIEWS) <= set(inspect(empty_engine).get_view_names())

    downgrade(empty_engine, "base")
    left = set(inspect(empty_engine).get_table_names()) - {"alembic_version"}
    assert left == set()
    with empty_engine.connect() as conn:
        functions = conn.execute(
            text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'inventory_%'")
        ).scalar_one()
    assert functions == 0
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
