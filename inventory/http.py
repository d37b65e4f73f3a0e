"""One HTTP client factory and one retry loop for every provider.

- :func:`make_client` builds an ``httpx.Client`` with a timeout on every phase of every call,
  a User-Agent, and the provider's ``httpx.Auth`` signer.
- :func:`call_with_retries` repeats a call while it fails with a
  :class:`~inventory.errors.Transient` error or a transport error, with capped exponential
  backoff and full jitter, and gives up with :class:`~inventory.errors.RetriesExhausted`.
  Whether an error is transient is decided by the error's class (see inventory.errors),
  never here.
- :func:`redact` removes credentials and signatures from URLs before they are logged or put
  into an error message.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from inventory import __version__
from inventory.errors import ProviderError, ProviderTransientError, RetriesExhausted, Transient
from inventory.logs import install_header_filter
from inventory.secrets import scrub

log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = f"image-inventory/{__version__} (+https://github.com/image-inventory)"

#: Query parameters whose values are credentials or signatures, in any provider's spelling.
SENSITIVE_PARAMS = frozenset(
    {
        "signature",
        "access_key_id",
        "token",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "password",
        "secret",
    }
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to repeat a transient failure."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the pause after failed ``attempt`` (1-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return random.uniform(cap / 2, cap)


#: The highest rate a source may ask for (``rate_limit_per_s``, requests per second).
MAX_RATE_LIMIT_PER_S = 1000.0


class RateLimiter:
    """Client-side request pacing: never more than ``rate`` calls in any one second.

    A sliding window shared by every thread that uses it: a call goes out once the call
    ``n`` places before it is a second old (``n``: the rate rounded down; below one call a
    second, one call per ``1 / rate`` seconds), so no one-second window, wherever it
    starts, holds more than ``rate`` calls, and a listing's first second may use all of
    its calls at once. :meth:`acquire` blocks until a call may go out. Providers with a
    documented per-API limit (Tencent: 40 requests/s for DescribeImages) pace themselves
    below it rather than lean on throttling errors.

    It also listens to the provider (additive increase, multiplicative decrease): a
    throttled answer (:meth:`throttled`) halves the rate, down to :data:`FLOOR_SHARE` of
    the configured one, and a ``Retry-After`` holds every call back until then; each
    answered call (:meth:`answered`) gives back a twentieth of the configured rate, so
    after a burst of throttling it is back at full pace within a few dozen calls.
    """

    #: The lowest share of the configured rate that throttling brings it down to.
    FLOOR_SHARE = 1 / 16

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = self.ceiling = rate
        self._sent: deque[float] = deque(maxlen=max(1, int(rate)))  # the latest calls' times
        self._resume_at = 0.0
        self.throttled_calls = 0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until a call may go out; return how long this call waited (seconds)."""
        with self._lock:
            now = self._clock()
            n = max(1, int(self.rate))
            at = max(now, self._resume_at)
            if len(self._sent) >= n:
                at = max(at, self._sent[-n] + max(1.0, 1 / self.rate))
            self._sent.append(at)
            wait = at - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def throttled(self, retry_after_s: float | None = None) -> None:
        """The provider said "too many calls": halve the rate (the window counts the calls
        just made, so the next ones wait), and hold every call back for ``retry_after_s``
        when it said how long."""
        with self._lock:
            self.throttled_calls += 1
            self.rate = max(self.ceiling * self.FLOOR_SHARE, self.rate / 2)
            if retry_after_s:
                self._resume_at = max(self._resume_at, self._clock() + retry_after_s)

    def answered(self) -> None:
        """A call went through: step the rate back up towards the configured one."""
        if self.rate < self.ceiling:
            with self._lock:
                self.rate = min(self.ceiling, self.rate + self.ceiling / 20)

    def limit(self, rate: float) -> None:
        """Lower the configured rate (a stricter source sharing this limiter)."""
        with self._lock:
            if rate < self.ceiling:
                self.ceiling = rate
                self.rate = min(self.rate, rate)


class SharedRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose window is kept in PostgreSQL (table ``rate_windows``),
    so that every process pacing one account and region with it, on any machine, stays
    within ``rate`` together: queue mode's workers (inventory/queue.py).

    Each call first passes this process's own window (which throttled answers slow down,
    as for :class:`RateLimiter`), then takes the next slot of the shared one in a single
    statement on the database's clock: at the earliest a second and :data:`MARGIN_S` after
    the call ``n`` places before it, made by any process. The margin absorbs the few
    milliseconds between a slot and its request reaching the provider, which differ from
    one request to the next. The row holds a digest of the key, never the key id itself.
    Every limiter of a process takes its slots over one connection (:class:`_Slots`): one
    statement of a fraction of a millisecond per call, however many accounts it paces.
    """

    #: Extra spacing beyond one second between a call and the one ``n`` places before it.
    MARGIN_S = 0.05

    def __init__(self, slots: _Slots, key: tuple[str, ...], rate: float) -> None:
        super().__init__(rate)
        self._slots = slots
        self.key = hashlib.sha256("\x1f".join(key).encode()).hexdigest()

    def __repr__(self) -> str:  # the conninfo may hold a password
        return f"SharedRateLimiter(key={self.key[:12]}, rate={self.rate:g})"

    def acquire(self) -> float:
        waited = super().acquire()
        n = max(1, int(self.rate))
        spacing = max(1.0, 1 / self.rate) + self.MARGIN_S
        wait = self._slots.take(self.key, n, spacing, keep=max(n, int(self.ceiling)))
        if wait > 0:
            self._sleep(wait)
        return waited + max(wait, 0.0)


class _Slots:
    """One process's connection to the shared windows, used by a call at a time."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._connection: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # the conninfo may hold a password
        return "_Slots()"

    def take(self, key: str, n: int, spacing: float, keep: int) -> float:
        """Record the next slot of ``key``'s window; how long until it comes (seconds)."""
        import psycopg

        params = {"key": key, "n": n, "spacing": spacing, "keep": keep}
        with self._lock:
            for attempt in (1, 2):  # a connection dropped while idle: once more, anew
                try:
                    if self._connection is None or self._connection.closed:
                        self._connection = psycopg.connect(
                            self._conninfo, autocommit=True, connect_timeout=10
                        )
                    row = self._connection.execute(_TAKE_SLOT, params).fetchone()
                    break
                except psycopg.OperationalError as err:
                    if self._connection is not None:
                        self._connection.close()
                    if attempt == 2:  # the page's retries try again later
                        raise ProviderTransientError(
                            "the shared request budget in the database could not be "
                            f"reached ({type(err).__name__}); is the database up?"
                        ) from None
        assert row is not None
        at, now = row
        return float((at - now).total_seconds())

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()


#: The next slot of one key's window, recorded in the same statement (the row is created
#: on first use): no earlier than now, than the latest slot, or than the slot ``n`` places
#: back plus ``spacing``. The window keeps the latest ``keep`` slots, in order, or as many
#: as it holds if more (a process pacing faster may need them), at most 1000 (the highest
#: rate allowed).
_TAKE_SLOT = """
INSERT INTO rate_windows AS w (key, sent) VALUES (%(key)s, ARRAY[clock_timestamp()])
ON CONFLICT (key) DO UPDATE SET sent = (w.sent || greatest(
        clock_timestamp(),
        w.sent[cardinality(w.sent)],
        w.sent[cardinality(w.sent) - %(n)s + 1] + make_interval(secs => %(spacing)s)
    ))[greatest(1, cardinality(w.sent) + 2 - least(1000, greatest(%(keep)s, cardinality(w.sent)))):]
RETURNING w.sent[cardinality(w.sent)], clock_timestamp()
"""


_shared: dict[tuple[str, ...], RateLimiter] = {}
_shared_lock = threading.Lock()
#: Where :func:`shared_limiter` keeps its windows: this process (None), or the database
#: of :func:`share_limits_through`.
_shared_through: _Slots | None = None


def share_limits_through(conninfo: str | None) -> None:
    """From now on, pace each account and region together with every other process using
    the database ``conninfo`` (a libpq URL), or in this process only (None)."""
    global _shared_through
    with _shared_lock:
        if _shared_through is not None:
            _shared_through.close()
        _shared_through = _Slots(conninfo) if conninfo is not None else None
        _shared.clear()


