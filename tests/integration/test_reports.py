"""Reporting: the views, the as-of function, the SQL cookbook, the read-only role, the CLI.

The data comes from real syncs (the QingCloud emulator over HTTP) over several runs with
churn, in two sources; the second source's whole history is then moved 40 days into the
past, so windows ("last 7 days"), months and days have something to tell apart.

Expected values are computed from what the emulator listed after each run (its catalogue,
normalized with the provider's status table) and from the run times, never from the views
under test. Every ```sql block of docs/sql-cookbook.md is executed and checked, and a
heading without a checker fails the test, so the cookbook cannot rot.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from inventory.cli import EXIT_CONFIG, EXIT_OK, main
from inventory.providers.qingcloud.emulator import DEFAULT_OWNER
from inventory.providers.qingcloud.normalize import STATUS_MAP
from inventory.reports import REPORT_TABLES, REPORT_VIEWS
from inventory.sync import RunResult, sync_source

from .helpers import AT_ONCE, Emulator, fetch_all
from .test_sync import FAST

COOKBOOK = Path(__file__).resolve().parents[2] / "docs" / "sql-cookbook.md"
FLAGGED = {"deprecated", "suspended", "deleted", "ceased", "failed", "gone"}
SHIFT = timedelta(days=40)
A, B = "qy-test", "qy-old"


@dataclass
class Snapshot:
    """What the emulator listed after one run: normalized status per id, 'gone' for ids
    seen before and no longer listed; and when the run's merge happened."""

    run: RunResult
    statuses: dict[str, str]
    merged_at: datetime = field(default=datetime.min.replace(tzinfo=UTC))
    started_at: datetime = field(default=datetime.min.replace(tzinfo=UTC))
    finished_at: datetime = field(default=datetime.min.replace(tzinfo=UTC))


@dataclass
class World:
    snaps: dict[str, list[Snapshot]]
    runs: dict[str, list[RunResult]]
    renamed: set[str]


def listed(emu: Emulator) -> dict[str, str]:
    return {
        i["image_id"]: STATUS_MAP[i["status"]].value
        for i in emu.catalogue.listing((("owner", DEFAULT_OWNER),))
    }


class Recorder:
    def __init__(self, engine: Engine, emu: Emulator, name: str) -> None:
        self.engine, self.emu, self.name = engine, emu, name
        self.seen: set[str] = set()
        self.snaps: list[Snapshot] = []
        self.runs: list[RunResult] = []

    def sync(self) -> RunResult:
        result = sync_source(self.engine, AT_ONCE, self.emu.source(self.name), policy=FAST)
        self.runs.append(result)
        if result.ok:
            now = listed(self.emu)
            self.seen |= set(now)
            statuses = {**dict.fromkeys(self.seen - set(now), "gone"), **now}
            self.snaps.append(Snapshot(result, statuses))
        return result


def read_times(engine: Engine, snaps: list[Snapshot]) -> None:
    for snap in snaps:
        row = fetch_all(
            engine,
            """SELECT r.started_at, r.finished_at,
                      (SELECT max(valid_from) FROM image_status_history
                        WHERE opened_by_run_id = r.id) AS merged_at
                 FROM sync_runs r WHERE r.id = :r""",
            r=snap.run.run_id,
        )[0]
        snap.started_at, snap.finished_at, snap.merged_at = row
        assert snap.merged_at is not None  # every run of the scenario changes something


