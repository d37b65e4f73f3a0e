"""Sync throughput: 100,000 QingCloud images from the emulator into PostgreSQL.

Reproducible (fixed seed) and self-contained. It starts the QingCloud emulator as its own
process, creates a scratch database (on ``$INVENTORY_DATABASE_URL``'s server, else on a
throw-away embedded PostgreSQL), and runs each phase as a separate ``inventory sync``
process so each phase's peak memory is its own:

1. initial load: every image is new;
2. no-change re-sync: nothing changed upstream, so nothing may be written;
3. churn re-sync: 1% of the catalogue changed (deprecated, ceased, removed, added).

For each phase it prints images/s, the peak resident memory of the sync process, and the
WAL the database wrote during the phase (server-wide; nothing else should be running).
It prints figures; it never passes or fails on them.

    .venv/bin/python benchmarks/bench_sync.py [--images 100000] [--page-size 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inventory.db import make_engine, sqlalchemy_url, start_embedded, stop_embedded  # noqa: E402
from inventory.migrate import upgrade  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def wal_lsn(url: str) -> int:
    with psycopg.connect(libpq(url)) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        assert row is not None
        return int(row[0])


def run_phase(config: Path, env: dict[str, str]) -> tuple[dict[str, object], float, float]:
    """Run one `inventory sync --json`; return its summary, wall seconds and peak RSS (MiB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inventory.cli", "--config", str(config), "sync", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"sync exited {proc.returncode}:\n{out}\n{err}")
    return json.loads(out.splitlines()[-1]), elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    pgdata = None
    given = os.environ.get("INVENTORY_DATABASE_URL")
    if given:
        admin = sqlalchemy_url(given)
        server = "PostgreSQL from INVENTORY_DATABASE_URL"
    else:
        pgdata = work / "pgdata"
        admin = start_embedded(pgdata)
        server = "embedded PostgreSQL (throw-away)"
    name = f"inventory_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = conn.execute("SHOW server_version").fetchone()
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()

    port = free_port()
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inventory.cli",
            "emulate",
            "qingcloud",
            "--port",
            str(port),
            "--images",
            str(args.images),
            "--seed",
            str(args.seed),
            "--system-share",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        emulator.stdout.readline()  # the emulator prints its URL once it listens
        control = f"http://127.0.0.1:{port}/_emulator"
        config = work / "inventory.toml"
        config.write_text(
            f"""
[[sources]]
name = "bench-qingcloud"
provider = "qingcloud"
zone = "pek3a"
endpoint = "http://127.0.0.1:{port}/iaas/"
page_size = {args.page_size}
[sources.credentials]
access_key_id = "${{BENCH_QY_AK}}"
secret_access_key = "${{BENCH_QY_SK}}"
"""
        )
        env = {
            **os.environ,
            "INVENTORY_DATABASE_URL": url,
            "BENCH_QY_AK": "QYEMULATORACCESSKEY",
            "BENCH_QY_SK": "emulator-secret-access-key",
        }

        print(f"benchmark: {args.images:,} QingCloud images, page size {args.page_size}")
        print(
            f"database: {server} {version[0] if version else '?'}; python {sys.version.split()[0]}"
        )
        print()
        header = (
            f"{'phase':<22}{'images':>9}{'seconds':>9}{'images/s':>10}{'peak RSS':>10}{'WAL':>10}"
        )
        print(header)
        print("-" * len(header))
        churn = max(1, args.images // 100)
        phases = [
            ("initial load", None),
            ("no-change re-sync", None),
            (
                "churn re-sync (1%)",
                {
                    "seed": 9,
                    "deprecate": churn * 4 // 10,
                    "cease": churn // 10,
                    "remove": churn * 3 // 10,
                    "add": churn * 2 // 10,
                },
            ),
        ]
        for label, mutation in phases:
            if mutation:
                httpx.post(f"{control}/mutate", json=mutation, timeout=60).raise_for_status()
            before = wal_lsn(url)
            summary, seconds, rss = run_phase(config, env)
            wal = (wal_lsn(url) - before) / 2**20
            seen = int(summary["images_seen"])  # type: ignore[call-overload]
            print(
                f"{label:<22}{seen:>9,}{seconds:>9.1f}{seen / seconds:>10,.0f}"
                f"{rss:>8.0f}MB{wal:>8.1f}MB"
            )
            detail = ", ".join(
                f"{k} {summary[k]}" for k in ("inserted", "changed", "unchanged", "disappeared")
            )
            print(f"{'':<22}  {detail}; sync's own time {summary['duration_s']}s")
        print()
        print("seconds and images/s are wall time of the whole `inventory sync` process")
        print("(start-up, 1 emulator round trip per page, staging, merge); WAL is what the")
        print("database wrote during the phase.")
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        with psycopg.connect(libpq(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if pgdata is not None:
            stop_embedded(pgdata)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
