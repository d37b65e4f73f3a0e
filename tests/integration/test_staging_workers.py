"""A large listing staged by worker processes: the same rows, checks and outcome as the
sync's own process, and a worker's death fails the run without losing anything."""

from __future__ import annotations

import os
import signal
from dataclasses import asdict, replace
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory import staging
from inventory.sync import RunResult, sync_source

from .helpers import AT_ONCE, Emulator, fetch_all, row_versions
from .test_sync import FAST

WORKERS = replace(AT_ONCE, sync=replace(AT_ONCE.sync, workers=2))
IN_PROCESS = replace(AT_ONCE, sync=replace(AT_ONCE.sync, workers=0))

#: What a run stores of an image, its database ids and times left out.
STORED = """
    SELECT i.provider_image_id, i.name, i.description, i.status, i.raw_status, i.os_family,
           i.os_name, i.platform, i.architecture, i.word_size, i.size_gb, i.min_disk_gb,
           i.visibility, i.owner, i.image_type, i.provider_created_at, i.tags, i.raw,
           i.fingerprint, i.gone_at IS NULL AS listed
      FROM images i JOIN sources s ON s.id = i.source_id
     WHERE s.name = :name ORDER BY i.provider_image_id
"""


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every listing goes to the workers, its small pages a few together; returns the
    sizes of the pools asked for."""
    monkeypatch.setattr(staging, "POOL_MIN_IMAGES", 1)
    monkeypatch.setattr(staging, "POOL_MIN_BUSY", 0.0)
    monkeypatch.setattr(staging, "SAMPLE_IMAGES", 0)
    monkeypatch.setattr(staging, "TASK_IMAGES", 50)
    asked: list[int] = []
    real = staging._pool

    def counted(workers: int) -> Any:
        asked.append(workers)
        return real(workers)

    monkeypatch.setattr(staging, "_pool", counted)
    return asked


def _sync(engine: Engine, emu: Emulator, name: str, **kw: Any) -> RunResult:
    settings = WORKERS if name == "by-workers" else IN_PROCESS
    return sync_source(engine, settings, emu.source(name), policy=FAST, **kw)


def _outcome(result: RunResult) -> dict[str, Any]:
    """The run's result but for what differs by source: its name, run id and duration."""
    out = asdict(result)
    for key in ("source", "run_id", "duration_s"):
        del out[key]
    return {k: v.replace("by-workers", "here") if isinstance(v, str) else v for k, v in out.items()}


def test_workers_stage_what_the_sync_process_would(
    engine: Engine, emulator: Emulator, pooled: list[int]
) -> None:
    """Unknown statuses, an image left out, text that COPY must escape, then churn: both
    ways store the same rows and report the same run, and the workers stage short rows
    for what is stored exactly so."""
    emu = emulator.reset(images=300, page_size=40)
    ids = sorted(emu.visible_ids())
    for image_id in ids[:3]:
        emu.edit(image_id, status="quarantined")
    emu.edit(ids[3], status=None)  # left out: the listing is incomplete
    emu.edit(ids[4], image_name="tab\there, back\\slash, new\nline, \\N, cr\rend")

    for step in range(3):
        if step == 2:
            emu.mutate(seed=9, deprecate=7, cease=2, remove=4, add=5, rename=3)
        here = _sync(engine, emu, "here")
        workers = _sync(engine, emu, "by-workers")
        assert here.status == "succeeded", here.error
        assert _outcome(workers) == _outcome(here)
        assert fetch_all(engine, STORED, name="by-workers") == fetch_all(
            engine, STORED, name="here"
        )
    assert pooled and set(pooled) == {2}  # the workers did stage them
    escaped = fetch_all(engine, "SELECT DISTINCT name FROM images WHERE name LIKE 'tab%'")
    assert [r.name for r in escaped] == ["tab\there, back\\slash, new\nline, \\N, cr\rend"]


def test_a_repeat_is_placed_on_its_page_when_pages_go_to_the_workers_together(
    engine: Engine, emulator: Emulator, pooled: list[int]
) -> None:
    """Pages of 20 go to the workers three at a time; an id listed twice (page 5 begins
    with page 4's last image) is named on its page, as in the sync's own process, and the
    listing marks nothing gone."""
    emu = emulator.reset(images=200, page_size=20)
    for name in ("here", "by-workers"):
        assert _sync(engine, emu, name).inserted == 200
    emu.mutate(seed=4, remove=3)
    emu.fail(page=5, kind="duplicate", times=2)  # once for each source
    here, workers = _sync(engine, emu, "here"), _sync(engine, emu, "by-workers")
    assert pooled
    for result in (here, workers):
        assert result.status == "succeeded" and not result.listing_complete, result.error
        assert "the first repeat on page 5" in (result.incomplete_reason or "")
        assert (result.disappeared, result.missing) == (0, 0)
    assert _outcome(workers) == _outcome(here)


