"""Prometheus metrics after real runs: emulator over HTTP, real PostgreSQL, real /metrics.

The runs are made by ``sync_source`` against the QingCloud emulator; the expected values
come from what the test did (two successes and a failure for one source, one success for
another) and from the database rows those runs wrote, never from the metrics code itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from inventory.config import Settings
from inventory.db import make_engine
from inventory.http import RetryPolicy
from inventory.metrics import count_skipped, serve_metrics, skipped_counts, write_textfile
from inventory.records import ImageStatus
from inventory.sync import sync_source

from .helpers import AT_ONCE, Emulator, fetch_all

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
A, B = "qy-metrics-a", "qy-metrics-b"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(exposition: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = float(sample.value)
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


def epoch(ts: Any) -> float:
    return float(ts.timestamp())


@pytest.fixture
def runs(engine: Engine, emulator: Emulator) -> Iterator[dict[str, Any]]:
    """Source A: success, success with changes, failure. Source B: one success."""
    emu = emulator.reset(images=120, page_size=50)
    settings = AT_ONCE  # one listing marks gone: the series below count per run

    def sync(name: str) -> Any:
        return sync_source(engine, settings, emu.source(name), policy=FAST)

    first = sync(A)
    assert first.status == "succeeded", first.error
    changes = emu.mutate(seed=5, deprecate=4, cease=3, remove=5)
    second = sync(A)
    assert second.status == "succeeded", second.error
    assert second.disappeared == 5
    other = sync(B)
    assert other.status == "succeeded", other.error
    emu.fail(page=2, kind="http_503")  # every attempt at page 2 fails
    failed = sync(A)
    assert failed.status == "failed"
    yield {"first": first, "second": second, "other": other, "failed": failed, **changes}


def check_series(samples: Samples, engine: Engine, runs: dict[str, Any]) -> None:
    """The per-source series match what the runs did and what the database holds."""
    a = {"source": A, "provider": "qingcloud"}
    b = {"source": B, "provider": "qingcloud"}
    assert value(samples, "inventory_database_up") == 1

    # Last outcome: A's last run failed, B's succeeded; nothing is running.
    assert value(samples, "inventory_last_run_status", **a, status="failed") == 1
    assert value(samples, "inventory_last_run_status", **a, status="succeeded") == 0
    assert value(samples, "inventory_last_run_status", **a, status="aborted") == 0
    assert value(samples, "inventory_last_run_status", **b, status="succeeded") == 1
    assert value(samples, "inventory_last_run_status", **b, status="failed") == 0
    assert value(samples, "inventory_run_in_progress", **a) == 0

    # Counters over the runs table.
    assert value(samples, "inventory_runs_total", **a, status="succeeded") == 2
    assert value(samples, "inventory_runs_total", **a, status="failed") == 1
    assert value(samples, "inventory_runs_total", **a, status="aborted") == 0
    assert value(samples, "inventory_runs_total", **b, status="succeeded") == 1
    assert value(samples, "inventory_runs_total", **b, status="failed") == 0
    a_runs = [runs["first"], runs["second"], runs["failed"]]
    assert value(samples, "inventory_pages_fetched_total", **a) == sum(r.pages for r in a_runs)
    assert value(samples, "inventory_retries_total", **a) == sum(r.retries for r in a_runs)
    assert runs["failed"].retries > 0  # the 503s were retried before the run gave up
    assert value(samples, "inventory_images_disappeared_total", **a) == 5
    assert value(samples, "inventory_images_disappeared_total", **b) == 0

    # The last run's own figures and times, against its row.
    row = fetch_all(
        engine,
        "SELECT started_at, finished_at, pages, retries FROM sync_runs WHERE id = :r",
        r=runs["failed"].run_id,
    )[0]
    assert value(samples, "inventory_last_run_start_timestamp_seconds", **a) == pytest.approx(
        epoch(row.started_at)
    )
    assert value(samples, "inventory_last_run_finish_timestamp_seconds", **a) == pytest.approx(
        epoch(row.finished_at)
    )
    assert value(samples, "inventory_last_run_duration_seconds", **a) == pytest.approx(
        (row.finished_at - row.started_at).total_seconds()
    )
    assert value(samples, "inventory_last_run_pages", **a) == row.pages == runs["failed"].pages
    assert value(samples, "inventory_last_run_retries", **a) == row.retries
    assert value(samples, "inventory_last_run_listing_complete", **a) == 0
    assert value(samples, "inventory_last_run_listing_complete", **b) == 1
    assert value(samples, "inventory_last_run_disappearance_blocked", **a) == 0

    # Last success of A is its second run, not the failed third.
    ok = fetch_all(
        engine, "SELECT finished_at FROM sync_runs WHERE id = :r", r=runs["second"].run_id
    )[0]
    assert value(samples, "inventory_last_success_timestamp_seconds", **a) == pytest.approx(
        epoch(ok.finished_at)
    )

    # Images by status equal the database's counts; every status is present.
    for name, labels in ((A, a), (B, b)):
        counts = {
            r.status: r.n
            for r in fetch_all(
                engine,
                """SELECT i.status, count(*) AS n FROM images i JOIN sources s
                    ON s.id = i.source_id WHERE s.name = :s AND i.gone_at IS NULL
                    GROUP BY i.status""",
                s=name,
            )
        }
        for status in ImageStatus:
            got = value(samples, "inventory_images", **labels, status=status.value)
            assert got == counts.get(status.value, 0), (name, status)
    # A: 120 listed, 5 removed; the 4 deprecated and 3 ceased are among the active ones.
    active_a = sum(value(samples, "inventory_images", **a, status=s.value) for s in ImageStatus)
    assert active_a == 115
    assert value(samples, "inventory_images", **a, status="deprecated") >= 4
    assert value(samples, "inventory_images", **a, status="ceased") >= 3
    assert value(samples, "inventory_images_gone", **a) == 5
    # B synced after the mutation: it never saw the removed images.
    assert value(samples, "inventory_images_gone", **b) == 0
    assert value(samples, "inventory_images_missing", **a) == 0  # AT_ONCE: gone at once
    assert value(samples, "inventory_source_info", **a, location="pek3a", account="") == 1


def test_metrics_endpoint_after_real_runs(engine: Engine, runs: dict[str, Any]) -> None:
    before = skipped_counts().get(A, 0)
    count_skipped(A)
    with serve_metrics(engine, 0) as server:
        response = httpx.get(server.url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse(response.text)
    check_series(samples, engine, runs)
    assert value(samples, "inventory_sync_skipped_total", source=A) == before + 1
    # The long-running server also exports the process's own resource use.
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)


def test_textfile_has_the_same_series(engine: Engine, runs: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "inventory.prom"
    write_textfile(engine, path)
    samples = parse(path.read_text())
    check_series(samples, engine, runs)
    assert not any(name.startswith("process_") for name, _ in samples)
    assert [p.name for p in tmp_path.iterdir()] == ["inventory.prom"]  # no temp file left


def test_run_in_progress_keeps_the_last_outcome(engine: Engine, runs: dict[str, Any]) -> None:
    # A run of B that has started and not finished (or whose process died).
    with engine.begin() as conn:
        conn.execute(
            text(
                """INSERT INTO sync_runs (source_id, trigger, started_at, status)
                   SELECT id, 'cli', now(), 'running' FROM sources WHERE name = :s"""
            ),
            {"s": B},
        )
    with serve_metrics(engine, 0) as server:
        samples = parse(httpx.get(server.url, timeout=10).text)
    b = {"source": B, "provider": "qingcloud"}
    assert value(samples, "inventory_run_in_progress", **b) == 1
    assert value(samples, "inventory_last_run_status", **b, status="succeeded") == 1
    # A running run is not yet counted: counters only move when a run finishes.
    assert value(samples, "inventory_runs_total", **b, status="succeeded") == 1
    assert not any(
        labels and dict(labels).get("status") == "running"
        for name, labels in samples
        if name in ("inventory_runs_total", "inventory_last_run_status")
    )


def test_textfile_skip_counter_continues_across_processes(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "inventory.prom"
    # What an earlier process (an earlier cron run) left in the file.
    path.write_text(
        "# HELP inventory_sync_skipped_total x\n"
        "# TYPE inventory_sync_skipped_total counter\n"
        'inventory_sync_skipped_total{source="cron-src"} 5.0\n'
    )
    mine = skipped_counts().get("cron-src", 0)
    write_textfile(engine, path)
    first = value(parse(path.read_text()), "inventory_sync_skipped_total", source="cron-src")
    assert first == 5 + mine

    count_skipped("cron-src")
    write_textfile(engine, path)
    write_textfile(engine, path)  # writing again does not count the same skip twice
    again = value(parse(path.read_text()), "inventory_sync_skipped_total", source="cron-src")
    assert again == first + 1


def test_unreachable_database_still_answers(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    dead = make_engine("postgresql+psycopg://inventory@127.0.0.1:1/inventory")
    try:
        count_skipped("somewhere")
        with serve_metrics(dead, 0) as server:
            response = httpx.get(server.url, timeout=30)
        assert response.status_code == 200
        samples = parse(response.text)
        assert value(samples, "inventory_database_up") == 0
        assert value(samples, "inventory_sync_skipped_total", source="somewhere") >= 1
        assert not any(name.startswith("inventory_last_run") for name, _ in samples)

        write_textfile(dead, tmp_path / "x.prom")
        assert value(parse((tmp_path / "x.prom").read_text()), "inventory_database_up") == 0
    finally:
        dead.dispose()


def test_missing_images_are_a_gauge_until_confirmed_gone(
    engine: Engine, emulator: Emulator, tmp_path: Path
) -> None:
    emu = emulator.reset(images=60, page_size=30)
    labels = {"source": A, "provider": "qingcloud"}
    settings = Settings(path=None)  # the default: gone after two complete listings

    def scrape() -> Samples:
        sync_source(engine, settings, emu.source(A), policy=FAST)
        write_textfile(engine, tmp_path / "inventory.prom")
        return parse((tmp_path / "inventory.prom").read_text())

    scrape()
    emu.mutate(seed=2, remove=3)
    missing = scrape()
    assert value(missing, "inventory_images_missing", **labels) == 3
    assert value(missing, "inventory_images_gone", **labels) == 0
    confirmed = scrape()
    assert value(confirmed, "inventory_images_missing", **labels) == 0
    assert value(confirmed, "inventory_images_gone", **labels) == 3
