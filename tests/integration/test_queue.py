"""Queue mode with real processes: `inventory scheduler` (mode = "queue") and `inventory
worker`s on one PostgreSQL, against the emulator over real HTTP.

Schedules are second-level; waits poll the database with generous deadlines; nothing
asserts how long anything took.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory.emulation import EmulatorServer
from inventory.providers.qingcloud.emulator import QingCloudApp

from .helpers import Emulator, fetch_all
from .test_cli import inventory
from .test_scheduler import Daemon, wait_for

QUEUE = """
[scheduler]
leader_poll_s = 0.5
misfire_grace_s = 5
stop_grace_s = {stop_grace_s}
mode = "queue"

[queue]
heartbeat_s = 0.5
stalled_after_s = 2
retry_base_s = 0.5
max_attempts = 3
"""


def write_config(
    tmp_path: Path,
    emu: Emulator,
    names: list[str],
    *,
    schedule: str | None = None,
    stop_grace_s: float = 30,
    extra: str = "",
) -> Path:
    emu.source()  # sets the credentials' environment variables
    blocks = [QUEUE.format(stop_grace_s=stop_grace_s)]
    scheduled = f'schedule = "{schedule}"\n' if schedule else ""
    blocks += [emu.toml(name, extra=scheduled + extra) for name in names]
    path = tmp_path / "inventory.toml"
    path.write_text("".join(blocks))
    return path


class Process(Daemon):
    """An `inventory` process (a worker, the scheduler) with its JSON log in a file."""

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(timeout=10)


def start(
    processes: list[Process], config: Path, tmp_path: Path, label: str, *args: str
) -> Process:
    process = Process(config, tmp_path / f"{label}.log", *args)
    processes.append(process)
    return process


def worker(processes: list[Process], config: Path, tmp_path: Path, label: str) -> Process:
    return start(processes, config, tmp_path, label, "worker", "--concurrency", "2")


def runs(engine: Engine) -> list[Any]:
    return fetch_all(
        engine,
        """SELECT r.*, s.name AS source FROM sync_runs r JOIN sources s ON s.id = r.source_id
            ORDER BY r.started_at""",
    )


def jobs(engine: Engine) -> list[Any]:
    return fetch_all(
        engine, "SELECT id, status::text AS status, attempts, args FROM procrastinate_jobs"
    )


def enqueue(config: Path, *names: str) -> str:
    """`inventory sync --enqueue`: what it printed."""
    done = inventory("sync", "--enqueue", *names, config=config)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_one_scheduler_three_workers_thirty_sources_each_runs_once_per_tick(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    emu = emulator.reset(images=30, page_size=30)
    names = [f"qy-{n:02d}" for n in range(30)]
    config = write_config(tmp_path, emu, names, schedule="*/4 * * * * *")
    workers = [worker(processes, config, tmp_path, f"w{n}") for n in range(3)]
    scheduler = start(processes, config, tmp_path, "scheduler", "scheduler")
    wait_for(lambda: len({r.source for r in runs(engine)}) == 30, "a run of every source")
    wait_for(lambda: min(_runs_per_source(engine, names).values()) >= 3, "three ticks each")
    assert scheduler.stop() == 0
    wait_for(lambda: all(j.status not in ("todo", "doing") for j in jobs(engine)), "idle queue")
    for process in workers:
        assert process.stop() == 0, process.log()

    queued = _events(scheduler, "sync_queued")
    skipped = _events(scheduler, "sync_skipped")
    assert not skipped, skipped[:3]  # every tick's job ran before the next tick
    done = runs(engine)
    # Exactly one run per tick of each source: one run per job the scheduler queued.
    per_source = {name: [r for r in done if r.source == name] for name in names}
    for name, rows in per_source.items():
        assert len(rows) == sum(1 for e in queued if e["source"] == name) >= 3, name
        assert {r.status for r in rows} == {"succeeded"} and {r.trigger for r in rows} == {
            "scheduler"
        }
        for before, after in itertools.pairwise(sorted(rows, key=lambda r: r.started_at)):
            assert before.finished_at <= after.started_at, name  # never two at once
    assert {r.pid for r in done} <= {w.pid for w in workers}
    assert len({r.pid for r in done}) == 3  # the three shared the work
    assert {j.status for j in jobs(engine)} == {"succeeded"}


def _runs_per_source(engine: Engine, names: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(names, 0)
    for row in runs(engine):
        if row.status == "succeeded":
            counts[row.source] += 1
    return counts


def _events(process: Process, event: str) -> list[dict[str, Any]]:
    return [line for line in process.events() if line.get("event") == event]


def test_a_worker_killed_mid_sync_leaves_the_database_consistent_and_another_retries(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    emu = emulator.reset(images=60, page_size=20)
    emu.fail(page=2, kind="latency", latency_s=30.0, times=1)  # the first run stalls there
    config = write_config(tmp_path, emu, ["qy-slow"])
    enqueue(config)
    victim = worker(processes, config, tmp_path, "victim")
    wait_for(lambda: any(r.status == "running" for r in runs(engine)), "the run in flight")
    emu.wait_for_requests(2)
    victim.proc.kill()
    victim.proc.wait(timeout=10)
    assert [r.status for r in runs(engine)] == ["running"]  # what kill -9 leaves
    assert fetch_all(engine, "SELECT count(*) AS n FROM images")[0].n == 0  # nothing applied

    rescuer = worker(processes, config, tmp_path, "rescuer")
    wait_for(lambda: [j.status for j in jobs(engine)] == ["succeeded"], "the job retried")
    assert rescuer.stop() == 0
    killed, retried = runs(engine)
    assert killed.status == "aborted" and f"pid {victim.pid}" in killed.error
    assert retried.status == "succeeded" and retried.pid == rescuer.pid
    assert retried.images_seen == 60
    counts = fetch_all(
        engine,
        """SELECT (SELECT count(*) FROM images) AS images,
                  (SELECT count(*) FROM image_status_history WHERE valid_to IS NULL) AS open,
                  (SELECT count(*) FROM image_events) AS events""",
    )[0]
    assert (counts.images, counts.open, counts.events) == (60, 60, 60)
    assert "queued again" in rescuer.log()


def test_sigterm_of_a_worker_loses_no_job(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    emu = emulator.reset(images=40, page_size=20)
    names = [f"qy-{n}" for n in range(5)]
    # The first two runs stall on page 2, past the worker's grace period.
    emu.fail(page=2, kind="latency", latency_s=4.0, times=2)
    config = write_config(tmp_path, emu, names, stop_grace_s=0.5)
    enqueue(config)
    first = worker(processes, config, tmp_path, "first")
    wait_for(lambda: sum(r.status == "running" for r in runs(engine)) == 2, "two runs in flight")
    emu.wait_for_requests(4)
    assert first.stop(signal.SIGTERM) == 0, first.log()
    stopped = [r for r in runs(engine) if r.pid == first.pid and r.status != "succeeded"]
    assert stopped and {r.status for r in stopped} == {"aborted"}
    assert all("shutdown requested" in r.error for r in stopped)
    assert {j.status for j in jobs(engine)} <= {"todo", "succeeded"}  # none lost or failed

    second = worker(processes, config, tmp_path, "second")
    wait_for(
        lambda: len(jobs(engine)) == 5 and {j.status for j in jobs(engine)} == {"succeeded"},
        "every job done",
    )
    assert second.stop() == 0
    succeeded = {r.source for r in runs(engine) if r.status == "succeeded"}
    assert succeeded == set(names)


class CountingApp(QingCloudApp):
    """The emulator, remembering when each request was admitted (its clock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admitted: list[float] = []
        self.refused = 0
        self._seen = threading.Lock()

    def _admit(self) -> None:
        try:
            super()._admit()
        except Exception:
            with self._seen:
                self.refused += 1
            raise
        with self._seen:
            self.admitted.append(time.monotonic())


def busiest_second(times: list[float]) -> int:
    """The most requests in any one-second window (sliding)."""
    ordered, most, start = sorted(times), 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_three_workers_keep_one_accounts_requests_within_its_limit(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    limit = 12
    emu = emulator.reset(images=150, page_size=10)
    assert emu.server is not None and emu.app is not None
    emu.server.stop()
    app = CountingApp(emu.app.catalogue, rate_limit_per_s=limit)
    emu.app, emu.server = app, EmulatorServer(app).start()
    names = [f"qy-{n}" for n in range(6)]  # one account, one zone: one budget
    config = write_config(tmp_path, emu, names, extra=f"rate_limit_per_s = {limit}")
    enqueue(config)
    workers = [worker(processes, config, tmp_path, f"w{n}") for n in range(3)]
    wait_for(
        lambda: len(jobs(engine)) == 6 and {j.status for j in jobs(engine)} == {"succeeded"},
        "every source synced",
    )
    for process in workers:
        assert process.stop() == 0
    assert len({r.pid for r in runs(engine)}) == 3  # all three were syncing at once
    assert len(app.admitted) >= 6 * 15  # every page of every source
    assert app.refused == 0  # the emulator never saw the account over its limit
    assert busiest_second(app.admitted) <= limit
    print(f"busiest second: {busiest_second(app.admitted)} requests (limit {limit})")


def test_jobs_lists_each_sources_jobs(engine: Engine, emulator: Emulator, tmp_path: Path) -> None:
    emu = emulator.reset(images=20, page_size=20)
    config = write_config(tmp_path, emu, ["qy-a", "qy-b"])
    enqueue(config)
    assert enqueue(config).splitlines() == ["qy-a: already waiting", "qy-b: already waiting"]
    listed = inventory("jobs", config=config)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[2:]]
    assert rows == [["qy-a", "1", "0", "0", "0", "never"], ["qy-b", "1", "0", "0", "0", "never"]]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_worker_serves_its_jobs_and_the_queue_depth_on_metrics(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    import httpx

    emu = emulator.reset(images=20, page_size=20)
    config = write_config(tmp_path, emu, ["qy-a", "qy-b", "qy-c"])
    emu.fail(page=1, kind="http_503", times=2)  # qy-a's run fails (2 attempts): retried
    enqueue(config, "qy-a")
    port = free_port()
    metered = start(processes, config, tmp_path, "metered", "worker", "--metrics-port", str(port))
    wait_for(lambda: [j.status for j in jobs(engine)] == ["succeeded"], "qy-a retried and done")
    enqueue(config, "qy-b", "qy-c")
    wait_for(lambda: {j.status for j in jobs(engine)} == {"succeeded"}, "all done")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert metered.stop() == 0
    worker = f'worker="{os.uname().nodename}:{metered.pid}"'

    def value(name: str, **labels: str) -> float:
        wanted = [worker, *(f'{k}="{v}"' for k, v in labels.items())]
        for line in text.splitlines():
            if line.startswith(name + "{") and all(label in line for label in wanted):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} {labels} not in /metrics")

    task = "inventory.sync"
    assert value("inventory_worker_jobs_total", task=task, outcome="succeeded") == 3
    assert value("inventory_worker_jobs_total", task=task, outcome="failed") == 1
    assert value("inventory_worker_jobs_total", task=task, outcome="retried") == 1
    assert 'inventory_queue_jobs{status="succeeded"} 3.0' in text
    assert 'inventory_queue_jobs{status="todo"} 0.0' in text
    assert "inventory_images{" in text  # and the inventory's own series

    import json

    listed = inventory("jobs", "--json", config=config)
    assert listed.returncode == 0, listed.stderr
    by_source = {row["source"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert (by_source["qy-a"]["failed"], by_source["qy-a"]["done"]) == (0, 1)
    assert by_source["qy-b"]["done"] == 1 and by_source["qy-b"]["last_error"] is None


def test_a_worker_sends_the_alerts_the_queue_asks_it_to(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    from inventory.config import load_settings
    from inventory.queue import enqueue_dispatch, make_app
    from inventory.sync import sync_source

    emu = emulator.reset(images=20, page_size=20)
    config = write_config(tmp_path, emu, ["qy-a"])
    config.write_text(
        config.read_text()
        + '\n[alerts]\nhealth_channels = []\n[alerts.channels.log]\ntype = "log"\n'
        + '[[alerts.rules]]\nname = "all"\nchannels = ["log"]\n'
    )
    settings = load_settings(config)
    source = settings.source("qy-a")
    assert sync_source(engine, settings, source).ok
    emu.mutate(seed=4, deprecate=1)
    assert sync_source(engine, settings, source).ok
    assert [r.status for r in fetch_all(engine, "SELECT status FROM alert_outbox")] == ["pending"]

    app = make_app(settings, engine).open()
    try:
        assert enqueue_dispatch(app) is not None
        assert enqueue_dispatch(app) is None  # one waits at a time
    finally:
        app.close()
    worker(processes, config, tmp_path, "alerts")
    wait_for(
        lambda: (
            [r.status for r in fetch_all(engine, "SELECT status FROM alert_outbox")] == ["sent"]
        ),
        "the alert sent by the worker",
    )


def test_finished_jobs_leave_the_queue_their_runs_stay(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    import asyncio

    from inventory.config import load_settings
    from inventory.queue import make_app, prune_finished

    emu = emulator.reset(images=20, page_size=20)
    config = write_config(tmp_path, emu, ["qy-a", "qy-b"])
    enqueue(config, "qy-a")
    only = worker(processes, config, tmp_path, "w")
    wait_for(lambda: [j.status for j in jobs(engine)] == ["succeeded"], "qy-a done")
    assert only.stop() == 0
    enqueue(config, "qy-b")  # waiting (or running): never deleted

    async def prune() -> None:
        async with make_app(load_settings(config), engine).open_async() as app:
            await prune_finished(app, hours=0)

    asyncio.run(prune())
    left = jobs(engine)
    assert [j.args["source"] for j in left] == ["qy-b"]
    assert [r.source for r in runs(engine)][:1] == ["qy-a"]  # its run is kept


def test_a_job_that_keeps_failing_ends_failed_and_jobs_shows_why(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    import json

    emu = emulator.reset(images=20, page_size=20)
    emu.fail(page=1, kind="http_503")  # every run fails: 3 runs ([queue] max_attempts)
    config = write_config(tmp_path, emu, ["qy-down"])
    enqueue(config)
    worker(processes, config, tmp_path, "w")
    wait_for(lambda: [j.status for j in jobs(engine)] == ["failed"], "the job given up")
    assert [r.status for r in runs(engine)] == ["failed"] * 3
    assert jobs(engine)[0].attempts == 3
    listed = inventory("jobs", "--json", config=config)
    [row] = map(json.loads, listed.stdout.splitlines())
    assert (row["source"], row["failed"], row["done"]) == ("qy-down", 1, 0)
    assert "HTTP 503" in row["last_error"]


def test_no_job_is_queued_beside_a_running_one_so_its_retry_never_jams(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    emu = emulator.reset(images=40, page_size=20)
    # The first run stalls on page 2, then fails there (the source tries a page twice).
    emu.fail(page=2, kind="latency", latency_s=3.0, times=1)
    emu.fail(page=2, kind="http_503", times=2)
    config = write_config(tmp_path, emu, ["qy-a"])
    assert enqueue(config).startswith("qy-a: queued")
    worker(processes, config, tmp_path, "w")
    wait_for(lambda: [j.status for j in jobs(engine)] == ["doing"], "the job running")
    assert enqueue(config) == "qy-a: already waiting"  # a tick during the run
    # The run fails and is retried (the same job, waiting again): no second job blocks it.
    wait_for(lambda: [j.status for j in jobs(engine)] == ["succeeded"], "the retry done")
    assert [r.status for r in runs(engine)] == ["failed", "succeeded"]
    assert enqueue(config).startswith("qy-a: queued")  # and the source queues again


def test_a_retry_that_finds_the_source_locked_tries_again_later(
    engine: Engine, emulator: Emulator, tmp_path: Path, processes: list[Process]
) -> None:
    """A requeued job whose source is still locked (by a session the server has not yet
    dropped, after a host was lost) is not done: it waits and runs once the lock is free."""
    import psycopg
    from sqlalchemy import text

    from inventory.queue import conninfo
    from inventory.store import LOCK_NAMESPACE

    emu = emulator.reset(images=20, page_size=20)
    config = write_config(tmp_path, emu, ["qy-a"])
    enqueue(config)
    with engine.begin() as conn:  # as the stalled-job recovery leaves it: a retry
        conn.execute(text("UPDATE procrastinate_jobs SET attempts = 1"))
        conn.execute(
            text(
                "INSERT INTO sources (name, provider, location)"
                " VALUES ('qy-a', 'qingcloud', 'pek3a')"
            )
        )
    # The dead worker's session, still holding the lock, until the server drops it.
    holder = psycopg.connect(conninfo(engine), autocommit=True)
    try:
        row = holder.execute("SELECT id FROM sources WHERE name = 'qy-a'").fetchone()
        assert row is not None
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, row[0]))
        worker(processes, config, tmp_path, "w")
        wait_for(lambda: jobs(engine)[0].attempts >= 2, "the locked retry tried again")
        assert jobs(engine)[0].status in ("todo", "doing")  # not called done
        assert runs(engine) == []
    finally:
        holder.close()  # the session ends: the lock is free
    wait_for(lambda: [j.status for j in jobs(engine)] == ["succeeded"], "the run once free")
    assert [r.status for r in runs(engine)] == ["succeeded"]


def test_processes_pacing_one_account_at_different_rates_share_one_window(
    engine: Engine,
) -> None:
    from inventory.http import SharedRateLimiter, _Slots
    from inventory.queue import conninfo

    slots = _Slots(conninfo(engine))
    key = ("qingcloud", "http://x", "AKID", "pek3a")
    fast, slow = SharedRateLimiter(slots, key, 10.0), SharedRateLimiter(slots, key, 2.0)
    try:
        for _ in range(10):
            fast.acquire()  # the first second's ten calls
        slow.acquire()  # a slower process's call must not forget them
        [kept] = fetch_all(engine, "SELECT cardinality(sent) AS n FROM rate_windows")
        assert kept.n >= 10
        [before] = fetch_all(engine, "SELECT sent FROM rate_windows")
        fast.acquire()
        [after] = fetch_all(engine, "SELECT sent FROM rate_windows")
        # The new slot is a second (and the margin) after the one ten places before it.
        assert (after.sent[-1] - before.sent[-10]).total_seconds() >= 1.0
    finally:
        slots.close()