def shift_source(engine: Engine, name: str, by: timedelta) -> None:
    """Move a source's whole history into the past, as if it had been synced back then.

    image_events is append-only; its trigger is switched off for this one transaction
    (the table owner may), and back on before it commits."""
    p = {"n": name, "d": by}
    with engine.begin() as conn:
        sid = conn.execute(text("SELECT id FROM sources WHERE name = :n"), p).scalar_one()
        p["s"] = sid
        conn.execute(text("ALTER TABLE image_events DISABLE TRIGGER image_events_append_only"))
        for sql in (
            "UPDATE sync_runs SET started_at = started_at - :d, "
            "finished_at = finished_at - :d WHERE source_id = :s",
            "UPDATE images SET first_seen_at = first_seen_at - :d, "
            "last_changed_at = last_changed_at - :d, gone_at = gone_at - :d, "
            "flagged_since = flagged_since - :d, missing_since = missing_since - :d "
            "WHERE source_id = :s",
            "UPDATE image_status_history h SET valid_from = valid_from - :d, "
            "valid_to = valid_to - :d FROM images i WHERE i.id = h.image_id AND i.source_id = :s",
            "UPDATE image_events SET occurred_at = occurred_at - :d WHERE source_id = :s",
        ):
            conn.execute(text(sql), p)
        conn.execute(text("ALTER TABLE image_events ENABLE TRIGGER image_events_append_only"))


def build_world(engine: Engine, emulator: Emulator) -> World:
    emu_a = emulator.reset(images=120, page_size=25)
    a = Recorder(engine, emu_a, A)
    assert a.sync().ok
    ch2 = emu_a.mutate(seed=1, deprecate=12, delete=3, remove=4, add=5, rename=3)
    assert a.sync().ok
    ch3 = emu_a.mutate(seed=2, deprecate=4, remove=2, add=2)
    for image_id in [i for i in ch2["deprecate"] if i not in ch3["remove"]][:5]:
        emu_a.edit(image_id, status="ceased")  # deprecated one run, ceased the next
    assert a.sync().ok
    back = ch2["remove"][:2]
    emu_a.restore(back[0])
    emu_a.restore(back[1], status="deprecated")
    assert a.sync().reappeared == 2

    emu_b = Emulator().reset(images=60, page_size=20)  # same seed: shares ids with A
    b = Recorder(engine, emu_b, B)
    try:
        assert b.sync().ok
        emu_b.mutate(seed=3, deprecate=5, remove=3)
        assert b.sync().ok
        emu_b.fail(page=1, kind="http_503")
        assert b.sync().status == "failed"
        assert b.sync().status == "failed"
    finally:
        emu_b.stop()
    shift_source(engine, B, SHIFT)
    read_times(engine, a.snaps)
    read_times(engine, b.snaps)
    return World({A: a.snaps, B: b.snaps}, {A: a.runs, B: b.runs}, set(ch2["rename"]))


# -- expected values, from the snapshots ----------------------------------------------------


def transitions(snaps: list[Snapshot]) -> list[tuple[Snapshot, str, str, str]]:
    """(run, id, old, new) for every status change between consecutive snapshots."""
    out = []
    for prev, cur in pairwise(snaps):
        for image_id, new in cur.statuses.items():
            old = prev.statuses.get(image_id)
            if old is not None and old != new:
                out.append((cur, image_id, old, new))
    return out


def streak_start(snaps: list[Snapshot], image_id: str, wanted: Callable[[str], bool]) -> datetime:
    """When the image's final run of statuses satisfying ``wanted`` began."""
    start = None
    for snap in reversed(snaps):
        status = snap.statuses.get(image_id)
        if status is None or not wanted(status):
            break
        start = snap.merged_at
    assert start is not None
    return start


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


# -- the cookbook ----------------------------------------------------------------------------


def cookbook() -> list[tuple[str, str]]:
    """(heading, sql) for every ```sql block, under the ## heading it follows."""
    heading, out = None, []
    for match in re.finditer(
        r"^## ([^\n]+)$|^```sql\n(.*?)^```", COOKBOOK.read_text(), re.M | re.S
    ):
        if match.group(1):
            heading = match.group(1).strip()
        else:
            assert heading is not None, "a cookbook query comes before any heading"
            out.append((heading, match.group(2)))
    return out


def as_psycopg(sql: str) -> str:
    """psql variables (:'name') to psycopg parameters; literal % doubled."""
    return re.sub(r":'(\w+)'", r"%(\1)s", sql.replace("%", "%%"))


