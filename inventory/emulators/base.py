"""Provider-independent emulator machinery: an HTTP server on loopback, faults, catalogues.

An emulator is an *app* (one per provider) served by :class:`EmulatorServer`, a threaded
``http.server`` on 127.0.0.1. The app turns a :class:`Request` into a :class:`Response`
exactly as the real API would, including its error envelopes. Faults are injected per page
through :class:`Faults`, so tests, the demo and the benchmarks can make page *k* fail,
throttle, stall or drop the connection.

Every emulator also answers a small JSON control API, for standalone runs
(``inventory emulate PROVIDER``):

- ``POST /_emulator/mutate``   body ``{"seed": 1, "deprecate": 5, "remove": 3, ...}``
  (passed to the app's ``mutate``; answers the affected ids per kind)
- ``POST /_emulator/faults``   body ``[{"kind": "http_503", "page": 2, "times": 1}, ...]``
  (replaces the rules); ``DELETE /_emulator/faults`` clears them
- ``GET  /_emulator/state``    the app's state (image count, ...), the number of provider
  requests served and the live fault rules

The second half of the module draws realistic, provider-neutral image traits (operating
system, name, size, architecture, dates) from a seed, fast enough for catalogues of
100,000 images; each provider emulator maps them onto its own response shape.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import random
import socket
import struct
import sys
import threading
import time
from array import array
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Fault kinds every emulator understands; a provider adds its own (see :class:`FaultRule`).
COMMON_FAULT_KINDS = frozenset(
    {"http_500", "http_503", "throttle", "malformed", "latency", "reset", "shrink"}
)
#: The kinds the control API accepts for an app that does not declare ``fault_kinds``:
#: the common ones plus the two server-side errors most providers have.
FAULT_KINDS = COMMON_FAULT_KINDS | {"internal", "server_busy"}


# -- faults --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Make page ``page`` (1-based; None = every page) misbehave ``times`` times (None = always).

    Kinds every emulator understands: ``http_500``, ``http_503`` (a bare gateway error page),
    ``throttle`` (the provider's own throttling answer), ``malformed`` (a truncated body),
    ``latency`` (answer normally after ``latency_s``), ``reset`` (drop the connection without
    answering), and ``shrink`` (answer normally, then remove the first listed image, so the
    offsets of later pages shift as they do when a catalogue changes during a listing).
    Providers may add their own (QingCloud: ``internal`` = ret_code 5000, ``server_busy`` =
    ret_code 5100).
    """

    kind: str
    page: int | None = None
    times: int | None = None
    latency_s: float = 0.0

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], kinds: Container[str] = COMMON_FAULT_KINDS
    ) -> FaultRule:
        """Parse one rule of the control API, refusing what would silently never match."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a fault rule is a JSON object, not {data!r}")
        unknown = set(data) - {"kind", "page", "times", "latency_s"}
        if unknown:
            raise ValueError(f"unknown fault rule field {sorted(unknown)[0]!r}")
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in kinds:
            known = ", ".join(sorted(kinds)) if isinstance(kinds, Iterable) else "?"
            raise ValueError(f"unknown fault kind {kind!r} (known: {known})")
        page, times, latency = data.get("page"), data.get("times"), data.get("latency_s", 0.0)
        # bool is an int subclass; "page": true is a mistake, not page 1.
        if page is not None and (not isinstance(page, int) or isinstance(page, bool) or page < 1):
            raise ValueError(f"fault page must be a page number from 1, not {page!r}")
        if times is not None and (
            not isinstance(times, int) or isinstance(times, bool) or times < 0
        ):
            raise ValueError(f"fault times must be a count from 0, not {times!r}")
        if not isinstance(latency, int | float) or isinstance(latency, bool) or latency < 0:
            raise ValueError(f"fault latency_s must be seconds from 0, not {latency!r}")
        return cls(kind=kind, page=page, times=times, latency_s=float(latency))


class Faults:
    """A thread-safe list of fault rules, each with the uses it has left."""

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._lock = threading.Lock()
        # [rule, remaining uses or None]; a list so a use can be counted in place.
        self._rules: list[list[Any]] = [[r, r.times] for r in rules]

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append([rule, rule.times])

    def replace(self, rules: Iterable[FaultRule]) -> None:
        with self._lock:
            self._rules = [[r, r.times] for r in rules]

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[FaultRule]:
        """The rules that can still fire, in the order they were added."""
        with self._lock:
            return [rule for rule, left in self._rules if left is None or left > 0]

    def take(self, page: int) -> FaultRule | None:
        """The first live rule for ``page``, with one of its uses counted; None if none."""
        taken = self._take(page, combine_latency=False)
        return taken[0] if taken else None

    def take_all(self, page: int) -> list[FaultRule]:
        """The live rules for ``page``, each use counted: at most one ``latency`` rule and
        one other, in the order they were added, so a stall can precede a failure."""
        return self._take(page, combine_latency=True)

    def _take(self, page: int, *, combine_latency: bool) -> list[FaultRule]:
        taken: list[FaultRule] = []
        seen_latency: set[bool] = set()
        with self._lock:
            for entry in self._rules:
                rule, left = entry
                if rule.page is not None and rule.page != page:
                    continue
                if left is not None and left <= 0:
                    continue
                is_latency = rule.kind == "latency"
                if is_latency in seen_latency:
                    continue
                seen_latency.add(is_latency)
                if left is not None:
                    entry[1] = left - 1
                taken.append(rule)
                if not combine_latency or len(seen_latency) == 2:
                    break
        return taken


# -- the control API's mutation --------------------------------------------------------------

#: The kinds of change every emulated catalogue's ``mutate`` accepts (a kind the provider
#: cannot express changes nothing and returns an empty list).
MUTATIONS = ("deprecate", "cease", "delete", "remove", "add", "rename")


class MutationSeeds:
    """Seeds 1, 2, 3, ... for successive control-API mutations that name none."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._count += 1
            return self._count