def shared_limiter(key: tuple[str, ...], rate: float) -> RateLimiter:
    """The one limiter of ``key`` (provider, account key id, region...) in this process, so
    every source of one account and region, synced at once (``--jobs``), shares one budget
    (with every process, see :func:`share_limits_through`). A source that asks for a lower
    rate lowers it for all: the strictest setting holds."""
    with _shared_lock:
        limiter = _shared.get(key)
        if limiter is None:
            through = _shared_through
            limiter = (
                RateLimiter(rate) if through is None else SharedRateLimiter(through, key, rate)
            )
            _shared[key] = limiter
        else:
            limiter.limit(rate)
        return limiter


#: The longest ``Retry-After`` obeyed: a longer one waits this long, then tries again.
MAX_RETRY_AFTER_S = 300.0
_answers = threading.local()


def _note_retry_after(response: httpx.Response) -> None:
    _answers.retry_after = response.headers.get("Retry-After")


def retry_after_s() -> float | None:
    """The ``Retry-After`` of the last answer this thread's clients received, in seconds
    (a number of seconds or an HTTP date), capped at :data:`MAX_RETRY_AFTER_S`; None when
    it had none or it could not be read."""
    value = getattr(_answers, "retry_after", None)
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S) or None


def redact(url: str | httpx.URL) -> str:
    """The URL with credential-bearing query values replaced by ``***``."""
    parts = urlsplit(str(url))
    if not parts.query:
        return scrub(str(url))
    query = [
        (k, "***" if k.lower() in SENSITIVE_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return scrub(urlunsplit(parts._replace(query=urlencode(query, safe="*"))))


def make_client(auth: httpx.Auth | None, timeout_s: float) -> httpx.Client:
    """A client whose every call has a timeout, signed by ``auth``."""
    install_header_filter()
    return httpx.Client(
        auth=auth,
        verify=tls_context(),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=False,
        event_hooks={"response": [_note_retry_after]},  # see retry_after_s()
    )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context, as httpx makes it by default (certifi's CA bundle).
    Made once: loading the CA bundle takes ~25 ms, per client that was 2.5 s of a
    100-source sync."""
    return httpx.create_ssl_context(trust_env=False)


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    on_retry: Callable[[int, BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call`` until it succeeds, a terminal error occurs, or attempts run out.

    ``what`` names the call in log lines and in the final error (e.g. "DescribeImages page 3").
    Transport errors (connect, read, timeouts, protocol) count as transient.
    """
    attempt = 1
    while True:
        try:
            return call()
        except httpx.TransportError as err:
            failure: BaseException = ProviderTransientError(f"{what}: {_transport(err)}")
        except Exception as err:
            if not isinstance(err, Transient):
                raise
            failure = err
        if attempt >= policy.max_attempts:
            code = failure.code if isinstance(failure, ProviderError) else None
            raise RetriesExhausted(
                f"{what}: gave up after {attempt} attempts: {_message(failure, what)}",
                code=code,
            ) from failure
        # A provider that said how long to wait is waited for at least that long.
        asked = getattr(failure, "retry_after_s", None)
        pause = max(policy.delay(attempt), asked or 0.0)
        reason = _message(failure, what)
        log.warning(
            "%s failed (attempt %d of %d), retrying in %.1fs: %s",
            what,
            attempt,
            policy.max_attempts,
            pause,
            reason,
            extra={
                "fields": {
                    "event": "retry",
                    "call": what,
                    "attempt": attempt,
                    "attempts": policy.max_attempts,
                    "pause_s": round(pause, 3),
                    "error": reason,
                }
            },
        )
        if on_retry is not None:
            on_retry(attempt, failure)
        sleep(pause)
        attempt += 1


def _message(err: BaseException, what: str | None = None) -> str:
    """The error's own words, without the call's name when it already starts with it
    (``what`` is said once, by the line that quotes this)."""
    text = err.message if isinstance(err, ProviderError) else scrub(str(err))
    if what and text.startswith(f"{what}: "):
        return text[len(what) + 2 :]
    return text


def _transport(err: httpx.TransportError) -> str:
    """A connection-level failure with the endpoint it was trying to reach (credential
    query values redacted): "ConnectError reaching http://127.0.0.1:9/iaas/: [Errno 111]
    Connection refused"."""
    reason = scrub(str(err)) or "connection failed"
    try:
        url = err.request.url
    except RuntimeError:  # no request attached
        return f"{type(err).__name__}: {reason}"
    endpoint = redact(url.copy_with(query=None, fragment=None))
    return f"{type(err).__name__} reaching {endpoint}: {reason}"
