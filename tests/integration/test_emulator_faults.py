"""Every engine fault against every provider: a real collector pages through the emulator
over real HTTP, and the test checks what it was answered (status, envelope, items) and what
the collector made of it. The fault kinds are listed in docs/emulators.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from inventory.config import parse_settings
from inventory.emulation import FaultRule, Running
from inventory.errors import (
    MalformedResponse,
    ProviderError,
    ProviderTerminalError,
    ProviderTransientError,
    RetriesExhausted,
)
from inventory.http import RetryPolicy
from inventory.paging import Page
from inventory.providers import PROVIDERS

PAGE_SIZE = 10
IMAGES = 60


def _code(provider: str, body: Any) -> Any:
    """The error code in a provider's own envelope, read as its documentation shows it."""
    if provider == "qingcloud":
        return body["ret_code"]
    if provider == "tencent":
        return body["Response"]["Error"]["Code"]
    if provider == "ksyun":
        return body["Error"]["Code"]
    return body["error_code"]  # the Huawei API gateway


@dataclass(frozen=True)
class Expect:
    throttle: tuple[int, Any]  # HTTP status and envelope code of the throttling answer
    error: Any  # the envelope code error_200 carries
    extras: dict[str, tuple[int, Any]] = field(default_factory=dict)


EXPECT = {
    "qingcloud": Expect((200, 2500), 5000, {"internal": (200, 5000), "server_busy": (200, 5100)}),
    "tencent": Expect(
        (200, "RequestLimitExceeded"),
        "InternalError",
        {"internal": (200, "InternalError"), "server_busy": (200, "ServiceUnavailable")},
    ),
    "ksyun": Expect(
        (503, "RequestLimitExceeded"),
        "InternalError",
        {"internal": (400, "InternalError"), "server_busy": (400, "ServiceUnavailable")},
    ),
    "huawei-iec": Expect((429, "APIGW.0308"), "APIGW.0202"),
    "huawei-ims-v1": Expect((429, "APIGW.0308"), "APIGW.0202"),
}