def test_a_resync_of_images_listed_as_stored_is_staged_in_the_sync_process(
    engine: Engine, emulator: Emulator, pooled: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Judged after its first page: a first sync needs every image normalized and goes
    to the workers; a re-sync whose images are mostly listed as stored (staged by their
    digest, not normalized) stays in the sync's process, churn or not."""
    monkeypatch.setattr(staging, "SAMPLE_IMAGES", 40)
    emu = emulator.reset(images=400, page_size=40)
    assert _sync(engine, emu, "by-workers").inserted == 400
    assert pooled == [2]
    pooled.clear()
    assert _sync(engine, emu, "by-workers").unchanged == 400
    emu.mutate(seed=2, deprecate=4, add=3)
    churn = _sync(engine, emu, "by-workers")
    assert (churn.changed, churn.inserted) == (4, 3), churn.error
    assert pooled == []


def test_a_worker_killed_mid_listing_fails_the_run_and_keeps_everything(
    engine: Engine, emulator: Emulator, pooled: list[int]
) -> None:
    emu = emulator.reset(images=400, page_size=20)
    assert _sync(engine, emu, "by-workers").inserted == 400
    changes = emu.mutate(seed=3, deprecate=5, remove=5)
    before = row_versions(engine)

    def kill_workers(_source: str, page: int, _staged: int, _total: int | None) -> None:
        pool = staging._workers
        if page == 3 and pool is not None:
            for process in list(pool._processes.values()):  # type: ignore[attr-defined]
                os.kill(process.pid, signal.SIGKILL)

    failed = _sync(engine, emu, "by-workers", progress=kill_workers)
    assert failed.status == "failed"
    assert "worker process staging the listing died" in (failed.error or "")
    assert "nothing of this listing was applied" in (failed.error or "")
    assert row_versions(engine) == before  # nothing stored was touched

    again = _sync(engine, emu, "by-workers")  # new workers
    assert again.status == "succeeded", again.error
    assert (again.changed, again.missing) == (5, 0) and again.disappeared == 5
    gone = fetch_all(
        engine,
        "SELECT provider_image_id FROM images WHERE gone_at IS NOT NULL ORDER BY 1",
    )
    assert [r.provider_image_id for r in gone] == sorted(changes["remove"])


def test_a_listing_at_a_clouds_pace_is_staged_in_the_sync_process(
    engine: Engine, emulator: Emulator, pooled: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large enough, but the pages come one at a time after 50 ms each: the process uses
    a small share of a core, so no worker is started for it (their start would cost more
    than they save); judged as busy, the same listing is staged by them."""
    monkeypatch.setattr(staging, "POOL_MIN_BUSY", 0.6)
    monkeypatch.setattr(staging, "SAMPLE_IMAGES", 600)
    emu = emulator.reset(images=1200, page_size=100)
    emu.fail(page=None, kind="latency", latency_s=0.05)
    one_at_a_time = replace(emu.source("paced"), concurrency=1)
    result = sync_source(engine, WORKERS, one_at_a_time, policy=FAST)
    assert (result.status, result.inserted) == ("succeeded", 1200), result.error
    assert pooled == []

    monkeypatch.setattr(staging, "POOL_MIN_BUSY", 0.0)
    result = sync_source(engine, WORKERS, replace(one_at_a_time, name="busy"), policy=FAST)
    assert (result.status, result.inserted) == ("succeeded", 1200), result.error
    assert pooled == [2]


def test_without_a_fork_server_a_large_listing_is_staged_here(
    engine: Engine, emulator: Emulator, pooled: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no process can start from a fork server (Windows), the sync stages it all in
    its own process instead of failing."""
    monkeypatch.setattr(staging.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    emu = emulator.reset(images=200, page_size=50)
    result = _sync(engine, emu, "by-workers")
    assert (result.status, result.inserted) == ("succeeded", 200), result.error
    assert pooled == [2]  # asked for, and none given