def check_deprecated_week(w: World, rows: list[Any]) -> None:
    now = datetime.now(UTC)
    expected = {
        (name, image_id)
        for name, snaps in w.snaps.items()
        for snap, image_id, _old, new in transitions(snaps)
        if new == "deprecated" and snap.merged_at >= now - timedelta(days=7)
    }
    assert any(new == "deprecated" for _, _, _, new in transitions(w.snaps[B]))
    assert expected and all(name == A for name, _ in expected)  # B's are 40 days old
    assert {(r.source, r.provider_image_id) for r in rows} == expected
    assert "reappeared" in {r.kind for r in rows}


def check_flagged_now(w: World, rows: list[Any]) -> None:
    expected = {}
    for name, snaps in w.snaps.items():
        final = snaps[-1].statuses
        counts = Counter(s for s in final.values() if s in FLAGGED)
        for status, n in counts.items():
            oldest = min(
                streak_start(snaps, i, FLAGGED.__contains__)
                for i, s in final.items()
                if s == status
            )
            expected[(name, status)] = (n, oldest)
    assert {(r.source, r.status): (r.images, r.oldest) for r in rows} == expected


def check_gone_per_month(w: World, rows: list[Any]) -> None:
    expected = Counter(
        ("qingcloud", utc_day(snap.merged_at).replace(day=1))
        for snaps in w.snaps.values()
        for snap, _i, _old, new in transitions(snaps)
        if new == "gone"
    )
    assert len(expected) == 2  # this month and B's, 40 days back
    assert {(r.provider, r.month): r.disappeared for r in rows} == dict(expected)


def check_deprecated_to_ceased(w: World, rows: list[Any]) -> None:
    durations = [
        snap.merged_at - streak_start(snaps[: snaps.index(snap)], i, "deprecated".__eq__)
        for snaps in w.snaps.values()
        for snap, i, old, new in transitions(snaps)
        if (old, new) == ("deprecated", "ceased")
    ]
    assert len(durations) == 5
    assert len(rows) == 1
    row = rows[0]
    assert (row.provider, row.images, row.longest) == ("qingcloud", 5, max(durations))
    median = statistics.median(d.total_seconds() for d in durations)
    assert abs(row.median.total_seconds() - median) < 1e-5


def between(snaps: list[Snapshot], k: int) -> datetime:
    """A moment after run k's merge and before run k+1's."""
    return snaps[k].finished_at + (snaps[k + 1].started_at - snaps[k].finished_at) / 2


def check_available_at(w: World, rows: list[Any]) -> None:
    expected = {i for i, s in w.snaps[A][1].statuses.items() if s == "available"}
    assert [r.provider_image_id for r in rows] == sorted(expected)


def check_changed_between(w: World, rows: list[Any]) -> None:
    before, after = w.snaps[A][0].statuses, w.snaps[A][2].statuses
    expected = {
        i: (before.get(i), after.get(i))
        for i in set(before) | set(after)
        if before.get(i) != after.get(i)
    }
    assert any(b is None for b, _ in expected.values())  # new images: no status before
    assert {r.provider_image_id: (r.before, r.after) for r in rows} == expected


def check_stale(w: World, rows: list[Any]) -> None:
    assert [(r.source, r.failure_streak) for r in rows] == [(B, 2)]
    assert rows[0].last_success_at == w.snaps[B][-1].finished_at
    assert rows[0].since_success > SHIFT - timedelta(minutes=5)


def check_failing(w: World, rows: list[Any]) -> None:
    assert [(r.source, r.last_run_status, r.failure_streak) for r in rows] == [(B, "failed", 2)]
    assert "page 1" in rows[0].last_run_error
    assert rows[0].last_success_at == w.snaps[B][-1].finished_at


def check_reappeared(w: World, rows: list[Any]) -> None:
    now = datetime.now(UTC)
    expected = {
        (name, i, new)
        for name, snaps in w.snaps.items()
        for snap, i, old, new in transitions(snaps)
        if old == "gone" and snap.merged_at >= now - timedelta(days=30)
    }
    assert len(expected) == 2 and ("deprecated" in {n for _, _, n in expected})
    assert {(r.source, r.provider_image_id, r.back_as) for r in rows} == expected


