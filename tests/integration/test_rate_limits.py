"""Rate limits as a setting: one budget per account and region, slowed by the provider's
throttling answers, and a Retry-After obeyed, over real HTTP against the emulators."""

from __future__ import annotations

import time
from dataclasses import replace

from inventory.config import parse_settings
from inventory.emulation import EmulatorServer
from inventory.http import RateLimiter, RetryPolicy, shared_limiter
from inventory.providers.qingcloud.collect import QingCloudCollector
from inventory.providers.qingcloud.emulator import QingCloudApp

from .helpers import Emulator

PATIENT = RetryPolicy(max_attempts=8, base_delay_s=0.05, max_delay_s=0.2)


class Watched(RateLimiter):
    """A limiter that remembers the lowest rate throttling brought it to."""

    lowest = float("inf")

    def throttled(self, retry_after_s: float | None = None) -> None:
        super().throttled(retry_after_s)
        self.lowest = min(self.lowest, self.rate)


def test_throttling_answers_slow_the_account_down(emulator: Emulator) -> None:
    """The emulator answers ret_code 2500 past 10 calls a second; the source asks for 200 a
    second with 4 in flight. The account's limiter halves its rate on each throttled answer,
    and the listing still comes back whole."""
    emu = emulator.reset(images=2000, page_size=100)
    assert emu.server is not None and emu.app is not None
    emu.server.stop()
    emu.app = QingCloudApp(emu.app.catalogue, rate_limit_per_s=10)
    emu.server = EmulatorServer(emu.app).start()
    source = replace(emu.source(), concurrency=4, rate_limit_per_s=200.0)
    limiter = Watched(200.0)
    collector = QingCloudCollector(source, PATIENT, limiter=limiter)
    try:
        items = sum(len(page.items) for page in collector.pages())
    finally:
        collector.close()
    assert items == 2000 and collector.complete
    assert limiter.throttled_calls >= 1
    assert limiter.lowest <= 100.0  # halved at least once, never just retried at full pace


def test_retry_after_is_waited_for(emulator: Emulator) -> None:
    """An HTTP 429 with Retry-After: 1 on page 2: the retry waits that second (the retry
    policy alone would wait 0.05 s at most)."""
    emu = emulator.reset(images=300, page_size=100)
    emu.fail(page=2, kind="http_429", times=1)
    collector = QingCloudCollector(emu.source(), PATIENT)
    started = time.monotonic()
    try:
        pages = list(collector.pages())
    finally:
        collector.close()
    assert len(pages) == 3 and collector.complete
    assert time.monotonic() - started >= 1.0
    assert collector.limiter.throttled_calls >= 1


def test_rate_limit_is_a_setting_of_every_provider(tmp_path: object) -> None:
    sources = [
        {"name": "q", "provider": "qingcloud", "zone": "pek3a", "rate_limit_per_s": 5,
         "credentials": {"access_key_id": "${Q_ID}", "secret_access_key": "${Q_KEY}"}},
        {"name": "k", "provider": "ksyun", "region": "cn-beijing-6", "rate_limit_per_s": 0.5,
         "credentials": {"access_key_id": "${K_ID}", "secret_access_key": "${K_KEY}"}},
    ]  # fmt: skip
    settings = parse_settings({"sources": sources}, None)
    assert [s.rate_limit_per_s for s in settings.sources] == [5.0, 0.5]


def test_sources_of_one_account_and_zone_share_a_limiter() -> None:
    a = shared_limiter(("qingcloud", "", "KEY", "pek3a"), 50.0)
    b = shared_limiter(("qingcloud", "", "KEY", "pek3a"), 20.0)
    other_zone = shared_limiter(("qingcloud", "", "KEY", "sh1a"), 50.0)
    assert a is b and a.ceiling == 20.0  # the stricter setting holds for both
    assert other_zone is not a
