"""Queue mode: 200 sources x 1,000 images, each page answered after 100 ms, synced by 1, 2
and 4 `inventory worker` processes.

The sources are QingCloud sources of one emulator (each its own name, run, lock and
history), queued with `inventory sync --enqueue`; the workers (``[queue] concurrency``
jobs each, default 4) are started first and idle, so the time is from the queueing to the
last job done, polled in the queue every 50 ms. Each worker count gets its own scratch
database (on ``$INVENTORY_DATABASE_URL``'s server, else a throw-away embedded PostgreSQL)
and two rounds: the first (every image new) and a re-sync with nothing changed. The
sources' ``rate_limit_per_s`` is the highest allowed (they are one account and zone, whose
budget the workers share through the database): the pipeline is measured, not a guess at
QingCloud's limit. It prints figures; it never passes or fails on them.

    .venv/bin/python benchmarks/bench_workers.py [--sources 200] [--images 1000]
        [--latency 0.1] [--workers 1 --workers 2 --workers 4] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_latency import drop_database, scratch_database  # noqa: E402
from bench_sync import libpq, toml_source  # noqa: E402

from inventory.db import sqlalchemy_url, start_embedded, stop_embedded  # noqa: E402
from inventory.emulation import FaultRule  # noqa: E402
from inventory.http import MAX_RATE_LIMIT_PER_S  # noqa: E402
from inventory.providers import PROVIDERS  # noqa: E402


def wait_until_done(url: str, jobs: int) -> None:
    """Until ``jobs`` sync jobs have succeeded (any failure ends the benchmark)."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
                " count(*) FILTER (WHERE status = 'failed') FROM procrastinate_jobs"
            ).fetchone()
            assert row is not None
            if row[1]:
                raise SystemExit(f"{row[1]} job(s) failed; see `inventory jobs`")
            if row[0] >= jobs:
                return
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--workers", type=int, action="append")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs per worker")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    given = os.environ.get("INVENTORY_DATABASE_URL")
    pgdata = None if given else work / "pgdata"
    admin = sqlalchemy_url(given) if given else start_embedded(work / "pgdata")
    running = PROVIDERS.emulated("qingcloud").start(
        images=args.images, seed=1, name="fleet", system_share=0.0
    )
    running.server.app.faults.add(FaultRule(kind="latency", latency_s=args.latency))
    config = work / "inventory.toml"
    table = {**running.source, "page_size": 100, "rate_limit_per_s": MAX_RATE_LIMIT_PER_S}
    config.write_text(
        f"[queue]\nconcurrency = {args.concurrency}\n\n"
        + "".join(toml_source({**table, "name": f"fleet-{n:03d}"}) for n in range(args.sources))
    )
    print(
        f"queue mode: {args.sources} QingCloud sources x {args.images:,} images, "
        f"{args.latency * 1000:.0f} ms a page, {args.concurrency} jobs per worker; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'workers':>7}  {'sync':<10}{'seconds':>9}{'images/s':>10}")
    cli = [sys.executable, "-m", "inventory.cli", "--config", str(config)]
    try:
        for count in args.workers or [1, 2, 4]:
            url = scratch_database(admin)
            env = {**os.environ, **running.env, "INVENTORY_DATABASE_URL": url}
            workers = [
                subprocess.Popen(
                    [*cli, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                for _ in range(count)
            ]
            try:
                for round_number, label in enumerate(("first", "no change"), start=1):
                    started = time.perf_counter()
                    queued = subprocess.run(
                        [*cli, "sync", "--enqueue", "--quiet"], env=env, check=False
                    )
                    if queued.returncode != 0:
                        raise SystemExit(f"sync --enqueue exited {queued.returncode}")
                    wait_until_done(url, args.sources * round_number)
                    seconds = time.perf_counter() - started
                    images = args.sources * args.images
                    print(f"{count:>7}  {label:<10}{seconds:>9.1f}{images / seconds:>10,.0f}")
            finally:
                for worker in workers:
                    worker.send_signal(signal.SIGTERM)
                for worker in workers:
                    worker.wait(timeout=120)
            drop_database(admin, url)
    finally:
        running.stop()
        if pgdata is not None:
            stop_embedded(pgdata)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