def check_daily(w: World, rows: list[Any]) -> None:
    today = datetime.now(UTC).date()
    b_final = Counter(w.snaps[B][-1].statuses.values())
    a_final = Counter(w.snaps[A][-1].statuses.values())
    b_day = utc_day(w.snaps[B][-1].merged_at)
    expected: dict[tuple[date, str], int] = {}
    day = b_day
    while day <= today:
        counts = b_final + a_final if day == today else b_final
        expected.update({(day, s): n for s, n in counts.items() if n > 0})
        day += timedelta(days=1)
    assert {(r.day, r.status): r.images for r in rows} == expected


def check_renamed(w: World, rows: list[Any]) -> None:
    assert {r.provider_image_id for r in rows} == w.renamed
    assert len(rows) == len(w.renamed)


def check_longest_deprecated(w: World, rows: list[Any]) -> None:
    everyone = sorted(
        (streak_start(snaps, i, FLAGGED.__contains__), name, i)
        for name, snaps in w.snaps.items()
        for i, s in snaps[-1].statuses.items()
        if s == "deprecated"
    )[:20]
    assert len(everyone) == 20
    assert [(r.flagged_since, r.source, r.provider_image_id) for r in rows] == everyone
    assert rows[0].source == B  # 40 days ago beats this week


def check_last_runs(w: World, rows: list[Any]) -> None:
    runs = list(reversed(w.runs[A]))
    assert [(r.id, r.status, r.inserted, r.images_seen) for r in rows] == [
        (r.run_id, r.status, r.inserted, r.images_seen) for r in runs
    ]


CHECKS: dict[str, Callable[[World, list[Any]], None]] = {
    "Which images became deprecated in the last 7 days?": check_deprecated_week,
    "What is flagged right now, per source and status, and since when?": check_flagged_now,
    "How many images disappeared, per provider and month?": check_gone_per_month,
    "How long do images stay deprecated before they cease?": check_deprecated_to_ceased,
    "What was available in a source at a given moment?": check_available_at,
    "Which images of a source changed status between two moments?": check_changed_between,
    "Which sources are stale?": check_stale,
    "Which sources are failing, and how many times in a row?": check_failing,
    "Which images came back after disappearing, in the last 30 days?": check_reappeared,
    "How many images per status did a provider have at the end of each day?": check_daily,
    "Which images of a source were renamed this week?": check_renamed,
    "Which deprecated images have been deprecated longest (candidates to retire)?": (
        check_longest_deprecated
    ),
    "What did the last ten runs of a source do?": check_last_runs,
}


@pytest.fixture
def world(engine: Engine, emulator: Emulator) -> World:
    return build_world(engine, emulator)


def test_every_cookbook_query_runs_and_is_right(engine: Engine, world: World) -> None:
    queries = cookbook()
    assert len(queries) >= 10
    assert [h for h, _ in queries] == list(CHECKS), "each cookbook query needs its checker"
    params = {
        "source": A,
        "at": between(world.snaps[A], 1).isoformat(),
        "from": between(world.snaps[A], 0).isoformat(),
        "to": between(world.snaps[A], 2).isoformat(),
    }
    for heading, sql in queries:
        with engine.connect() as conn:
            rows = list(conn.exec_driver_sql(as_psycopg(sql), params).all())
        try:
            CHECKS[heading](world, rows)
        except AssertionError as err:
            raise AssertionError(f"cookbook: {heading!r}: {err}\n{sql}") from err


def test_views_agree_with_the_tables(engine: Engine, world: World) -> None:
    final = world.snaps[B][-1].statuses
    rows = fetch_all(
        engine,
        "SELECT provider_image_id, effective_status, flagged, listed, last_seen_at "
        "FROM report_images WHERE source = :s",
        s=B,
    )
    assert {r.provider_image_id: r.effective_status for r in rows} == final
    assert all(r.flagged == (r.effective_status in FLAGGED) for r in rows)
    assert all(r.listed == (r.effective_status != "gone") for r in rows)
    # B's last complete listing is its second run; its failed runs saw nothing.
    seen = {r.last_seen_at for r in rows if r.listed}
    assert seen == {world.snaps[B][-1].finished_at}
    health = {r.source: r for r in fetch_all(engine, "SELECT * FROM report_sync_health")}
    assert health[A].runs == 4 and health[A].failure_streak == 0 and health[A].stale is False
    assert health[B].runs == 4 and health[B].last_run_status == "failed"


