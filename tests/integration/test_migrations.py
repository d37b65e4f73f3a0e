"""Migrations upgrade from empty, match the models exactly, and downgrade to empty."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from inventory.db import make_engine
from inventory.errors import InventoryError
from inventory.migrate import current_revision, downgrade, ensure_current, head_revision, upgrade
from inventory.models import Base
from inventory.reports import REPORT_VIEWS


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
