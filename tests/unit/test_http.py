"""Retry loop and rate limiter, with a fake clock (no sleeping, no timing assertions)."""

from __future__ import annotations

import httpx
import pytest

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


def test_rate_limiter_paces_after_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(40, burst=2, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(6)]
    assert waits[:2] == [0.0, 0.0]
    assert all(w == pytest.approx(1 / 40) for w in waits[2:])
    assert clock.now == pytest.approx(4 / 40)


def test_rate_limiter_refills_while_idle() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=1, clock=clock, sleep=clock.sleep)
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