# -- as of -----------------------------------------------------------------------------------


def test_as_of_before_at_and_after_a_change(engine: Engine, emulator: Emulator) -> None:
    emu = emulator.reset(images=40, page_size=20)
    first = sync_source(engine, AT_ONCE, emu.source(), policy=FAST)
    changes = emu.mutate(seed=5, deprecate=1, remove=1)
    assert sync_source(engine, AT_ONCE, emu.source(), policy=FAST).ok
    changed, removed = changes["deprecate"][0], changes["remove"][0]
    at = fetch_all(
        engine,
        "SELECT valid_from FROM image_status_history WHERE opened_by_run_id <> :r LIMIT 1",
        r=first.run_id,
    )[0].valid_from
    tick = timedelta(microseconds=1)

    def status(image_id: str, moment: datetime, source: str | None = "qy-test") -> str | None:
        rows = fetch_all(
            engine,
            "SELECT status FROM inventory_images_as_of(:t, :s) WHERE provider_image_id = :i",
            t=moment,
            s=source,
            i=image_id,
        )
        assert len(rows) <= 1
        return rows[0].status if rows else None

    assert status(changed, at - tick) == "available"
    assert status(changed, at) == "deprecated"  # intervals are [valid_from, valid_to)
    assert status(changed, at + tick) == "deprecated"
    assert status(removed, at - tick) != "gone"
    assert status(removed, at) == "gone"
    assert status(changed, at + tick, None) == "deprecated"  # every source
    assert status(changed, at, "another-source") is None
    born = fetch_all(engine, "SELECT min(valid_from) AS born FROM image_status_history")[0].born
    assert status(changed, born - tick) is None  # not yet seen
    everyone = fetch_all(engine, "SELECT count(*) AS n FROM inventory_images_as_of(now())")
    assert everyone[0].n == 40


# -- the read-only role ----------------------------------------------------------------------


@pytest.fixture
def reader(engine: Engine) -> Iterator[str]:
    role = f"test_reader_{uuid.uuid4().hex[:8]}"
    yield role
    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))


REFUSED = [
    "INSERT INTO sources (name, provider, location) VALUES ('x', 'qingcloud', 'z')",
    "UPDATE images SET name = 'x'",
    "DELETE FROM sync_runs",
    "DELETE FROM image_status_history",
    "TRUNCATE images",
    "CREATE TABLE public.scratch (id int)",
    "CREATE VIEW public.scratch_view AS SELECT 1",
    "ALTER TABLE images ADD COLUMN x int",
    "DROP VIEW report_images",
    "CREATE INDEX ON images (name)",
    "UPDATE alembic_version SET version_num = 'x'",  # it may read the version, not set it
    "SELECT * FROM alert_outbox",  # not a table behind the views: nothing else
]


def test_read_only_role(
    engine: Engine, emulator: Emulator, database_url: str, reader: str, capsys: Any
) -> None:
    emu = emulator.reset(images=30, page_size=30)
    assert sync_source(engine, AT_ONCE, emu.source(), policy=FAST).ok
    assert main(["grant-readonly", "--role", reader]) == EXIT_OK
    assert f"role {reader} created" in capsys.readouterr().out
    assert main(["grant-readonly", "--role", reader]) == EXIT_OK  # again: harmless
    assert main(["grant-readonly", "--role", "Robert'); DROP TABLE images;--"]) == EXIT_CONFIG

    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f"GRANT {reader} TO current_user")
        conn.execute(f"SET ROLE {reader}")
        for relation in (*REPORT_VIEWS, *REPORT_TABLES):
            conn.execute(f"SELECT count(*) FROM {relation}").fetchone()
        row = conn.execute("SELECT count(*) FROM inventory_images_as_of(now())").fetchone()
        assert row == (30,)
        # The schema's version, so the dashboard can tell it reads a current schema.
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()
        for statement in REFUSED:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute("RESET ROLE")
        conn.execute(f"REVOKE {reader} FROM current_user")