def control_mutate(
    catalogue: Any, counts: dict[str, Any], seeds: MutationSeeds
) -> dict[str, list[str]]:
    """``POST /_emulator/mutate`` for any app: counts per kind of :data:`MUTATIONS` plus an
    optional integer ``seed``; raises ValueError for anything else."""
    counts = dict(counts)
    seed = counts.pop("seed", None)
    if seed is None:
        seed = seeds.next()
    elif not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"mutation seed must be an integer, not {seed!r}")
    unknown = set(counts) - set(MUTATIONS)
    if unknown:
        raise ValueError(f"unknown mutation {sorted(unknown)[0]!r} (known: {list(MUTATIONS)})")
    result: dict[str, list[str]] = catalogue.mutate(seed, **counts)
    return result


# -- requests, responses, apps ---------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """One HTTP request as received: the query string and body are left exactly as sent,
    because a signature check must see the bytes the client signed."""

    method: str
    path: str
    raw_query: str
    headers: dict[str, str]  # names lower-cased
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

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode(), f"{content_type}; charset=utf-8")


class App(Protocol):
    """What a provider emulator implements for :class:`EmulatorServer`.

    An app may also set ``fault_kinds`` (a frozenset: ``COMMON_FAULT_KINDS`` plus its own
    kinds) so the control API refuses rules it cannot answer; without it, ``FAULT_KINDS``.
    """

    faults: Faults

    def handle(self, request: Request) -> Response: ...

    def mutate(self, **counts: int) -> dict[str, list[str]]: ...

    def state(self) -> dict[str, Any]: ...


def apply_faults(
    faults: Faults, page: int, answers: Mapping[str, Callable[[], Response]]
) -> tuple[Response | None, bool]:
    """Apply the live faults of ``page``: sleep for latency, and return a faulty answer
    (or None to answer normally) plus whether to shrink the catalogue after answering.

    ``answers`` holds the provider's own answers, looked up first: "throttle" is required,
    "malformed" replaces the generic truncated body, and any provider-specific kinds
    (QingCloud's "internal", say) must be there."""
    shrink = False
    for rule in faults.take_all(page):
        if rule.kind in answers:
            return answers[rule.kind](), False
        if rule.kind == "latency":
            time.sleep(rule.latency_s)
        elif rule.kind in ("http_500", "http_503"):
            # What a load balancer in front of the API sends: an HTML page, not the API's
            # JSON envelope, so the client must cope with a body it cannot parse.
            status = 500 if rule.kind == "http_500" else 503
            text = "Internal Server Error" if status == 500 else "Service Unavailable"
            html = (
                f"<html><head><title>{status} {text}</title></head>"
                f"<body><h1>{text}</h1></body></html>"
            )
            return Response.text(status, html, "text/html"), False
        elif rule.kind == "malformed":
            return Response(200, b'{"items":[{"id":"img-'), False
        elif rule.kind == "reset":
            return Response(0, b"", reset=True), False
        elif rule.kind == "shrink":
            shrink = True
        else:
            raise ValueError(f"fault kind {rule.kind!r} has no answer in this emulator")
    return None, shrink


# -- the server ------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The benchmarks open several connections at once; the default backlog of 5 would make
    # the kernel drop SYNs and the client stall for a retransmit second.
    request_queue_size = 128
    verbose = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer (a test's reset, a cancelled sync) are routine here;
        # a traceback on stderr for each would drown the demo's output.
        if self.verbose:
            super().handle_error(request, client_address)
        else:
            log.debug("emulator connection from %s failed", client_address, exc_info=True)


class EmulatorServer:
    """Serves one app on loopback over real HTTP, in a background thread or the foreground.

    ``request_count`` counts the provider requests (not the control API's), including
    those answered with a fault.
    """

    def __init__(
        self, app: App, port: int = 0, *, host: str = "127.0.0.1", verbose: bool = False
    ) -> None:
        self.app = app
        self.verbose = verbose
        self._count_lock = threading.Lock()
        self._requests = 0
        self._request_event = threading.Condition(self._count_lock)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), self._handler_class())
        self._httpd.verbose = verbose
        self._thread: threading.Thread | None = None
        self._serving = False
        self._closed = False

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def request_count(self) -> int:
        with self._count_lock:
            return self._requests

    def start(self) -> EmulatorServer:
        """Serve in a daemon thread; returns self, so ``server = EmulatorServer(app).start()``."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._serving = True
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
            # shutdown() waits for serve_forever to notice; called without a serving loop
            # it would wait forever, hence the flag.
            self._httpd.shutdown()
            self._serving = False
        self._close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
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

    def _counted(self) -> None:
        with self._request_event:
            self._requests += 1
            self._request_event.notify_all()

    def _control(self, request: Request) -> Response:
        path, method = request.path.rstrip("/"), request.method
        if path == "/_emulator/state" and method == "GET":
            return Response.json(
                200,
                {
                    **self.app.state(),
                    "requests": self.request_count,
                    "faults": [asdict(r) for r in self.app.faults.rules()],
                },
            )
        if path == "/_emulator/mutate" and method == "POST":
            try:
                counts = json.loads(request.body or b"{}")
                if not isinstance(counts, dict):
                    raise ValueError("the mutate body is a JSON object of counts")
                return Response.json(200, self.app.mutate(**counts))
            except (ValueError, TypeError) as err:
                return Response.json(400, {"error": str(err)})
        if path == "/_emulator/faults" and method == "DELETE":
            self.app.faults.clear()
            return Response.json(200, {"faults": []})
        if path == "/_emulator/faults" and method == "POST":
            try:
                data = json.loads(request.body or b"[]")
                if not isinstance(data, list):
                    raise ValueError("the faults body is a JSON list of rules")
                kinds = getattr(self.app, "fault_kinds", FAULT_KINDS)
                rules = [FaultRule.from_dict(r, kinds) for r in data]
            except (ValueError, TypeError) as err:
                return Response.json(400, {"error": str(err)})
            self.app.faults.replace(rules)
            return Response.json(200, {"faults": [asdict(r) for r in rules]})
        return Response.json(404, {"error": f"no control endpoint {method} {request.path}"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "inventory-emulator"
            sys_version = ""
            # Headers and body leave in two writes; with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms a response on Linux). Real APIs don't do that.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with server._connections_lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with server._connections_lock:
                        server._connections.discard(self.connection)

            def _serve(self) -> None:
                response = self._answer()
                if response.reset:
                    # SO_LINGER 0 turns close() into a TCP RST: the client sees a reset
                    # connection, as from a crashed backend, not a polite end of stream.
                    with contextlib.suppress(OSError):
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
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

            def _answer(self) -> Response:
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
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parts.path,
                    raw_query=parts.query,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                if parts.path.startswith("/_emulator/"):
                    return server._control(request)
                server._counted()
                try:
                    return server.app.handle(request)
                except Exception:  # an emulator bug must show, not hang the client
                    log.exception("emulator failed on %s %s", self.command, parts.path)
                    return Response.text(500, "emulator error")

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                if server.verbose:
                    log.info("%s %s", self.address_string(), format % args)

        return Handler


# -- catalogue storage ---------------------------------------------------------------------


class CatalogueStore:
    """The storage every emulated catalogue shares: images by id in listing order, removed
    ones kept aside for :meth:`restore`, and cached listing views dropped on every change.

    Thread-safe (one re-entrant lock). :meth:`edit` and :meth:`restore` store a new dict
    rather than change one in place, so a listing being serialised in another thread shows
    an image wholly before or wholly after the change. Subclasses set :attr:`id_key` and
    add ``mutate`` and ``listing`` in their provider's vocabulary; whatever changes
    ``_images`` calls :meth:`_changed` under the lock.
    """

    #: The field holding an image's id in this provider's records.
    id_key: ClassVar[str]

    def __init__(self, images: Iterable[dict[str, Any]]) -> None:
        self._lock = threading.RLock()
        self._images: dict[str, dict[str, Any]] = {i[self.id_key]: dict(i) for i in images}
        self._removed: dict[str, dict[str, Any]] = {}
        self._views: dict[Any, Any] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._images)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._images)

    def get(self, image_id: str) -> dict[str, Any] | None:
        with self._lock:
            image = self._images.get(image_id)
            return dict(image) if image else None

    def _changed(self) -> None:
        self._views.clear()

    def edit(self, image_id: str, **fields: Any) -> None:
        """Set raw fields of one image (None stores null), as a provider-side change."""
        with self._lock:
            self._images[image_id] = {**self._images[image_id], **fields}
            self._changed()

    def remove(self, image_id: str) -> None:
        """Take an image out of every listing (kept aside for :meth:`restore`)."""
        with self._lock:
            self._removed[image_id] = self._images.pop(image_id)
            self._changed()

    def restore(self, image_id: str, **fields: Any) -> None:
        """Put a removed image back into the listing (at the end), optionally changed."""
        with self._lock:
            self._images[image_id] = {**self._removed.pop(image_id), **fields}
            self._changed()


# -- realistic catalogue pieces shared by the provider emulators -------------------------------

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True, slots=True)
class OsRelease:
    """One operating-system release as clouds offer it."""

    family: str  # lower-case family as APIs report it: "centos", "ubuntu", "windows"
    distro: str  # display name: "CentOS", "Ubuntu Server", "Windows Server"
    version: str  # "7.9", "22.04 LTS", "2019 Datacenter"
    platform: str  # "linux" / "windows"
    slug: str  # short form used in user-made names: "centos79", "ubuntu2204", "win2019"
    size_gb: int  # system disk size of the platform image
    weight: int  # relative popularity

    @property
    def label(self) -> str:
        return f"{self.distro} {self.version}"


def _linux(family: str, distro: str, slug: str, versions: str, weight: int) -> list[OsRelease]:
    # versions: "ver:slug-suffix,..." keeps the table below to one line per distro.
    out = []
    for item in versions.split(","):
        version, suffix = item.split(":")
        out.append(OsRelease(family, distro, version, "linux", slug + suffix, 20, weight))
    return out


OS_RELEASES: tuple[OsRelease, ...] = (
    *_linux("centos", "CentOS", "centos", "7.6:76,7.9:79,8.2:82,Stream 9:s9", 9),
    *_linux("ubuntu", "Ubuntu Server", "ubuntu", "18.04 LTS:1804,20.04 LTS:2004", 7),
    *_linux("ubuntu", "Ubuntu Server", "ubuntu", "22.04 LTS:2204,24.04 LTS:2404", 10),
    *_linux("debian", "Debian", "debian", "10:10,11:11,12:12", 5),
    *_linux("rocky", "Rocky Linux", "rocky", "8.8:8,9.3:9", 4),
    *_linux("almalinux", "AlmaLinux", "alma", "8.9:8,9.4:9", 3),
    *_linux("opensuse", "openSUSE Leap", "leap", "15.4:154,15.5:155", 2),
    *_linux("fedora", "Fedora", "fedora", "39:39,40:40", 2),
    *_linux("kylin", "Kylin Server", "kylin", "V10 SP2:v10sp2,V10 SP3:v10sp3", 2),
    *_linux("euleros", "openEuler", "openeuler", "20.03 LTS:2003,22.03 LTS:2203", 2),
    *(
        OsRelease("windows", "Windows Server", f"{year} Datacenter", "windows", f"win{year}", 50, w)
        for year, w in (("2016", 2), ("2019", 4), ("2022", 4))
    ),
)

APP_WORDS = ("web", "api", "worker", "db", "cache", "gateway", "batch", "ml", "ci", "bastion")
ROLE_WORDS = ("frontend", "backend", "node", "base", "runner", "proxy", "primary", "replica")
ENV_WORDS = ("prod", "staging", "dev", "test")
TAG_KEYS = ("env", "team", "app", "cost-center", "owner")
TAG_VALUES = ("prod", "staging", "dev", "platform", "data", "web", "finance", "ops")

#: Catalogue dates run from here ...
CATALOGUE_START = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp())
#: ... to here (fixed, so a seed gives the same catalogue whenever it is generated).
CATALOGUE_END = int(datetime(2026, 6, 30, tzinfo=UTC).timestamp())


class ImageTraits(NamedTuple):
    """The provider-neutral facts of one generated image; providers map them to fields.

    A NamedTuple rather than a frozen dataclass: building 100,000 of them is three times
    faster, and they are just as immutable."""

    os: OsRelease
    system: bool  # a platform image (True) or one the account captured itself
    name: str  # platform: the OS label ("CentOS 7.9"); own: "web-frontend-2024-05"
    description: str | None
    architecture: str  # "x86_64", "arm64" or "i386"
    size_gb: int
    created: int  # Unix seconds


# Formatting timestamps is most of the cost of a big catalogue; tables make it a few
# lookups instead of a strftime.
_HOURS = tuple(f"{h:02d}" for h in range(24))
_MINUTE_SECONDS = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))


@lru_cache(maxsize=8192)
def _day(days: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(days * 86400))


def iso_z(seconds: int) -> str:
    """Unix seconds as ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``; cheap for bulk generation."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{_day(days)}T{_HOURS[hours]}:{_MINUTE_SECONDS[rest]}Z"


