"""Provider-independent emulator machinery: an HTTP server on loopback, faults, names.

An emulator is an *app* (one per provider) served by :class:`EmulatorServer`, a threaded
``http.server`` on 127.0.0.1. The app turns a :class:`Request` into a :class:`Response`
exactly as the real API would, including its error envelopes. Faults are injected per page
through :class:`Faults`, so tests, the demo and the benchmarks can make page *k* fail,
throttle, stall or drop the connection.

Every emulator also answers a small JSON control API, for standalone runs
(``inventory emulate PROVIDER``):

- ``POST /_emulator/mutate``   body ``{"seed": 1, "deprecate": 5, "remove": 3, ...}``
- ``POST /_emulator/faults``   body ``[{"kind": "http_503", "page": 2, "times": 1}, ...]``
  (replaces the rules); ``DELETE /_emulator/faults`` clears them
- ``GET  /_emulator/state``    image and request counts
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

FAULT_KINDS = frozenset(
    {
        "http_500",
        "http_503",
        "throttle",
        "malformed",
        "latency",
        "reset",
        "internal",
        "server_busy",
        "shrink",
    }
)


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Make page ``page`` (1-based; None = every page) misbehave ``times`` times (None = always).

    Kinds every emulator understands: ``http_500``, ``http_503`` (a bare gateway error),
    ``throttle`` (the provider's own throttling answer), ``malformed`` (a truncated body),
    ``latency`` (answer normally after ``latency_s``), ``reset`` (drop the connection), and
    ``shrink`` (answer normally, then remove the first listed image, so the offsets of later
    pages shift as they do when a catalogue changes during a listing). Providers may add
    their own (QingCloud: ``internal`` = ret_code 5000, ``server_busy`` = 5100).
    """

    kind: str
    page: int | None = None
    times: int | None = None
    latency_s: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {kind!r} (known: {', '.join(sorted(FAULT_KINDS))})"
            )
        return cls(
            kind=kind,
            page=data.get("page"),
            times=data.get("times"),
            latency_s=float(data.get("latency_s", 0.0)),
        )


