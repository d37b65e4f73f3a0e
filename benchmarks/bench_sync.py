"""Sync throughput per provider: 100,000 images from each emulator into PostgreSQL.

Reproducible (fixed seed) and self-contained. For each provider it starts the emulator in
this process (the sync runs in a child process, so its figures are its own), creates a
scratch database (on ``$INVENTORY_DATABASE_URL``'s server, else on a
throw-away embedded PostgreSQL), and runs each phase as a separate ``inventory sync``
process so each phase's peak memory is its own:

1. initial load: every image is new;
2. no-change re-sync: nothing changed upstream, so nothing may be written;
3. churn re-sync: 1% of the catalogue changed (deprecated, ceased, removed, added).

For each phase it prints images/s, the peak resident memory of the sync process, and the
WAL the database wrote during the phase (server-wide; nothing else should be running).
It prints figures; it never passes or fails on them.

    .venv/bin/python benchmarks/bench_sync.py [--images 100000] [--provider NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inventory.db import make_engine, sqlalchemy_url, start_embedded, stop_embedded  # noqa: E402
from inventory.http import MAX_RATE_LIMIT_PER_S  # noqa: E402
from inventory.migrate import upgrade  # noqa: E402
from inventory.providers import PROVIDERS  # noqa: E402


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def wal_lsn(url: str) -> int:
    with psycopg.connect(libpq(url)) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        assert row is not None
        return int(row[0])


#: Run the CLI and report the process's own peak RSS, and its staging workers' (each
#: counts the pages it shares with the fork server it came from). VmHWM belongs to the
#: process's address space after exec; ru_maxrss of a child also counts the parent's memory
#: when the child was forked from it (and the parent holds the emulator's catalogue). The
#: workers are read before the interpreter's exit stops them.
_CHILD = (
    "import sys\n"
    "from inventory import staging\n"
    "from inventory.cli import main\n"
    "def hwm(pid):\n"
    "    status = open(f'/proc/{pid}/status').read()\n"
    "    return int(status.split('VmHWM:')[1].split()[0])\n"
    "code = main(sys.argv[1:])\n"
    "pool = staging._workers\n"
    "pids = [p.pid for p in pool._processes.values()] if pool is not None else []\n"
    "sys.stderr.write(f'VmHWM_KB={hwm(\"self\")} WORKERS_KB={sum(hwm(p) for p in pids)}\\n')\n"
    "sys.exit(code)\n"
)


def run_phase(config: Path, env: dict[str, str]) -> tuple[dict[str, Any], float, float, float]:
    """Run one `inventory sync --json`; return its summary, wall seconds, and the peak RSS
    (MiB) of the process and of its staging workers together."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, "--config", str(config), "sync", "--json"],
        capture_output=True,
        env=env,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sync exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    memory = done.stderr.rsplit("VmHWM_KB=", 1)[1].split()
    hwm_kb, workers_kb = int(memory[0]), int(memory[1].removeprefix("WORKERS_KB="))
    return json.loads(done.stdout.splitlines()[-1]), elapsed, hwm_kb / 1024, workers_kb / 1024


def toml_source(table: dict[str, Any]) -> str:
    """One [[sources]] table as TOML (the emulators' own writer, as --print-config uses)."""
    from inventory.emulation.sources import source_toml

    return source_toml(table)


def bench_provider(name: str, args: argparse.Namespace, url: str, work: Path) -> None:
    emulated = PROVIDERS.emulated(name)
    # QingCloud lists only the caller's own images by default: make them all the caller's.
    extra = {"system_share": 0.0} if name == "qingcloud" else {}
    running = emulated.start(images=args.images, seed=args.seed, name=f"bench-{name}", **extra)
    try:
        config = work / f"{name}.toml"
        source = dict(running.source)
        if name == "qingcloud":  # no published limit, and the emulator sets none: measure
            source["rate_limit_per_s"] = MAX_RATE_LIMIT_PER_S  # the pipeline, not a guess
        if name == "ksyun":  # its one answer is whole here; KEC's real cap is 1,000
            source["options"] = {"listing_cap": 2 * args.images + 10}
        config.write_text(toml_source(source))
        env = {**os.environ, **running.env, "INVENTORY_DATABASE_URL": url}
        print(f"\n{emulated.label} ({name}), {len(running.catalogue):,} images in the emulator")
        header = f"{'phase':<22}{'images':>9}{'pages':>7}{'seconds':>9}{'images/s':>10}"
        header += f"{'peak RSS':>10}{'workers':>9}{'WAL':>10}"
        print(header)
        print("-" * len(header))
        churn = max(1, args.images // 100)
        mutation = {
            "deprecate": churn * 4 // 10,
            "cease": churn // 10,
            "delete": churn // 10,
            "remove": churn * 2 // 10,
            "add": churn * 2 // 10,
        }
        for label, mutate in (
            ("initial load", False),
            ("no-change re-sync", False),
            ("churn re-sync (~1%)", True),
        ):
            if mutate:
                running.catalogue.mutate(9, **mutation)
            before = wal_lsn(url)
            summary, seconds, rss, workers = run_phase(config, env)
            wal = (wal_lsn(url) - before) / 2**20
            seen = int(summary["images_seen"])
            print(
                f"{label:<22}{seen:>9,}{summary['pages']:>7}{seconds:>9.1f}"
                f"{seen / seconds:>10,.0f}{rss:>8.0f}MB{workers:>7.0f}MB{wal:>8.1f}MB"
            )
            detail = ", ".join(
                f"{k} {summary[k]}"
                for k in ("inserted", "changed", "unchanged", "disappeared", "missing")
            )
            print(f"{'':<22}  {detail}; sync's own time {summary['duration_s']}s")
    finally:
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--provider",
        action="append",
        choices=sorted(PROVIDERS),
        help="benchmark only this provider (repeatable; default: every provider)",
    )
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
    try:
        print(f"benchmark: {args.images:,} images per provider, seed {args.seed}")
        print(
            f"database: {server} {version[0] if version else '?'}; "
            f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs"
        )
        for provider in args.provider or list(PROVIDERS):
            bench_provider(provider, args, url, work)
        print()
        print("seconds and images/s are wall time of the whole `inventory sync` process")
        print("(start-up, one emulator round trip per page, staging, merge); the emulator runs")
        print("in the benchmark process on the same machine. WAL is what the database wrote")
        print("during the phase. QingCloud runs at rate_limit_per_s 1000 (it publishes no limit")
        print("and the emulator sets none; the default 200/s would cap it at 20,000 images/s),")
        print("the others at their defaults (Tencent's 40/s caps it at 4,000 images/s). 'workers'")
        print("is the staging workers' peak RSS together (pages shared between them counted in")
        print("each; 0 when the listing was staged in the sync's process).")
    finally:
        with psycopg.connect(libpq(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if pgdata is not None:
            stop_embedded(pgdata)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