# Bulk draws. rng.choices() costs a Python-level call per item; these draw all the random
# bytes at once (rng.randbytes) and map them in C (bytes.translate, array), about ten times
# faster. They consume the generator deterministically, so a seed still fixes the result.


def _words(data: bytes, code: str) -> list[int]:
    values = array(code)
    values.frombytes(data)
    if sys.byteorder == "big":  # the same seed gives the same catalogue on every machine
        values.byteswap()
    return values.tolist()


@lru_cache(maxsize=256)
def _slot_table(n: int, weights: tuple[float, ...] | None) -> bytes:
    """256 byte slots, each naming an index below ``n``, shared out by weight."""
    shares = [1.0] * n if weights is None else [float(w) for w in weights]
    if len(shares) != n or n == 0 or n > 256 or min(shares) < 0 or sum(shares) <= 0:
        raise ValueError("draw_choices takes 1 to 256 values with as many weights >= 0")
    bounds: list[float] = []
    total = 0.0
    for share in shares:
        total += share
        bounds.append(total / sum(shares))
    table = bytearray()
    index = 0
    for slot in range(256):
        while index < n - 1 and (slot + 0.5) / 256 >= bounds[index]:
            index += 1
        table.append(index)
    return bytes(table)


def draw_choices(
    rng: random.Random, population: Sequence[T], count: int, weights: Sequence[float] | None = None
) -> list[T]:
    """Like ``rng.choices(population, weights, k=count)``, but fast; shares are exact to
    1/256 (a weight below 1/512 of the total may never be drawn). At most 256 values."""
    table = _slot_table(len(population), tuple(weights) if weights is not None else None)
    return [population[i] for i in rng.randbytes(count).translate(table)]


