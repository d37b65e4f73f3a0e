"""Retry loop and rate limiter, with a fake clock (no sleeping, no timing assertions)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from inventory import http
from inventory.errors import (
    ProviderTerminalError,
    ProviderTransientError,
    RetriesExhausted,
)
from inventory.http import RateLimiter, RetryPolicy, call_with_retries


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_lets_a_seconds_calls_go_then_paces() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(10)]
    assert waits[:4] == [0.0] * 4  # a second's worth at once
    assert waits[4] == pytest.approx(1.0) and waits[5:8] == [0.0] * 3  # then the next second's
    assert clock.now == pytest.approx(2.0)
    slow = RateLimiter(0.5, clock=clock, sleep=clock.sleep)  # below one call a second
    assert [slow.acquire(), slow.acquire()] == [0.0, pytest.approx(2.0)]


def test_rate_limiter_refills_while_idle() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.now += 1.0
    assert limiter.acquire() == 0.0


def test_retries_transient_then_succeeds() -> None:
    clock = FakeClock()
    calls = iter([ProviderTransientError("busy"), httpx.ConnectError("refused"), "ok"])

    def call() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    retried: list[int] = []
    result = call_with_retries(
        call,
        RetryPolicy(max_attempts=3, base_delay_s=1, max_delay_s=4),
        what="x",
        on_retry=lambda attempt, _e: retried.append(attempt),
        sleep=clock.sleep,
    )
    assert result == "ok"
    assert retried == [1, 2]
    assert 0.5 <= clock.slept[0] <= 1 and 1 <= clock.slept[1] <= 2  # capped exponential


def test_terminal_errors_are_not_retried() -> None:
    attempts = []

    def call() -> None:
        attempts.append(1)
        raise ProviderTerminalError("denied")

    with pytest.raises(ProviderTerminalError):
        call_with_retries(call, RetryPolicy(max_attempts=5), what="x", sleep=lambda _s: None)
    assert len(attempts) == 1


def test_gives_up_with_the_last_error() -> None:
    def call() -> None:
        raise ProviderTransientError("HTTP 503 from api", code="503")

    with pytest.raises(RetriesExhausted, match=r"gave up after 3 attempts.*HTTP 503") as info:
        call_with_retries(call, RetryPolicy(max_attempts=3), what="page 2", sleep=lambda _s: None)
    assert info.value.code == "503"


def test_a_throttled_answer_halves_the_rate_and_answers_bring_it_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(40, clock=clock, sleep=clock.sleep)
    limiter.throttled()
    assert limiter.rate == 20
    for _ in range(10):
        limiter.throttled()
    assert limiter.rate == 40 / 16  # never below the floor
    for _ in range(5):
        limiter.answered()
    assert limiter.rate == pytest.approx(40 / 16 + 5 * 2)
    for _ in range(40):
        limiter.answered()
    assert limiter.rate == 40  # never above what was configured
    assert limiter.throttled_calls == 11


def test_retry_after_holds_every_call_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.throttled(retry_after_s=3.0)
    assert limiter.acquire() == pytest.approx(3.0)  # though the window had room
    assert clock.now == pytest.approx(3.0)


def test_throttling_slows_the_next_calls_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        limiter.acquire()
    clock.now = 1.0
    limiter.throttled()  # now 2 a second, and the last second held 4
    sent = []
    for _ in range(4):
        limiter.acquire()
        sent.append(clock.now)
    assert sent == pytest.approx([1.0, 1.0, 2.0, 2.0])


def test_a_stricter_source_lowers_a_shared_limit() -> None:
    limiter = RateLimiter(40)
    limiter.limit(10)
    limiter.limit(30)
    assert (limiter.ceiling, limiter.rate) == (10, 10)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", None), ("", None), ("soon", None), ("100000", 300.0)],
)
def test_retry_after_header_is_read_in_seconds(header: str, seconds: float | None) -> None:
    http._note_retry_after(httpx.Response(429, headers={"Retry-After": header}))
    assert http.retry_after_s() == seconds


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    http._note_retry_after(httpx.Response(503, headers={"Retry-After": when}))
    assert 25 < (http.retry_after_s() or 0) <= 30
    http._note_retry_after(httpx.Response(200))
    assert http.retry_after_s() is None


def test_the_retry_waits_at_least_what_the_provider_asked() -> None:
    clock = FakeClock()
    busy = ProviderTransientError("busy")
    busy.retry_after_s = 12.0
    calls = iter([busy, "ok"])

    def call() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    policy = RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=0.2)
    assert call_with_retries(call, policy, what="x", sleep=clock.sleep) == "ok"
    assert clock.slept == [12.0]


def test_clients_share_one_tls_context() -> None:
    """A fleet of sources must not load the CA bundle once per source (~25 ms each)."""
    clients = [http.make_client(None, 5.0) for _ in range(3)]
    try:
        contexts = {id(c._transport._pool._ssl_context) for c in clients}  # type: ignore[attr-defined]
        assert contexts == {id(http.tls_context())}
        assert http.tls_context().verify_mode.name == "CERT_REQUIRED"
        assert http.tls_context().check_hostname
    finally:
        for client in clients:
            client.close()


def test_a_default_limiter_never_lets_more_than_its_rate_into_one_second() -> None:
    """From the very first call, wherever the second starts: a token bucket holding a
    second's worth let 40 calls out at once and 40 more within that same second, twice
    Tencent's documented limit."""
    clock = FakeClock()
    clock.now = 5.0  # a limiter made a while before its first call
    limiter = RateLimiter(40, clock=clock, sleep=clock.sleep)
    clock.now = 9.0
    sent = []
    for _ in range(200):
        limiter.acquire()
        sent.append(clock.now)
    busiest = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
    assert busiest <= 40
