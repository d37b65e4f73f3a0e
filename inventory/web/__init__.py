"""The read-only web dashboard: ``inventory web`` and ``inventory scheduler --web-port``.

:func:`open_dashboard` checks everything a start needs (the address and credentials, the
database, the role, the schema) and binds the socket, so a mistake is one clear error
before anything is served; :meth:`Dashboard.start` then serves it with uvicorn from a
thread (beside the scheduler), and :meth:`Dashboard.serve` does so until SIGINT or SIGTERM
(``inventory web``). The pages
are in :mod:`inventory.web.app`; who may see them, in :mod:`inventory.web.security`.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from inventory.config import Settings
from inventory.errors import ConfigError, DatabaseUnavailable, InventoryError

log = logging.getLogger(__name__)


@dataclass
class Dashboard:
    app: Any
    sock: socket.socket
    engine: Engine
    host: str
    _server: Any = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _uvicorn(self, access_log: bool) -> Any:
        import uvicorn

        config = uvicorn.Config(
            self.app, log_config=None, access_log=access_log, lifespan="off", server_header=False
        )
        self._server = uvicorn.Server(config)
        return self._server

    def serve(self) -> None:
        """Serve until SIGINT or SIGTERM, then stop cleanly (exit 0, as the scheduler).

        uvicorn runs in a thread here too, so that the signals are this process's to
        handle: served in the main thread, uvicorn would re-raise them after shutting down.
        """
        stopping = threading.Event()

        def stop(signum: int, _frame: object) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            stopping.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)
        self.start(access_log=True)
        while not stopping.wait(1.0):
            if self._thread is not None and not self._thread.is_alive():
                self.stop()  # uvicorn gave up, and logged why
                raise InventoryError("web: the server stopped unexpectedly; its log says why")
        self.stop()

    def start(self, access_log: bool = False) -> Dashboard:
        """Serve from a daemon thread (signals stay with the caller)."""
        server = self._uvicorn(access_log)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self.sock]}, name="web", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
        self.engine.dispose()


def open_dashboard(
    settings: Settings, host: str, port: int, option: str = "--host", pool_size: int = 4
) -> Dashboard:
    """Check the address, credentials, database and schema, and bind ``host:port``
    (0: any free port). Raises ConfigError or DatabaseUnavailable with what to change."""
    from inventory.db import read_only_engine
    from inventory.migrate import ensure_current
    from inventory.web.app import create_app
    from inventory.web.security import check_address, credentials

    creds = credentials(settings.web)
    check_address(host, creds, option)
    engine, target = read_only_engine(settings, pool_size)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as err:
        engine.dispose()
        raise DatabaseUnavailable(_connect_error(err, settings, target.describe())) from None
    try:
        ensure_current(engine)
        sock = _bind(host, port)
    except BaseException:
        engine.dispose()
        raise
    log.info("dashboard: database %s%s", target.describe(), _role(settings))
    return Dashboard(create_app(engine, settings, creds), sock, engine, host)


def _role(settings: Settings) -> str:
    return f" as role {settings.web.role}" if settings.web.role else ""


def _connect_error(err: DBAPIError, settings: Settings, where: str) -> str:
    from inventory.secrets import scrub

    said = " ".join(line.strip() for line in scrub(str(err.orig or err)).splitlines())
    if settings.web.role and "permission denied to set role" in said:
        return (
            f"web: cannot take role {settings.web.role} on {where}: {said}; grant it to the "
            f"user the dashboard connects as (GRANT {settings.web.role} TO <user>), or "
            "create it with `inventory grant-readonly`"
        )
    return (
        f"web: cannot connect to {where}: {said}; check INVENTORY_WEB_DATABASE_URL, "
        "[web] database_url or the inventory's own database URL"
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"web: cannot listen on {host}:{port}: {err.strerror}; choose another --port "
            "(or stop what holds it)"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