class Harness:
    """One provider's emulator, a source pointing at it and its real collector."""

    def __init__(self, provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.provider = provider
        emulated = PROVIDERS.emulated(provider)
        self.running: Running = emulated.start(images=IMAGES, seed=3, name=f"faults-{provider}")
        for name, value in self.running.env.items():
            monkeypatch.setenv(name, value)
        self.single = self.running.server.app.paging == "single"  # type: ignore[attr-defined]
        self.marker = self.running.server.app.paging == "marker"  # type: ignore[attr-defined]
        self.fault_page = 1 if self.single else 2
        self.answers: list[httpx.Response] = []

    @property
    def app(self) -> Any:
        return self.running.server.app

    def listed(self) -> list[str]:
        """The ids a fault-free listing shows now, in order."""
        pages, collector = self.collect()
        assert collector.complete
        return _ids(pages, self.app.catalogue.id_key)

    def collect(self, attempts: int = 1) -> tuple[list[Page], Any]:
        table = dict(self.running.source)
        if not self.single:
            table["page_size"] = PAGE_SIZE
            # One request at a time: these tests read the last answer received. Pages in
            # flight meet every fault in test_fault_matrix.py (and tests/unit/test_paging.py).
            table["concurrency"] = 1
        source = parse_settings({"sources": [table]}, None).sources[0]
        policy = RetryPolicy(max_attempts=attempts, base_delay_s=0.01, max_delay_s=0.02)
        collector = PROVIDERS[self.provider].collector(source, policy, None)
        collector._client.event_hooks["response"].append(self.answers.append)  # type: ignore[attr-defined]
        try:
            return list(collector.pages()), collector
        finally:
            collector.close()

    def fail(self, kind: str, **rule: Any) -> None:
        rule.setdefault("page", self.fault_page)
        self.app.faults.add(FaultRule(kind=kind, **rule))

    def last_json(self) -> Any:
        return json.loads(self.answers[-1].read())


@pytest.fixture(params=sorted(EXPECT))
def emu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    harness = Harness(request.param, monkeypatch)
    yield harness
    harness.running.stop()


def _error(harness: Harness, attempts: int = 1) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        harness.collect(attempts)
    err = info.value
    assert err.page == harness.fault_page, err
    assert err.source == f"faults-{harness.provider}"
    return err


def _retried_past(harness: Harness, kind: str) -> None:
    """A transient fault on one attempt: the retry gets the page and the listing completes."""
    listed = harness.listed()
    harness.fail(kind, times=1)
    pages, collector = harness.collect(attempts=2)
    assert collector.complete
    assert _ids(pages, harness.app.catalogue.id_key) == listed


# -- answered instead of the page -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["http_500", "http_503", "http_429"])
def test_gateway_errors_are_transient(emu: Harness, kind: str) -> None:
    emu.fail(kind, times=1)
    err = _error(emu)
    status = int(kind[-3:])
    assert emu.answers[-1].status_code == status
    assert emu.answers[-1].headers["content-type"].startswith("text/html")
    if kind == "http_429":
        assert emu.answers[-1].headers["retry-after"] == "1"
    assert isinstance(err, RetriesExhausted)
    assert isinstance(err.__cause__, ProviderTransientError)
    assert err.code == str(status)
    _retried_past(emu, kind)


def test_throttle_is_the_providers_own_answer(emu: Harness) -> None:
    emu.fail("throttle", times=1)
    err = _error(emu)
    status, code = EXPECT[emu.provider].throttle
    assert emu.answers[-1].status_code == status
    assert _code(emu.provider, emu.last_json()) == code
    assert isinstance(err.__cause__, ProviderTransientError)
    assert err.code == str(code)
    _retried_past(emu, "throttle")


def test_rate_limit_is_answered_with_the_providers_throttle(emu: Harness) -> None:
    """Beyond ``rate_limit_per_s`` calls in one second (the clock stands still here) every
    emulator refuses the call as its provider throttles; Tencent names the account limit."""
    now = emu.app.clock()
    emu.app.clock, emu.app.rate_limit_per_s = (lambda: now), 1
    if emu.single:
        emu.collect()  # the one call of the listing uses up the second
        emu.fault_page = 1
    err = _error(emu)
    status, code = EXPECT[emu.provider].throttle
    assert emu.answers[-1].status_code == status
    answered = _code(emu.provider, emu.last_json())
    assert answered == (
        "RequestLimitExceeded.UinLimitExceeded" if emu.provider == "tencent" else code
    )
    assert isinstance(err.__cause__, ProviderTransientError)
    emu.app.clock = lambda: now + 1.0  # a second later the window has room for one call
    if emu.single:
        assert emu.collect()[1].complete
    else:
        _error(emu)  # page 1 answered, page 2 refused again


def test_error_envelope_with_200_is_an_error(emu: Harness) -> None:
    emu.fail("error_200", times=1)
    err = _error(emu)
    assert emu.answers[-1].status_code == 200
    assert _code(emu.provider, emu.last_json()) == EXPECT[emu.provider].error
    assert err.code == str(EXPECT[emu.provider].error)


def test_extra_kinds(emu: Harness) -> None:
    extras = EXPECT[emu.provider].extras
    assert emu.app.fault_kinds - {"error"} >= set(extras)
    for kind, (status, code) in extras.items():
        emu.fail(kind, times=1)
        err = _error(emu)
        assert (emu.answers[-1].status_code, _code(emu.provider, emu.last_json())) == (status, code)
        assert err.code == str(code)


@pytest.mark.parametrize("kind", ["html_200", "malformed"])
def test_unparsable_bodies_are_malformed(emu: Harness, kind: str) -> None:
    emu.fail(kind, times=1)
    err = _error(emu)
    assert emu.answers[-1].status_code == 200
    with pytest.raises(ValueError):
        json.loads(emu.answers[-1].read())
    assert isinstance(err, MalformedResponse), err
    assert "not JSON" in str(err)


@pytest.mark.parametrize("kind", ["truncated", "reset"])
def test_broken_connections_are_transient(emu: Harness, kind: str) -> None:
    emu.fail(kind, times=1)
    err = _error(emu)
    assert isinstance(err, RetriesExhausted)
    assert isinstance(err.__cause__, ProviderTransientError)
    if kind == "truncated":  # the client saw fewer bytes than announced
        assert "RemoteProtocolError" in str(err), err
    _retried_past(emu, kind)


def test_latency_delays_but_answers(emu: Harness) -> None:
    emu.fail("latency", latency_s=0.05, times=1)
    pages, collector = emu.collect()
    assert collector.complete
    assert [i for p in pages for i in p.items] and sum(len(p.items) for p in pages) == len(
        emu.listed()
    )


# -- a different page -------------------------------------------------------------------------


def _ids(pages: list[Page], key: str) -> list[str]:
    return [i[key] for p in pages for i in p.items]


def test_empty_page(emu: Harness) -> None:
    listed = emu.listed()
    emu.fail("empty_page", times=1)
    pages, collector = emu.collect()
    assert pages[emu.fault_page - 1].items == []
    assert len(pages) == emu.fault_page  # an empty page ends every kind of listing
    if not emu.single:
        # The total says there is more, or the marker listing's end check finds an image
        # not listed: either way the listing knows it is not complete.
        assert pages[-1].total == (None if emu.marker else len(listed))
        assert not collector.complete


def test_short_page(emu: Harness) -> None:
    listed = emu.listed()
    emu.fail("short_page", times=1)
    pages, collector = emu.collect()
    full = len(listed) if emu.single else PAGE_SIZE
    assert len(pages[emu.fault_page - 1].items) == full // 2
    if not emu.single:
        # Paging continues from what it saw (a marker listing once its end check found
        # more), so nothing is lost.
        assert _ids(pages, emu.app.catalogue.id_key) == listed
        assert collector.complete


def test_duplicate_ids_across_pages(emu: Harness) -> None:
    emu.fail("duplicate", times=1)
    pages, _ = emu.collect()
    key = emu.app.catalogue.id_key
    if emu.single:
        assert len(pages) == 1  # nothing before the only page to repeat
        return
    assert pages[1].items[0][key] == pages[0].items[-1][key]


def test_page_cap(emu: Harness) -> None:
    listed = emu.listed()
    emu.fail("page_cap", page=None, value=4)
    pages, collector = emu.collect()
    assert len(pages[0].items) == 4
    assert all(len(p.items) <= 4 for p in pages)
    if not emu.single:
        assert _ids(pages, emu.app.catalogue.id_key) == listed
        assert collector.complete


def test_listing_cap(emu: Harness) -> None:
    listed = emu.listed()
    emu.fail("listing_cap", page=None, value=15)
    pages, collector = emu.collect()
    assert _ids(pages, emu.app.catalogue.id_key) == listed[:15]
    if not emu.single:
        assert pages[0].total == (None if emu.marker else len(listed))
        assert not collector.complete


# -- the catalogue changes after the answer ---------------------------------------------------


@pytest.mark.parametrize(("kind", "change"), [("shrink", -1), ("insert", 1), ("remove", -1)])
def test_catalogue_changes_mid_listing(emu: Harness, kind: str, change: int) -> None:
    before = emu.listed()
    emu.fail(kind, page=1, times=1)
    if emu.marker and kind == "shrink":
        # The next request's marker is gone: Glance refuses it, and the run fails.
        err = _error(emu)
        assert isinstance(err, ProviderTerminalError)
        assert emu.answers[-1].status_code == 400
        assert "marker" in str(err).lower()
    else:
        _pages, collector = emu.collect()
        if not emu.single and not emu.marker:
            assert not collector.complete
            assert "total changed" in (collector.incomplete_reason or "")
    if emu.single and kind == "remove":
        change = 0  # one answer is the whole listing: no next page to take an image from
    assert len(emu.listed()) == len(before) + change


# -- the control API and the handle ---------------------------------------------------------


def test_control_api_refuses_what_it_cannot_apply(emu: Harness) -> None:
    control = f"{emu.running.server.url}/_emulator"
    before = len(emu.app.catalogue)
    for path, body in (
        ("mutate", {"now": "2024-01-01T00:00:00Z"}),  # a Python-only argument of mutate
        ("mutate", {"add": -1}),
        ("faults", [{"kind": "page_cap"}]),  # a cap needs its size
        ("faults", [{"kind": "shrink", "value": 3}]),
    ):
        answer = httpx.post(f"{control}/{path}", json=body)
        assert answer.status_code == 400, (path, body, answer.text)
        assert answer.json()["error"]
    assert len(emu.app.catalogue) == before
    assert httpx.post(f"{control}/faults", json=[{"kind": "page_cap", "value": 3}]).is_success
    with pytest.raises(ValueError, match="count of items"):
        FaultRule(kind="listing_cap")


def test_an_image_dropped_twice_mid_listing_is_dropped_once(emu: Harness) -> None:
    """Two requests answered from one cached view may both take the same image away."""
    first = emu.listed()[0]
    emu.app.catalogue.drop(first)
    emu.app.catalogue.drop(first)
    assert first not in emu.listed()


def test_running_repr_shows_no_credential(emu: Harness) -> None:
    shown = repr(emu.running)
    assert emu.running.env and not any(value in shown for value in emu.running.env.values())
    secret = list(emu.app.credentials().values())[-1]  # the secret or password it accepts
    assert secret not in repr(emu.app) and type(emu.app).__name__ in repr(emu.app)