def draw_ints(rng: random.Random, low: int, high: int, count: int) -> list[int]:
    """``count`` integers uniform in ``[low, high)`` (64 random bits each, so the modulo
    bias is negligible for any span a catalogue uses)."""
    span = high - low
    if span <= 0:
        raise ValueError(f"empty range [{low}, {high})")
    return [low + v % span for v in _words(rng.randbytes(8 * count), "Q")]


def draw_fractions(rng: random.Random, count: int) -> list[float]:
    """``count`` floats uniform in [0, 1), with 53 bits like ``rng.random()``."""
    scale = 2.0**-53
    return [(v >> 11) * scale for v in _words(rng.randbytes(8 * count), "Q")]


_ID_TABLE = bytes(ord(ID_ALPHABET[i % len(ID_ALPHABET)]) for i in range(256))


def random_id(rng: random.Random, prefix: str, length: int = 8) -> str:
    """``prefix`` plus ``length`` lower-case letters and digits, e.g. ``img-3k9x0abz``."""
    return prefix + "".join(rng.choices(ID_ALPHABET, k=length))


def random_ids(
    rng: random.Random,
    prefix: str,
    count: int,
    length: int = 8,
    taken: Container[str] = (),
) -> list[str]:
    """``count`` distinct ids like :func:`random_id`, none of them in ``taken``."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        need = count - len(out)
        chars = rng.randbytes(need * length).translate(_ID_TABLE).decode("ascii")
        for start in range(0, need * length, length):
            ident = prefix + chars[start : start + length]
            if ident not in seen and ident not in taken:
                seen.add(ident)
                out.append(ident)
    return out


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a big catalogue.

    100,000 fresh dicts and lists trigger a collection every few hundred allocations, each
    scanning every object made so far; none of them is garbage, so pausing it halves the
    time of a generation. The previous state is restored, so nesting is harmless."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def draw_traits(
    rng: random.Random, count: int, system_share: float = 0.15, created_at: int | None = None
) -> list[ImageTraits]:
    """``count`` images' traits, deterministic for the state of ``rng``; ``created_at``
    (Unix seconds) dates them all, else creation dates spread over the catalogue years.

    Each field is drawn for all images at once, which keeps 100,000 images well under a
    second; the draws are ordered field by field, so changing one field's distribution
    changes only that field's values.
    """
    with paused_gc():
        return _draw_traits(rng, count, system_share, created_at)


def _draw_traits(
    rng: random.Random, count: int, system_share: float, created_at: int | None
) -> list[ImageTraits]:
    releases = draw_choices(rng, OS_RELEASES, count, [r.weight for r in OS_RELEASES])
    system = [r < system_share for r in draw_fractions(rng, count)]
    created = draw_ints(rng, CATALOGUE_START, CATALOGUE_END, count)
    if created_at is not None:
        created = [created_at] * count
    # Windows Server 2016+ is 64-bit x86 only; a few Linux images are ARM or 32-bit.
    arches = draw_choices(rng, ("x86_64", "arm64", "i386"), count, (95, 3.5, 1.5))
    apps = draw_choices(rng, APP_WORDS, count)
    roles = draw_choices(rng, ROLE_WORDS, count)
    envs = draw_choices(rng, ENV_WORDS, count)
    styles = draw_choices(rng, range(4), count, (5, 3, 2, 2))
    extra_gb = draw_choices(rng, (0, 0, 0, 20, 30, 80), count)
    described = draw_fractions(rng, count)
    versions = draw_choices(rng, range(2, 10), count)

    out: list[ImageTraits] = []
    for i in range(count):
        release = releases[i]
        arch = "x86_64" if release.platform == "windows" else arches[i]
        if system[i]:
            name = release.label
            description = None if described[i] < 0.3 else f"{release.label} (official image)"
            size = release.size_gb
        else:
            app, role = apps[i], roles[i]
            style = styles[i]
            if style == 0:
                name = f"{app}-{role}-{_day(created[i] // 86400)[:7]}"  # web-frontend-2024-05
            elif style == 1:
                stamp = _day(created[i] // 86400).replace("-", "")
                name = f"{app}-{envs[i]}-{stamp}"  # api-prod-20240512
            elif style == 2:
                name = f"{release.slug}-{app}-golden"  # ubuntu2204-web-golden
            else:
                name = f"{app}-{role}-v{versions[i]}"  # cache-proxy-v3
            description = None if described[i] < 0.4 else f"{app} {role} image on {release.label}"
            size = release.size_gb + extra_gb[i]
        out.append(ImageTraits(release, system[i], name, description, arch, size, created[i]))
    return out


# Single-image helpers, for emulators that draw one image at a time.

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
    """A moment (UTC, whole seconds) between the start of one year and the end of another."""
    start = datetime(start_year, 1, 1, tzinfo=UTC)
    span = (datetime(end_year, 12, 31, tzinfo=UTC) - start).total_seconds()
    return start + timedelta(seconds=rng.randrange(int(span)))