# -- report and history commands -------------------------------------------------------------


def run_cli(capsys: Any, *args: str) -> str:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    return str(captured.out)


def test_report_commands_in_every_format(engine: Engine, world: World, capsys: Any) -> None:
    final = world.snaps[A][-1].statuses
    flagged_a = {i for i, s in final.items() if s in FLAGGED}
    recent = {(i, new) for snap, i, _old, new in transitions(world.snaps[A]) if new == "deprecated"}

    for fmt in ("table", "csv", "json"):
        out = run_cli(capsys, "report", "flagged", "--source", A, "--format", fmt)
        if fmt == "table":
            lines = out.splitlines()
            assert lines[0].split()[:3] == ["SOURCE", "PROVIDER", "PROVIDER_IMAGE_ID"]
            assert "\x1b[" not in out  # piped: plain text
            assert {line.split()[2] for line in lines[1:]} == flagged_a
            continue
        records = list(csv.DictReader(io.StringIO(out))) if fmt == "csv" else json_lines(out)
        assert {r["provider_image_id"] for r in records} == flagged_a
        assert {r["source"] for r in records} == {A}
        for r in records:
            since = datetime.fromisoformat(r["flagged_since"])
            assert since.utcoffset() == timedelta(0) and r["flagged_since"].endswith("Z")
            assert since == streak_start(
                world.snaps[A], r["provider_image_id"], FLAGGED.__contains__
            )

    for fmt in ("csv", "json"):
        out = run_cli(
            capsys, "report", "changes", "--status", "deprecated", "--since", "7d", "--format", fmt
        )
        records = list(csv.DictReader(io.StringIO(out))) if fmt == "csv" else json_lines(out)
        assert {(r["provider_image_id"], r["new_status"]) for r in records} == recent
        run_ids = {int(r["run_id"]) for r in records}
        assert run_ids <= {run.run_id for run in world.runs[A]}
    # B's changes are 40 days old: a 60-day window shows them, with --provider too.
    out = run_cli(capsys, "report", "changes", "--since", "60d", "--source", B, "--format", "json")
    assert len(json_lines(out)) == len(transitions(world.snaps[B])) > 0
    out = run_cli(capsys, "report", "changes", "--provider", "tencent", "--format", "json")
    assert out == ""  # JSON Lines: no row, no line

    for fmt in ("table", "csv", "json"):
        out = run_cli(capsys, "report", "summary", "--since", "1d", "--format", fmt)
        if fmt == "table":
            assert out.splitlines()[0].split() == [
                "PROVIDER",
                "SOURCE",
                "STATUS",
                "IMAGES",
                "CHANGED_SINCE",
            ]
            continue
        records = list(csv.DictReader(io.StringIO(out))) if fmt == "csv" else json_lines(out)
        got = {(r["source"], r["status"]): int(r["images"]) for r in records}
        expected = {
            (name, s): n
            for name, snaps in world.snaps.items()
            for s, n in Counter(snaps[-1].statuses.values()).items()
        }
        assert got == expected
        # B's statuses all began 40 days ago: none changed within a day.
        assert all(int(r["changed_since"]) == 0 for r in records if r["source"] == B)

    for fmt in ("table", "csv", "json"):
        out = run_cli(capsys, "report", "health", "--format", fmt)
        if fmt == "table":
            assert [line.split()[0] for line in out.splitlines()[1:]] == [B, A]
            continue
        records = list(csv.DictReader(io.StringIO(out))) if fmt == "csv" else json_lines(out)
        by_source = {r["source"]: r for r in records}
        assert set(by_source) == {A, B}
        assert str(by_source[B]["failure_streak"]) == "2"
        assert str(by_source[B]["stale"]).lower() == "true"
        assert str(by_source[A]["stale"]).lower() == "false"
        assert by_source[A]["schedule_stale"] in ("", None)  # no schedule configured
    out = run_cli(capsys, "report", "health", "--status", "failed", "--format", "json")
    assert [r["source"] for r in json_lines(out)] == [B]


