"""Sync throughput at a cloud's pace: every page answered after 100 ms, pages in flight.

A first sync of 20,000 images from the QingCloud and Tencent emulators, each page answered
after ``--latency`` seconds (a realistic cloud round trip), with 1 request in flight, with
the provider's default, and with 8. Each run is its own `inventory sync` process into its
own scratch database (on ``$INVENTORY_DATABASE_URL``'s server, else a throw-away embedded
PostgreSQL). Tencent's requests are paced by its client-side limit (40 calls/s, its
documented DescribeImages limit), so its ceiling is 40 x 100 = 4,000 images/s. It prints
figures; it never passes or fails on them.

    .venv/bin/python benchmarks/bench_latency.py [--images 20000] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_sync import libpq, run_phase, toml_source  # noqa: E402

from inventory.db import make_engine, sqlalchemy_url, start_embedded, stop_embedded  # noqa: E402
from inventory.emulation import FaultRule  # noqa: E402
from inventory.migrate import upgrade  # noqa: E402
from inventory.providers import PROVIDERS  # noqa: E402


def scratch_database(admin: str) -> str:
    name = f"inventory_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def drop_database(admin: str, url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per page")
    parser.add_argument("--provider", action="append", choices=["qingcloud", "tencent"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    given = os.environ.get("INVENTORY_DATABASE_URL")
    pgdata = None if given else work / "pgdata"
    admin = sqlalchemy_url(given) if given else start_embedded(work / "pgdata")
    print(
        f"latency benchmark: {args.images:,} images, {args.latency * 1000:.0f} ms a page, "
        f"first sync; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    header = f"{'provider':<11}{'in flight':>10}{'pages':>7}{'seconds':>9}{'images/s':>10}"
    print(header + f"{'sync only':>11}")
    print("-" * (len(header) + 11))
    try:
        for provider in args.provider or ["qingcloud", "tencent"]:
            default = _default_concurrency(provider)
            for in_flight in sorted({1, default, 8}):
                extra = {"system_share": 0.0} if provider == "qingcloud" else {}
                running = PROVIDERS.emulated(provider).start(
                    images=args.images, seed=1, name=f"latency-{provider}", **extra
                )
                running.server.app.faults.add(FaultRule(kind="latency", latency_s=args.latency))
                url = scratch_database(admin)
                try:
                    config = work / f"{provider}.toml"
                    table = {**running.source, "page_size": 100, "concurrency": in_flight}
                    config.write_text(toml_source(table))
                    env = {**os.environ, **running.env, "INVENTORY_DATABASE_URL": url}
                    summary, seconds, _, _ = run_phase(config, env)
                finally:
                    running.stop()
                    drop_database(admin, url)
                seen = int(summary["images_seen"])
                label = f"{in_flight}" + (" (default)" if in_flight == default else "")
                print(
                    f"{provider:<11}{label:>10}{summary['pages']:>7}{seconds:>9.1f}"
                    f"{seen / seconds:>10,.0f}{seen / float(summary['duration_s']):>11,.0f}"
                )
        print("\nimages/s is over the whole process (start-up included); 'sync only' over the")
        print("run itself (sync_runs duration). The emulator runs in this process.")
    finally:
        if pgdata is not None:
            stop_embedded(pgdata)
        shutil.rmtree(work, ignore_errors=True)


def _default_concurrency(provider: str) -> int:
    import importlib

    module = importlib.import_module(f"inventory.providers.{provider}.collect")
    return int(module.DEFAULT_CONCURRENCY)


if __name__ == "__main__":
    main()
