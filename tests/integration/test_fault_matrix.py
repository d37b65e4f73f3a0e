"""The fault matrix: every engine fault at every page position for every provider, each a
real sync over real HTTP into PostgreSQL, after a clean sync of the same catalogue.

What every trial must show (docs/operations.md, "What a run guarantees"):

- no image is marked gone, and the run writes no history interval and no event: the
  catalogue did not change, or changed only by the fault's own hand mid-listing, which a
  run must never mistake for images that left;
- no stored image changes: its fields, status and fingerprint are as before. The one thing
  a run may write is the count of complete listings an image was missing from
  (``missing_runs``), where the listing really lacked it: an image the fault itself took
  out of the catalogue, or a one-response listing (Kingsoft) cut short with nothing to
  tell it by. That is what ``[sync] confirm_gone_runs`` is for: one such listing never
  marks anything gone;
- a run that could not list everything is failed, or succeeded with the listing marked
  incomplete, and says which page; a failed run writes nothing at all.

Trials that end complete had the fault retried away or harmless (latency, a clamped page
size that paging follows, an image inserted after its page was read).

Offset listings run with 8 pages in flight (``concurrency = 8``), so every fault also meets
pages answered out of order; marker and one-answer listings page one at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory.config import Settings, SourceConfig, parse_settings
from inventory.emulation import FaultRule, Running
from inventory.emulation.faults import CHANGE_KINDS, FAULT_KINDS
from inventory.http import RetryPolicy
from inventory.providers import PROVIDERS
from inventory.sync import RunResult, sync_source

from .helpers import fetch_all, row_versions

IMAGES = 52  # a default listing shows 43 to 52 of them, by provider
PAGE_SIZE = 10
PAGES = 5  # at least, for every provider but Kingsoft (one answer)
SEED = 8
RETRY = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02)
VALUES = {"page_cap": 3, "listing_cap": 25}
#: The image columns a faulted run must never change (all but the missing count).
DATA = (
    "provider_image_id, name, status, raw_status, architecture, size_gb, min_disk_gb, "
    "word_size, fingerprint, gone_at, last_changed_run_id, raw"
)


def _kinds(provider: str) -> list[str]:
    """The engine's kinds and the provider dialect's own answers (e.g. ``internal``)."""
    app = PROVIDERS.emulated(provider).app
    return sorted(FAULT_KINDS | (app.answers.keys() - {"error"}))


CASES = [(p, k) for p in PROVIDERS for k in _kinds(p)]


class Trial:
    """One provider's catalogue, synced clean once, then one faulted sync per page."""

    def __init__(self, provider: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.provider, self.engine, self.monkeypatch = provider, engine, monkeypatch
        self.name = f"matrix-{provider}"
        self.running: Running | None = None
        self.single = PROVIDERS.emulated(provider).app.paging == "single"
        self.settings = Settings(path=None)  # confirm_gone_runs as shipped (2)

    def start(self) -> Running:
        """A fresh emulator over the same catalogue (a fault may have changed the last)."""
        self.stop()
        running = PROVIDERS.emulated(self.provider).start(images=IMAGES, seed=SEED, name=self.name)
        for name, value in running.env.items():
            self.monkeypatch.setenv(name, value)
        self.running = running
        return running

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None

    def sync(self, *faults: FaultRule) -> RunResult:
        running = self.start()
        for rule in faults:
            running.server.app.faults.add(rule)  # type: ignore[attr-defined]
        return sync_source(self.engine, self.settings, self.source(), policy=RETRY)

    def source(self) -> SourceConfig:
        assert self.running is not None
        table = dict(self.running.source)
        if not self.single:
            table["page_size"] = PAGE_SIZE
            table["concurrency"] = 8  # offset listings: pages in flight, past every fault
        return parse_settings({"sources": [table]}, None).sources[0]

    def listed_now(self) -> set[str]:
        """The ids a fault-free listing of the (maybe fault-changed) catalogue shows."""
        assert self.running is not None
        self.running.server.app.faults.clear()  # type: ignore[attr-defined]
        collector = PROVIDERS[self.provider].collector(self.source(), RETRY, None)
        try:
            pages = list(collector.pages())
            assert collector.complete
        finally:
            collector.close()
        key = self.running.catalogue.id_key
        return {str(item[key]) for page in pages for item in page.items}


def _data(engine: Engine) -> dict[tuple[int, str], tuple[Any, ...]]:
    rows = fetch_all(engine, f"SELECT source_id, {DATA} FROM images")
    return {(r[0], r[1]): tuple(r) for r in rows}


@pytest.fixture
def trial(
    request: pytest.FixtureRequest, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Trial]:
    t = Trial(request.param, engine, monkeypatch)
    yield t
    t.stop()


@pytest.mark.parametrize(("trial", "kind"), CASES, indirect=["trial"])
def test_one_fault_at_every_page_changes_nothing_stored(trial: Trial, kind: str) -> None:
    page, pages, clean = 1, 1, False
    while page <= pages:
        if not clean:  # a source of its own, synced clean, until a trial changes it
            trial.name = f"matrix-{trial.provider}-{page}"
            first = trial.sync()
            assert (first.status, first.listing_complete) == ("succeeded", True)
            assert first.inserted == first.images_seen > PAGE_SIZE * 3
            assert first.pages == 1 if trial.single else first.pages >= PAGES
            pages = first.pages
        clean = _one_fault(trial, kind, page)
        page += 1


def _one_fault(trial: Trial, kind: str, page: int) -> bool:
    """One faulted sync and its checks; whether it left the source as it found it."""
    rule = FaultRule(kind=kind, page=page, value=VALUES.get(kind), latency_s=0.01)
    before, data = row_versions(trial.engine), _data(trial.engine)
    result = trial.sync(rule)
    where = f"{trial.provider} {kind} page {page}: {result}"
    after, now = row_versions(trial.engine), _data(trial.engine)
    # Stored images are as they were; only an image the fault really added is new.
    assert {i: now[i] for i in data} == data, where
    added = {image_id for _, image_id in set(now) - set(data)}
    missing = {
        r.provider_image_id
        for r in fetch_all(
            trial.engine,
            "SELECT i.provider_image_id FROM images i JOIN sources s ON s.id = i.source_id"
            " WHERE i.missing_runs > 0 AND s.name = :name",
            name=trial.name,
        )
    }
    listed = trial.listed_now() if added or missing else set()
    assert added <= listed and len(added) == result.inserted, where
    events = fetch_all(
        trial.engine, "SELECT kind FROM image_events WHERE run_id = :r", r=result.run_id
    )
    assert [e.kind for e in events] == ["appeared"] * result.inserted, where
    history = after["image_status_history"] - before["image_status_history"]
    assert len(history) == result.inserted, where  # the new images' first intervals
    assert before["image_status_history"] <= after["image_status_history"], where
    assert not fetch_all(trial.engine, "SELECT 1 FROM images WHERE gone_at IS NOT NULL"), where
    if result.status == "failed":
        assert after == before, where  # a failed run writes nothing at all
        named = rf"\bpage {page}\b" if kind not in CHANGE_KINDS else r"\bpage \d+"
        assert re.search(named, result.error or ""), where
        assert f"source {trial.name!r}" in (result.error or ""), where
    else:
        assert result.status == "succeeded", where
        if not result.listing_complete and not trial.single:  # Kingsoft: "the one answer"
            assert re.search(r"\bpage \d+", result.incomplete_reason or ""), where
    cut_short = trial.single and kind in ("short_page", "page_cap", "listing_cap")
    assert cut_short or not missing & listed, where  # missing ones really left the listing
    return after == before and not missing
