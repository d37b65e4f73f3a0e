"""Report views on a large inventory: 1,000,000 images with several history intervals each.

Fills a scratch database (on ``$INVENTORY_DATABASE_URL``'s server, else a throw-away
embedded PostgreSQL) with set-based SQL (generate_series), not syncs: 12 sources of three
providers, 60 days of runs every 6 hours, and per image 1 to 4 status intervals
(available -> deprecated -> ceased or deleted -> gone) with their events. Secondary indexes
are dropped for the load and rebuilt after it, as a restore would, then the tables are
analyzed.

Then for each query behind a view, the as-of function and the report commands it prints
the time of a cold and a warm run, and the EXPLAIN (ANALYZE, BUFFERS) plan of the warm
one, so index use is visible; then the same for each page of the dashboard, served by the
real app and fetched over HTTP. It prints figures; it never passes or fails on them.

    .venv/bin/python benchmarks/bench_reports.py [--images 1000000] [--no-plans]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inventory.db import make_engine, sqlalchemy_url, start_embedded, stop_embedded  # noqa: E402
from inventory.migrate import revision_module, upgrade  # noqa: E402

SOURCES = 12
DAYS = 60
RUNS_PER_SOURCE = DAYS * 4  # every 6 hours

#: The history: image n (1-based) has 1 + (n / 12) % 4 intervals; step k is
#: available, deprecated, ceased or deleted, gone; the last interval is open.
LOAD = [
    (
        "sources",
        f"""
        INSERT INTO sources (name, provider, location)
        SELECT 'src-' || g, (ARRAY['qingcloud', 'tencent', 'ksyun'])[1 + g % 3], 'zone-' || g
          FROM generate_series(1, {SOURCES}) g
        """,
    ),
    (
        "sync_runs",
        f"""
        INSERT INTO sync_runs (source_id, trigger, started_at, finished_at, status,
                               listing_complete, pages, images_seen, error)
        SELECT s, 'scheduler', t, t + interval '40 seconds',
               CASE WHEN r % 17 = 0 THEN 'failed' ELSE 'succeeded' END,
               r % 17 <> 0, 100, 1000, CASE WHEN r % 17 = 0 THEN 'page 3: HTTP 503' END
          FROM generate_series(1, {SOURCES}) s,
               generate_series(0, {RUNS_PER_SOURCE} - 1) r,
               LATERAL (SELECT now() - interval '{DAYS} days'
                               + r * interval '6 hours' + s * interval '1 minute' AS t) x
        """,
    ),
    (
        "images",
        f"""
        INSERT INTO images (source_id, provider_image_id, name, status, raw_status, os_family,
                            visibility, raw, fingerprint, first_seen_at, last_changed_at,
                            gone_at)
        SELECT 1 + n % {SOURCES}, 'img-' || lpad(n::text, 8, '0'), 'image ' || n,
               st.status, st.status, 'linux', 'private', '{{}}'::jsonb, md5(n::text),
               t0, t0 + (k - 1) * step, CASE WHEN k = 4 THEN t0 + 3 * step END
          FROM generate_series(1, :images) n,
               LATERAL (SELECT 1 + (n / 12) % 4 AS k,
                               now() - interval '{DAYS} days' + (n % 1000) * interval '1 hour'
                                   AS t0,
                               interval '1 day' * (1 + n % 13) AS step) p,
               LATERAL (SELECT CASE k WHEN 1 THEN 'available' WHEN 2 THEN 'deprecated'
                                      ELSE (ARRAY['ceased', 'deleted'])[1 + (n / 48) % 2] END
                                   AS status) st
        """,
    ),
    (
        "image_status_history",
        f"""
        INSERT INTO image_status_history (image_id, status, raw_status, valid_from, valid_to,
                                          opened_by_run_id)
        SELECT i.id,
               CASE j WHEN 1 THEN 'available' WHEN 2 THEN 'deprecated'
                      WHEN 3 THEN (ARRAY['ceased', 'deleted'])[1 + (i.id / 48) % 2] ELSE 'gone' END,
               NULL, i.first_seen_at + (j - 1) * step,
               CASE WHEN j < k THEN i.first_seen_at + j * step END,
               (i.source_id - 1) * {RUNS_PER_SOURCE} + 1
                   + least({RUNS_PER_SOURCE} - 1,
                           (extract(epoch FROM i.first_seen_at + (j - 1) * step
                                               - (now() - interval '{DAYS} days'))
                            / 21600)::int)
          FROM images i,
               LATERAL (SELECT 1 + (i.id / 12) % 4 AS k,
                               interval '1 day' * (1 + i.id % 13) AS step) p,
               generate_series(1, p.k) j
        """,
    ),
    (
        "image_events",
        """
        INSERT INTO image_events (image_id, source_id, run_id, occurred_at, kind, old_status,
                                  new_status)
        SELECT h.image_id, i.source_id, h.opened_by_run_id, h.valid_from,
               CASE WHEN prev.status IS NULL THEN 'appeared'
                    WHEN h.status = 'gone' THEN 'disappeared' ELSE 'status_changed' END,
               prev.status, h.status
          FROM image_status_history h
          JOIN images i ON i.id = h.image_id
          LEFT JOIN image_status_history prev
            ON prev.image_id = h.image_id AND prev.valid_to = h.valid_from
        """,
    ),
    # What the merge keeps on each image as it opens the intervals (migration 0007).
    ("images.flagged_since", revision_module("0007_flagged_since_stored.py").BACKFILL),
]

QUERIES: list[tuple[str, str]] = [
    (
        "report_images: one source, per status",
        "SELECT effective_status, count(*) FROM report_images WHERE source = 'src-3' GROUP BY 1",
    ),
    (
        "report_images: one image by provider id (inventory history)",
        "SELECT * FROM report_images WHERE provider_image_id = 'img-{probe:08d}'",
    ),
    (
        "report_flagged_images: one source, newest 50 (report flagged --source)",
        "SELECT * FROM report_flagged_images WHERE source = 'src-5' "
        "ORDER BY flagged_since DESC LIMIT 50",
    ),
    (
        "report_flagged_images: count per status, all sources",
        "SELECT status, count(*) FROM report_flagged_images GROUP BY 1",
    ),
    (
        "report_status_changes: last 7 days (report changes)",
        "SELECT count(*) FROM report_status_changes WHERE occurred_at >= now() - interval '7 days'",
    ),
    (
        "report_status_changes: one source, last 7 days",
        "SELECT * FROM report_status_changes WHERE source_id = 7 "
        "AND occurred_at >= now() - interval '7 days' ORDER BY occurred_at DESC",
    ),
    ("report_sync_health: every source (report health)", "SELECT * FROM report_sync_health"),
    (
        "report_daily_status_counts: last 30 days",
        "SELECT * FROM report_daily_status_counts "
        "WHERE day >= (now() AT TIME ZONE 'UTC')::date - 30",
    ),
    (
        "inventory_images_as_of: one source, 20 days ago, available",
        "SELECT count(*) FROM inventory_images_as_of(now() - interval '20 days', 'src-4') "
        "WHERE status = 'available'",
    ),
    (
        "history of one image (intervals)",
        "SELECT * FROM image_status_history WHERE image_id = {probe} ORDER BY valid_from",
    ),
]


#: The dashboard's pages (inventory web), fetched over HTTP from the real app: the queries
#: behind each page, its count for the pager, and the rendering.
PAGES: list[tuple[str, str]] = [
    ("overview: every source, counts by status", "/"),
    ("flagged: all sources, first page", "/flagged"),
    ("flagged: one source, page 3", "/flagged?source=src-5&page=3"),
    ("flagged: CSV of one page", "/flagged.csv?source=src-5"),
    ("changes: last 7 days, first page", "/changes"),
    ("changes: one source, last 7 days", "/changes?source=src-7"),
    ("image: one image's timeline", "/image?id=img-{probe:08d}"),
    ("as-of: one source, 20 days ago, first page", "/as-of?source=src-4&at=20d"),
    ("as-of: every source, now, first page", "/as-of"),
    ("daily: every source, 30 days", "/daily?days=30"),
    ("daily: one source, 30 days", "/daily?source=src-3&days=30"),
]


def dashboard(url: str, probe: int) -> None:
    """Serve the dashboard on the scratch database and time each page, cold and warm."""
    import httpx

    from inventory.config import Settings, WebSettings
    from inventory.source import SecretRef
    from inventory.web import open_dashboard

    os.environ.pop("INVENTORY_WEB_DATABASE_URL", None)
    web = WebSettings(database_url=SecretRef("literal", url, "bench"))
    site = open_dashboard(Settings(path=None, web=web), "127.0.0.1", 0).start()
    try:
        print(
            f"\n{'dashboard page (inventory web, over HTTP)':<72}{'bytes':>8}{'cold s':>9}"
            f"{'warm s':>9}"
        )
        with httpx.Client(base_url=site.url, timeout=120) as client:
            for label, path in PAGES:
                times = []
                for _ in range(2):
                    started = time.perf_counter()
                    answer = client.get(path.replace("{probe:08d}", f"{probe:08d}"))
                    times.append(time.perf_counter() - started)
                    answer.raise_for_status()
                print(f"{label:<72}{len(answer.content):>8,}{times[0]:>9.3f}{times[1]:>9.3f}")
    finally:
        site.stop()


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load(conn: psycopg.Connection, images: int) -> None:
    big = ("images", "image_status_history", "image_events")
    rows = conn.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
        (list(big),),
    ).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET maintenance_work_mem = '512MB'")
    try:  # skip foreign-key checks row by row: the generated data is consistent by design
        conn.execute("SET session_replication_role = replica")
    except psycopg.Error:
        conn.rollback()
    for table, sql in LOAD:
        started = time.perf_counter()
        with conn.transaction():
            count = conn.execute(sql.replace(":images", str(int(images)))).rowcount
        print(f"  {table:<22}{count:>12,} rows {time.perf_counter() - started:>8.1f}s")
    started = time.perf_counter()
    for _, definition in rows:
        conn.execute(definition)
    print(f"  {'rebuild indexes':<22}{len(rows):>12} idx  {time.perf_counter() - started:>8.1f}s")
    started = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    print(f"  {'vacuum analyze':<22}{'':>12}      {time.perf_counter() - started:>8.1f}s")


def timed(conn: psycopg.Connection, sql: str) -> tuple[float, int]:
    started = time.perf_counter()
    rows = conn.execute(sql).fetchall()
    return time.perf_counter() - started, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--no-plans", action="store_true", help="print timings only")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="inventory-bench-reports-"))
    pgdata = None
    given = os.environ.get("INVENTORY_DATABASE_URL")
    if given:
        admin, server = sqlalchemy_url(given), "PostgreSQL from INVENTORY_DATABASE_URL"
    else:
        pgdata = work / "pgdata"
        admin, server = start_embedded(pgdata), "embedded PostgreSQL (throw-away)"
    name = f"inventory_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = conn.execute("SHOW server_version").fetchone()
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        print(f"benchmark: {args.images:,} images, {SOURCES} sources, {DAYS} days of runs")
        print(
            f"database: {server} {version[0] if version else '?'}; "
            f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs"
        )
        print("\nload (set-based SQL)")
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            load(conn, args.images)
            sizes = conn.execute(
                """SELECT relname, reltuples::bigint FROM pg_class
                    WHERE relkind = 'r' AND relname IN
                          ('images', 'image_status_history', 'image_events', 'sync_runs')
                    ORDER BY relname"""
            ).fetchall()
            print("  " + ", ".join(f"{t} {n:,}" for t, n in sizes))
            print(f"\n{'query':<72}{'rows':>8}{'cold s':>9}{'warm s':>9}")
            plans = []
            probe = args.images // 2 + 7  # an image in the middle of the catalogue
            for label, template in QUERIES:
                sql = template.replace("{probe:08d}", f"{probe:08d}")
                sql = sql.replace("{probe}", str(probe))
                cold, count = timed(conn, sql)
                warm, _ = timed(conn, sql)
                print(f"{label:<72}{count:>8,}{cold:>9.3f}{warm:>9.3f}")
                plans.append((label, sql))
            dashboard(url, probe)
            if not args.no_plans:
                for label, sql in plans:
                    print(f"\n== {label}\n{sql}")
                    plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}").fetchall()
                    print("\n".join(line for (line,) in plan))
        print("\ncold = first run after the load (caches as the load left them); warm = second.")
    finally:
        with psycopg.connect(libpq(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if pgdata is not None:
            stop_embedded(pgdata)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
