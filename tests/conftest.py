"""Test fixtures: a real PostgreSQL, migrated to head, emptied between tests.

With ``INVENTORY_DATABASE_URL`` set, a throwaway database is created on that server for the
session (and dropped after); without it, an embedded PostgreSQL is started in a temporary
directory, exactly as the product does on a machine with no database. Either way the tests
then point ``INVENTORY_DATABASE_URL`` at the test database, so CLI subprocesses use it too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, make_url, text

from inventory.db import make_engine, sqlalchemy_url, start_embedded, stop_embedded
from inventory.migrate import upgrade

TABLES = (
    "alert_attempts, alert_outbox, source_health, "
    "image_events, image_status_history, images, sync_runs, sources, rate_windows, "
    "procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, "
    "procrastinate_workers"
)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Server:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: str, kind: str) -> None:
        self.admin_url = admin_url  # SQLAlchemy URL of a maintenance database
        self.kind = kind
        self.created: list[str] = []

    def create_database(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(_libpq(self.admin_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with psycopg.connect(_libpq(self.admin_url), autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    given = os.environ.get("INVENTORY_DATABASE_URL")
    if given:
        server = Server(sqlalchemy_url(given), "external")
        yield server
        server.drop_all()
        return
    # /tmp itself is world-traversable already, so the embedded server's permission
    # changes on parent folders (when run as root) touch nothing new.
    pgdata = Path(tempfile.mkdtemp(prefix="inventory-test-pg-")) / "pgdata"
    url = start_embedded(pgdata)
    server = Server(url, "embedded")
    yield server
    server.drop_all()
    stop_embedded(pgdata)
    shutil.rmtree(pgdata.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg_server: Server) -> Iterator[str]:
    url = pg_server.create_database("inventory_test")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    previous = os.environ.get("INVENTORY_DATABASE_URL")
    os.environ["INVENTORY_DATABASE_URL"] = url
    yield url
    if previous is None:
        os.environ.pop("INVENTORY_DATABASE_URL", None)
    else:
        os.environ["INVENTORY_DATABASE_URL"] = previous


@pytest.fixture(scope="session")
def _session_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(_session_engine: Engine) -> Iterator[Engine]:
    """The migrated test database, emptied after each test."""
    yield _session_engine
    with _session_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