class Faults:
    """A thread-safe list of fault rules with use counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[list[Any]] = []  # [rule, remaining uses or None]

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append([rule, rule.times])

    def replace(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = [[r, r.times] for r in rules]

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [entry[0] for entry in self._rules]

    def take(self, page: int) -> list[FaultRule]:
        """The live rules for ``page``, each use counted: at most one latency rule and one
        other rule, in the order they were added."""
        taken: list[FaultRule] = []
        kinds_seen: set[bool] = set()
        with self._lock:
            for entry in self._rules:
                rule, remaining = entry
                if rule.page is not None and rule.page != page:
                    continue
                if remaining is not None and remaining <= 0:
                    continue
                is_latency = rule.kind == "latency"
                if is_latency in kinds_seen:
                    continue
                kinds_seen.add(is_latency)
                if remaining is not None:
                    entry[1] = remaining - 1
                taken.append(rule)
        return taken


@dataclass(slots=True)
class Request:
    method: str
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # drop the connection instead of answering

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, body, headers=dict(headers))


class App(Protocol):
    """What a provider emulator implements."""

    def handle(self, request: Request) -> Response: ...

    def mutate(self, **counts: int) -> dict[str, list[str]]: ...

    def state(self) -> dict[str, Any]: ...


class EmulatorServer:
    """Serves one app on 127.0.0.1 over real HTTP, in a background thread or the foreground."""

    def __init__(self, app: App, port: int = 0, *, host: str = "127.0.0.1", verbose: bool = False):
        self.app = app
        self.verbose = verbose
        self._count_lock = threading.Lock()
        self.request_count = 0
        self._request_event = threading.Condition(self._count_lock)
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EmulatorServer:
        # A short poll interval makes stop() quick (shutdown waits for one poll).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_requests(self, count: int, timeout_s: float = 10.0) -> bool:
        """Block until at least ``count`` provider requests arrived (for tests)."""
        with self._request_event:
            return self._request_event.wait_for(lambda: self.request_count >= count, timeout_s)

    def _counted(self) -> None:
        with self._request_event:
            self.request_count += 1
            self._request_event.notify_all()

    def _control(self, request: Request) -> Response:
        faults = getattr(self.app, "faults", None)
        if request.path == "/_emulator/state" and request.method == "GET":
            return Response.json(200, {**self.app.state(), "requests": self.request_count})
        if request.path == "/_emulator/mutate" and request.method == "POST":
            try:
                counts = json.loads(request.body or b"{}")
                return Response.json(200, self.app.mutate(**counts))
            except (ValueError, TypeError) as err:
                return Response.json(400, {"error": str(err)})
        if request.path == "/_emulator/faults" and isinstance(faults, Faults):
            if request.method == "DELETE":
                faults.clear()
                return Response.json(200, {"faults": []})
            if request.method == "POST":
                try:
                    rules = [FaultRule.from_dict(r) for r in json.loads(request.body or b"[]")]
                except (ValueError, TypeError, AttributeError) as err:
                    return Response.json(400, {"error": str(err)})
                faults.replace(rules)
                return Response.json(200, {"faults": [asdict(r) for r in rules]})
        return Response.json(404, {"error": f"no control endpoint {request.method} {request.path}"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "inventory-emulator"
            # Headers and body leave in two writes; with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms a response on Linux). Real APIs don't do that.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parts.path,
                    raw_query=parts.query,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                if parts.path.startswith("/_emulator/"):
                    response = server._control(request)
                else:
                    server._counted()
                    try:
                        response = server.app.handle(request)
                    except Exception:  # an emulator bug must show, not hang the client
                        log.exception("emulator failed on %s %s", self.command, parts.path)
                        response = Response(500, b"emulator error", "text/plain")
                if response.reset:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                if server.verbose:
                    log.info("%s %s", self.address_string(), format % args)

        return Handler


def apply_faults(
    faults: Faults, page: int, answers: dict[str, Callable[[], Response]]
) -> tuple[Response | None, bool]:
    """Apply the live faults of ``page``: sleep for latency, and return a faulty answer
    (or None to answer normally) plus whether to shrink the catalogue after answering.

    ``answers`` holds the provider's own answers: "throttle" is required, and any
    provider-specific kinds (QingCloud's "internal", say) are looked up there first."""
    shrink = False
    for rule in faults.take(page):
        if rule.kind in answers:
            return answers[rule.kind](), False
        if rule.kind == "latency":
            time.sleep(rule.latency_s)
        elif rule.kind in ("http_500", "http_503"):
            status = 500 if rule.kind == "http_500" else 503
            text = "Internal Server Error" if status == 500 else "Service Unavailable"
            body = f"<html><body><h1>{status} {text}</h1></body></html>".encode()
            return Response(status, body, "text/html"), False
        elif rule.kind == "malformed":
            return Response(200, b'{"action":"DescribeImagesResponse","image_set":[{"ima'), False
        elif rule.kind == "reset":
            return Response(0, b"", reset=True), False
        elif rule.kind == "shrink":
            shrink = True
    return None, shrink


# -- realistic catalogue pieces shared by the provider emulators ---------------------------

#: (os_family, display name, versions, platform)
DISTROS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("centos", "CentOS", ("7.6", "7.9", "8.2", "Stream 9"), "linux"),
    ("ubuntu", "Ubuntu Server", ("18.04 LTS", "20.04 LTS", "22.04 LTS", "24.04 LTS"), "linux"),
    ("debian", "Debian", ("10", "11", "12"), "linux"),
    ("rocky", "Rocky Linux", ("8.8", "9.3"), "linux"),
    ("almalinux", "AlmaLinux", ("8.9", "9.4"), "linux"),
    ("opensuse", "openSUSE Leap", ("15.4", "15.5"), "linux"),
    ("fedora", "Fedora", ("38", "39", "40"), "linux"),
    ("kylin", "Kylin Server", ("V10 SP2", "V10 SP3"), "linux"),
    ("euleros", "openEuler", ("20.03 LTS", "22.03 LTS"), "linux"),
    (
        "windows",
        "Windows Server",
        ("2016 Datacenter", "2019 Datacenter", "2022 Datacenter"),
        "windows",
    ),
)

APP_WORDS = ("web", "api", "worker", "db", "cache", "gateway", "batch", "ml", "ci", "bastion")
ENV_WORDS = ("prod", "staging", "dev", "test")


def image_name(rng: random.Random, system: bool) -> tuple[str, str, str, str]:
    """(name, os_family, platform, os label) for a platform or a user-captured image."""
    family, label, versions, platform = rng.choice(DISTROS)
    os_label = f"{label} {rng.choice(versions)}"
    if system:
        return os_label, family, platform, os_label
    app = rng.choice(APP_WORDS)
    env = rng.choice(ENV_WORDS)
    stamp = f"{rng.randint(2021, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return f"{app}-{env}-{stamp}", family, platform, os_label


def random_time(rng: random.Random, start_year: int = 2019, end_year: int = 2025) -> datetime:
    start = datetime(start_year, 1, 1, tzinfo=UTC)
    span = (datetime(end_year, 12, 31, tzinfo=UTC) - start).total_seconds()
    return start + timedelta(seconds=rng.randrange(int(span)))


def random_id(rng: random.Random, prefix: str, length: int = 8) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(rng.choices(alphabet, k=length))