def json_lines(out: str) -> list[dict[str, Any]]:
    """The CLI's JSON: one object per line."""
    return [json.loads(line) for line in out.splitlines()]


def test_report_limit(engine: Engine, world: World, capsys: Any) -> None:
    every = json_lines(run_cli(capsys, "report", "changes", "--since", "60d", "--json"))
    assert len(every) > 3
    assert main(["report", "changes", "--since", "60d", "--json", "--limit", "3"]) == EXIT_OK
    captured = capsys.readouterr()
    assert json_lines(captured.out) == every[:3]  # the first three, in the report's order
    assert "the first 3 rows; there are more" in captured.err
    assert main(["report", "changes", "--since", "60d", "--limit", str(len(every))]) == EXIT_OK
    assert "there are more" not in capsys.readouterr().err


def test_report_since_parsing_and_errors(engine: Engine, capsys: Any) -> None:
    assert main(["report", "changes", "--since", "last tuesday"]) == EXIT_CONFIG
    assert "7d" in capsys.readouterr().err
    assert main(["report", "changes", "--since", "2020-01-01"]) == EXIT_OK
    assert "(no rows)" in capsys.readouterr().out


def test_history_command(engine: Engine, world: World, capsys: Any) -> None:
    ceased = next(
        i
        for _s, i, old, new in transitions(world.snaps[A])
        if (old, new) == ("deprecated", "ceased")
    )
    shared = ceased in world.snaps[B][-1].statuses
    if shared:  # both sources hold an image with this id: the command asks which
        assert main(["history", ceased]) == EXIT_CONFIG
        assert "choose one with --source" in capsys.readouterr().err
    out = run_cli(capsys, "history", ceased, "--source", A, "--format", "json")
    payload = json.loads(out)
    statuses = [r["status"] for r in payload["intervals"]]
    assert statuses[-2:] == ["deprecated", "ceased"]
    assert [r["valid_to"] is None for r in payload["intervals"]] == [False] * (
        len(statuses) - 1
    ) + [True]
    kinds = [e["kind"] for e in payload["events"]]
    assert kinds[0] == "appeared" and kinds.count("status_changed") == len(statuses) - 1
    assert payload["image"]["effective_status"] == "ceased"

    out = run_cli(capsys, "history", ceased, "--source", A)
    assert f"{ceased} (" in out and "status timeline" in out and "events" in out
    assert main(["history", "img-does-not-exist"]) == EXIT_CONFIG
    assert "no image" in capsys.readouterr().err


def test_daily_counts_per_source_over_a_window(engine: Engine, world: World) -> None:
    """The dashboard's daily chart (reports.daily_counts): each source's counts at each
    day's end, the history before the window carried into its first day."""
    from inventory.reports import daily_counts

    today = datetime.now(UTC).date()
    finals = {name: Counter(snaps[-1].statuses.values()) for name, snaps in world.snaps.items()}
    first_day = {name: utc_day(snaps[0].merged_at) for name, snaps in world.snaps.items()}
    for days, source in ((7, None), (45, None), (45, B), (1, A)):
        with engine.connect() as conn:
            rows = daily_counts(conn, days, source).dicts()
        window = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
        names = [source] if source else sorted(world.snaps)
        expected = {
            (day, name, status): n
            for name in names
            for day in window
            if day >= first_day[name] and (name == B or day == today)  # A is today's
            for status, n in finals[name].items()
            if n
        }
        assert {(r["day"], r["source"], r["status"]): r["images"] for r in rows if r["images"]} == (
            expected
        ), (days, source)
        assert {r["day"] for r in rows} == set(window)  # zero days kept, for the chart
