"""Many sources: 100 sources x 1,000 images, each page answered after 100 ms, synced by one
`inventory sync` with ``--jobs 1`` and with ``--jobs 8``.

The sources are QingCloud sources of one emulator (each its own name, run, lock and
history). Each ``--jobs`` value gets its own scratch database (on
``$INVENTORY_DATABASE_URL``'s server, else a throw-away embedded PostgreSQL) and two
syncs: the first (every image new) and a re-sync with nothing changed, as a scheduled fleet
runs most of the time. A sampler counts the database's connections every 50 ms, so the
peak is printed beside the wall time. It prints figures; it never passes or fails on them.

    .venv/bin/python benchmarks/bench_sources.py [--sources 100] [--images 1000]
        [--latency 0.1] [--jobs 1 --jobs 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_latency import drop_database, scratch_database  # noqa: E402
from bench_sync import libpq, toml_source  # noqa: E402

from inventory.db import sqlalchemy_url, start_embedded, stop_embedded  # noqa: E402
from inventory.emulation import FaultRule  # noqa: E402
from inventory.providers import PROVIDERS  # noqa: E402


def peak_connections(url: str, stop: threading.Event, peak: list[int]) -> None:
    name = make_url(url).database
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                (name,),
            ).fetchone()
            peak[0] = max(peak[0], int(row[0]) if row else 0)
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--jobs", type=int, action="append")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    given = os.environ.get("INVENTORY_DATABASE_URL")
    pgdata = None if given else work / "pgdata"
    admin = sqlalchemy_url(given) if given else start_embedded(work / "pgdata")
    running = PROVIDERS.emulated("qingcloud").start(
        images=args.images, seed=1, name="many", system_share=0.0
    )
    running.server.app.faults.add(FaultRule(kind="latency", latency_s=args.latency))
    config = work / "inventory.toml"
    config.write_text(
        "".join(
            toml_source({**running.source, "name": f"many-{n:03d}", "page_size": 100})
            for n in range(args.sources)
        )
    )
    print(
        f"many sources: {args.sources} QingCloud sources x {args.images:,} images, "
        f"{args.latency * 1000:.0f} ms a page; {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'jobs':>5}  {'sync':<10}{'seconds':>9}{'images/s':>10}{'peak connections':>18}")
    try:
        for jobs in args.jobs or [1, 8]:
            url = scratch_database(admin)
            env = {**os.environ, **running.env, "INVENTORY_DATABASE_URL": url}
            command = ["-m", "inventory.cli", "--config", str(config), "sync", "--quiet"]
            for label in ("first", "no change"):
                stop, peak = threading.Event(), [0]
                sampler = threading.Thread(target=peak_connections, args=(url, stop, peak))
                sampler.start()
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, *command, "--jobs", str(jobs)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                seconds = time.perf_counter() - started
                stop.set()
                sampler.join()
                if done.returncode != 0:
                    drop_database(admin, url)
                    raise SystemExit(f"sync exited {done.returncode}:\n{done.stdout}{done.stderr}")
                images = args.sources * args.images
                print(
                    f"{jobs:>5}  {label:<10}{seconds:>9.1f}{images / seconds:>10,.0f}{peak[0]:>18}"
                )
            drop_database(admin, url)
    finally:
        running.stop()
        if pgdata is not None:
            stop_embedded(pgdata)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
