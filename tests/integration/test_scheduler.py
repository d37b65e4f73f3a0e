"""The real scheduler daemon, in subprocesses, against PostgreSQL and the emulator.

Schedules are second-level (6-field cron) so runs happen within the test. Waits poll the
database or the log with generous deadlines; nothing asserts how long anything took.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory.cli import EXIT_OK, EXIT_SKIPPED
from inventory.config import Settings
from inventory.sync import sync_source

from .helpers import Emulator, fetch_all, row_versions

DEADLINE_S = 60.0


def write_config(tmp_path: Path, emu: Emulator, *, schedule: str, stop_grace_s: float = 30) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(
        f"""
[scheduler]
leader_poll_s = 0.5
stop_grace_s = {stop_grace_s}
misfire_grace_s = 5

"""
        + emu.toml("qy-sched", extra=f'schedule = "{schedule}"')
    )
    return path


class Daemon:
    """One `inventory scheduler` process (or the command ``args``) with its JSON log in a
    file."""

    def __init__(self, config: Path, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        command = args or ("scheduler",)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inventory.cli",
                "--config",
                str(config),
                "--log-format",
                "json",
                *command,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def saw(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=DEADLINE_S)
        self._log.close()
        return code


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def runs(engine: Engine) -> list[Any]:
    return fetch_all(engine, "SELECT * FROM sync_runs ORDER BY started_at")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)


def test_runs_happen_on_schedule_and_stop_cleanly(
    engine: Engine, emulator: Emulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    emu = emulator.reset(images=40, page_size=20)
    emu.source()
    daemon = Daemon(write_config(tmp_path, emu, schedule="* * * * * *"), tmp_path / "a.log")
    daemons.append(daemon)
    wait_for(lambda: sum(r.status == "succeeded" for r in runs(engine)) >= 3, "three runs")
    assert daemon.stop() == EXIT_OK
    done = runs(engine)
    assert {r.trigger for r in done} == {"scheduler"}
    assert {r.status for r in done} <= {"succeeded"}
    assert all(r.pid == daemon.pid for r in done)
    assert daemon.saw("scheduler_active") and daemon.saw("scheduler_stop")
    assert [e for e in daemon.events() if e.get("event") == "sync_run"]


def _never_overlap(rows: list[Any]) -> None:
    ordered = sorted(rows, key=lambda r: r.started_at)
    for before, after in itertools.pairwise(ordered):
        assert before.finished_at is not None
        assert before.finished_at <= after.started_at, (before.id, after.id)


def test_two_schedulers_one_active_and_failover(
    engine: Engine, emulator: Emulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    emu = emulator.reset(images=40, page_size=20)
    emu.source()
    config = write_config(tmp_path, emu, schedule="* * * * * *")
    first = Daemon(config, tmp_path / "first.log")
    daemons.append(first)
    wait_for(lambda: first.saw("scheduler_active"), "the first scheduler to become active")
    second = Daemon(config, tmp_path / "second.log")
    daemons.append(second)
    wait_for(lambda: second.saw("scheduler_standby"), "the second scheduler to stand by")
    wait_for(lambda: sum(r.status == "succeeded" for r in runs(engine)) >= 3, "runs")
    assert {r.pid for r in runs(engine)} == {first.pid}  # only the active one runs jobs
    assert not second.saw("scheduler_active")

    first.stop(signal.SIGKILL)  # dies without a word: its lock goes with its connection
    wait_for(lambda: second.saw("scheduler_active"), "the standby to take over")
    wait_for(
        lambda: any(r.pid == second.pid and r.status == "succeeded" for r in runs(engine)),
        "a run by the new active scheduler",
    )
    assert second.stop() == EXIT_OK
    done = runs(engine)
    _never_overlap([r for r in done if r.status == "succeeded"])
    # A run the killed scheduler had in flight is marked aborted, never left running.
    assert not [r for r in done if r.status == "running"]
    for row in done:
        if row.status == "aborted":
            assert row.pid == first.pid and f"pid {first.pid}" in row.error


def test_cron_sync_during_a_scheduled_run_is_skipped(
    engine: Engine, emulator: Emulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    emu = emulator.reset(images=40, page_size=20)
    emu.source()
    # The first scheduled run stalls on page 1 long enough for a slow machine to start the
    # cron process while it is still in flight.
    emu.fail(page=1, kind="latency", latency_s=8.0, times=1)
    config = write_config(tmp_path, emu, schedule="* * * * * *", stop_grace_s=0)
    daemon = Daemon(config, tmp_path / "a.log")
    daemons.append(daemon)
    emu.wait_for_requests(1)  # the scheduled run holds the lock and waits on page 1
    cron_run = subprocess.run(
        [sys.executable, "-m", "inventory.cli", "--config", str(config), "sync", "--verbose"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=DEADLINE_S,
        check=False,
    )
    assert cron_run.returncode == EXIT_SKIPPED
    assert "already being synced" in cron_run.stdout
    daemon.stop()
    assert all(r.trigger == "scheduler" for r in runs(engine))


def test_sigterm_mid_run_leaves_the_database_consistent(
    engine: Engine, emulator: Emulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    emu = emulator.reset(images=60, page_size=20)
    source = emu.source("qy-sched")
    assert sync_source(engine, Settings(path=None), source).status == "succeeded"
    before = row_versions(engine)
    emu.mutate(seed=3, deprecate=5, remove=5, add=5)  # a run would change all of this
    emu.fail(page=2, kind="latency", latency_s=8.0)
    config = write_config(tmp_path, emu, schedule="* * * * * *", stop_grace_s=0)
    daemon = Daemon(config, tmp_path / "a.log")
    daemons.append(daemon)
    wait_for(
        lambda: any(r.status == "running" and r.trigger == "scheduler" for r in runs(engine)),
        "a scheduled run in flight",
    )
    assert daemon.stop(signal.SIGTERM) == EXIT_OK

    scheduled = [r for r in runs(engine) if r.trigger == "scheduler"]
    assert scheduled and {r.status for r in scheduled} == {"aborted"}
    assert all("shutdown requested" in r.error for r in scheduled)
    assert row_versions(engine) == before  # nothing of the aborted run was applied
    most_open = fetch_all(
        engine,
        """SELECT coalesce(max(n), 0) AS most FROM (SELECT count(*) AS n
             FROM image_status_history WHERE valid_to IS NULL GROUP BY image_id) t""",
    )[0].most
    assert most_open == 1


def test_sigkilled_sync_is_marked_aborted_by_the_next_process(
    engine: Engine, emulator: Emulator, tmp_path: Path
) -> None:
    emu = emulator.reset(images=40, page_size=20)
    emu.source()
    emu.fail(page=1, kind="latency", latency_s=30.0, times=1)
    config = write_config(tmp_path, emu, schedule="0 * * * *")
    victim = subprocess.Popen(
        [sys.executable, "-m", "inventory.cli", "--config", str(config), "sync"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: any(r.status == "running" for r in runs(engine)), "the run to start")
    victim.kill()
    victim.wait(timeout=10)
    assert [r.status for r in runs(engine)] == ["running"]  # what kill -9 leaves behind

    after = subprocess.run(
        [sys.executable, "-m", "inventory.cli", "--config", str(config), "sync"],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert after.returncode == EXIT_OK, after.stderr
    killed, next_run = runs(engine)
    assert killed.status == "aborted" and f"pid {victim.pid}" in killed.error
    assert next_run.status == "succeeded"


def test_the_dashboard_runs_inside_the_scheduler(
    engine: Engine, emulator: Emulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    import httpx

    emu = emulator.reset(images=40, page_size=20)
    emu.source()
    config = write_config(tmp_path, emu, schedule="* * * * * *")
    daemon = Daemon(config, tmp_path / "a.log", "scheduler", "--web-port", "0")
    daemons.append(daemon)

    def dashboard() -> str | None:
        for event in daemon.events():
            if event["message"].startswith("dashboard at "):
                return str(event["message"].split()[-1])
        return None

    wait_for(lambda: dashboard() is not None, "the dashboard's address in the log")
    url = dashboard()
    assert url is not None and url.startswith("http://127.0.0.1:")

    def synced() -> bool:
        rows = httpx.get(url + "api/sources").json()
        return [(r["source"], r["last_run_status"]) for r in rows] == [("qy-sched", "succeeded")]

    wait_for(synced, "the scheduled run on the dashboard")
    page = httpx.get(url)
    assert page.status_code == 200 and "qy-sched" in page.text
    assert daemon.stop() == EXIT_OK
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)  # stopped with the scheduler
