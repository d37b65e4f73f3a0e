"""The emulator's HTTP side: a threaded server on loopback and its JSON control API.

:class:`EmulatorServer` serves one app (:mod:`inventory.emulation.app`) over real HTTP on
127.0.0.1, in a background thread or the foreground, and answers the control API under
``/_emulator/`` (state, mutate, faults; docs/emulators.md lists it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from inventory.emulation.faults import FaultRule
from inventory.emulation.messages import Request, Response

if TYPE_CHECKING:  # the app module imports this one
    from inventory.emulation.app import EmulatorApp

log = logging.getLogger(__name__)

# SO_LINGER on with a timeout of 0 turns close() into a TCP RST: the client sees a reset
# connection, as from a crashed backend, not a polite end of stream.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The benchmarks open several connections at once; the default backlog of 5 would make
    # the kernel drop SYNs and the client stall for a retransmit second.
    request_queue_size = 128
    emulator: EmulatorServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer (a test's reset, a cancelled sync) are routine here;
        # a traceback on stderr for each would drown the demo's output.
        if self.emulator.verbose:
            super().handle_error(request, client_address)
        else:
            log.debug("emulator connection from %s failed", client_address, exc_info=True)


class EmulatorServer:
    """Serves one app on loopback over real HTTP, in a background thread or the foreground."""

    def __init__(
        self, app: EmulatorApp, port: int = 0, *, host: str = "127.0.0.1", verbose: bool = False
    ) -> None:
        self.app, self.verbose, self._host = app, verbose, host
        self._requests = 0
        self._request_event = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.emulator = self
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def request_count(self) -> int:
        """The provider requests served (not the control API's), those that got a fault too."""
        with self._request_event:
            return self._requests

    def start(self) -> EmulatorServer:
        """Serve in a daemon thread; returns self, so ``server = EmulatorServer(app).start()``."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._serving = True
        # A short poll interval makes stop() quick (shutdown waits for one poll).
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name=f"emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` or an exception (Ctrl-C)."""
        self._serving = True
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._serving = False
            self._close()

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and release the port. Idempotent."""
        if self._serving:
            # shutdown() waits for the serving loop to notice; with none running it would hang.
            self._httpd.shutdown()
            self._serving = False
        self._close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _close(self) -> None:
        # Both steps are harmless to repeat, so stop() after serve_forever() is fine.
        self._httpd.server_close()
        # Handler threads of idle keep-alive connections would otherwise go on answering a
        # pooled client after stop(); shutting their sockets down ends them.
        with self._connections_lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_requests(self, count: int, timeout_s: float = 10.0) -> bool:
        """Block until at least ``count`` provider requests arrived (for tests)."""
        with self._request_event:
            return self._request_event.wait_for(lambda: self._requests >= count, timeout_s)

    def _control(self, request: Request) -> Response:
        method, path = request.method, request.path.rstrip("/")
        if (method, path) == ("GET", "/_emulator/state"):
            state = {**self.app.state(), "requests": self.request_count}
            state["faults"] = [rule.to_dict() for rule in self.app.faults.rules()]
            return Response.json(200, state)
        try:
            if (method, path) == ("POST", "/_emulator/mutate"):
                counts = json.loads(request.body or b"{}")
                if not isinstance(counts, dict):
                    raise ValueError("the mutate body is a JSON object of counts")
                return Response.json(200, self.app.mutate(**counts))
            if (method, path) == ("PUT", "/_emulator/locations"):
                data = json.loads(request.body or b"{}")
                listed = data.get("locations") if isinstance(data, dict) else None
                if not isinstance(listed, list) or not all(
                    isinstance(item, str) and item for item in listed
                ):
                    raise ValueError('the locations body is {"locations": ["zone or region", ...]}')
                self.app.locations = frozenset(listed)
                return Response.json(200, {"locations": sorted(self.app.locations)})
            if (method, path) == ("POST", "/_emulator/faults"):
                data = json.loads(request.body or b"[]")
                if not isinstance(data, list):
                    raise ValueError("the faults body is a JSON list of rules")
                rules = [FaultRule.from_dict(rule, self.app.fault_kinds) for rule in data]
                self.app.faults.replace(rules)
                return Response.json(200, {"faults": [rule.to_dict() for rule in rules]})
        except (ValueError, TypeError) as err:
            return Response.json(400, {"error": str(err)})
        if (method, path) == ("DELETE", "/_emulator/faults"):
            self.app.faults.clear()
            return Response.json(200, {"faults": []})
        return Response.json(404, {"error": f"no control endpoint {method} {request.path}"})


class _Handler(BaseHTTPRequestHandler):
    """Answers the requests of one connection for ``self.server.emulator``."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "inventory-emulator"
    sys_version = ""
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms a response on Linux). Real APIs don't do that.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        with self.server.emulator._connections_lock:
            self.server.emulator._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.emulator._connections_lock:
            self.server.emulator._connections.discard(self.connection)
        super().finish()

    def _serve(self) -> None:
        response = self._answer()
        if response.reset:
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not response.cut:
            self.wfile.write(response.body)
            return
        # A backend that died mid-answer: the client was promised more.
        self.wfile.write(response.body[: len(response.body) // 2])
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _answer(self) -> Response:
        emulator = self.server.emulator
        parts = urlsplit(self.path)
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return Response.text(411, "Length Required")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            return Response.text(400, "Bad Content-Length")
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, parts.path, parts.query, headers, body)
        if parts.path.startswith("/_emulator/"):
            return emulator._control(request)
        with emulator._request_event:
            emulator._requests += 1
            emulator._request_event.notify_all()
        try:
            return emulator.app.handle(request)
        except Exception:  # an emulator bug must show, not hang the client
            log.exception("emulator failed on %s %s", self.command, parts.path)
            return Response.text(500, "emulator error")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.emulator.verbose:
            log.info("%s %s", self.address_string(), format % args)
