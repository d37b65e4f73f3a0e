"""`inventory db`: the embedded PostgreSQL kept running for SQL between runs (issue 13, 1).

Real processes against a real embedded server in a throw-away data directory: the demo
leaves it running, the bundled psql and the machine's own psql reach it, every SQL block of
docs/sql-cookbook.md runs through `inventory db psql`, and start/stop/status behave as a
small service (safe twice, exit 3 when not running, a user still holding it keeps it up).
Before `inventory db` the server stopped with the demo and every query here failed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inventory.cli import EXIT_CONFIG, EXIT_OK, EXIT_SKIPPED

ROOT = Path(__file__).resolve().parents[2]
COOKBOOK = ROOT / "docs" / "sql-cookbook.md"
INVENTORY = Path(sys.executable).parent / "inventory"  # the console script, as people run it


@pytest.fixture(scope="module")
def pgdata() -> Iterator[Path]:
    # Under /tmp: as root the wheel opens every parent folder of the data directory.
    folder = Path(tempfile.mkdtemp(prefix="inventory-db-cmd-"))
    yield folder / "pgdata"
    run("db", "stop", pgdata=folder / "pgdata")
    shutil.rmtree(folder, ignore_errors=True)


def env_for(pgdata: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "INVENTORY_DATABASE_URL"}
    return {**env, "INVENTORY_PGDATA": str(pgdata)}


def run(*args: str, pgdata: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INVENTORY), *args],
        capture_output=True,
        text=True,
        env=env_for(pgdata),
        cwd=cwd,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(pgdata: Path) -> subprocess.CompletedProcess[str]:
    done = run("demo", "--images", "60", pgdata=pgdata)
    assert done.returncode == EXIT_OK, done.stderr
    return done


def test_demo_leaves_the_database_for_sql(demo: subprocess.CompletedProcess[str], pgdata: Path):
    status = run("db", "status", pgdata=pgdata)
    assert status.returncode == EXIT_OK, status.stdout + status.stderr
    assert f"embedded PostgreSQL in {pgdata}: running" in status.stdout
    assert "kept running until" in status.stdout

    counted = run("db", "psql", "-tA", "-c", "select count(*) from images", pgdata=pgdata)
    assert counted.returncode == EXIT_OK, counted.stderr
    images = int(counted.stdout.strip())
    assert images > 5 * 60  # five providers' demo catalogues, plus what each round added

    url = run("db", "url", pgdata=pgdata)
    assert url.returncode == EXIT_OK and url.stderr == "", url.stderr
    machine_psql = shutil.which("psql", path="/usr/bin:/usr/local/bin:/usr/lib/postgresql/15/bin")
    if machine_psql is None:
        pytest.skip("this machine has no psql of its own; the bundled one was checked above")
    own = subprocess.run(
        [machine_psql, url.stdout.strip(), "-tAc", "select count(*) from images"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert own.returncode == 0, own.stderr
    assert int(own.stdout.strip()) == images


def test_the_demos_closing_commands_work_as_printed(
    demo: subprocess.CompletedProcess[str], pgdata: Path
):
    printed = [
        line.strip().split("  ")[0]
        for line in demo.stdout.splitlines()
        if line.strip().startswith(".venv/bin/inventory ") or line.strip().startswith("inventory ")
    ]
    assert any(" db psql -c " in line for line in printed), demo.stdout
    assert any(line.endswith("report flagged") for line in printed), demo.stdout
    for line in printed:
        if "IMAGE_ID" in line:
            continue
        argv = shlex.split(line)
        if argv[0] == ".venv/bin/inventory" and not (ROOT / ".venv" / "bin").is_dir():
            pytest.skip("the demo ran outside a .venv checkout")
        argv[0] = str(INVENTORY)
        if argv[1:] == ["web"]:
            _serves_the_dashboard(argv, pgdata)
            continue
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env_for(pgdata), cwd=ROOT, timeout=120
        )
        assert done.returncode == EXIT_OK, (line, done.stderr)
        assert done.stdout.strip(), line
    # one word for an image that left the listing, as the reports say it
    assert "disappeared" not in demo.stdout and "removed" not in demo.stdout
    assert " gone" in demo.stdout


def _serves_the_dashboard(argv: list[str], pgdata: Path) -> None:
    """`inventory web` runs until stopped: on any free port (8080 may be taken here), it
    prints its address and serves the demo's sources there."""
    import httpx

    web = subprocess.Popen(
        [*argv, "--port", "0"], stdout=subprocess.PIPE, text=True, env=env_for(pgdata), cwd=ROOT
    )
    try:
        assert web.stdout is not None
        url = web.stdout.readline().split()[2]
        sources = httpx.get(url + "api/sources", timeout=30).json()
        assert {s["source"] for s in sources} >= {"demo-qingcloud"}
    finally:
        web.terminate()
        assert web.wait(timeout=30) == EXIT_OK


def cookbook_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", COOKBOOK.read_text(), flags=re.S)


def test_every_cookbook_query_runs_through_db_psql(
    demo: subprocess.CompletedProcess[str], pgdata: Path
):
    blocks = cookbook_blocks()
    assert len(blocks) >= 10
    script = Path(tempfile.mkdtemp(prefix="cookbook-")) / "cookbook.sql"
    script.write_text("\n".join(blocks))
    values = {"source": "demo-qingcloud", "at": "2026-01-02", "from": "2026-01-01", "to": "now"}
    variables = [arg for k, v in values.items() for arg in ("-v", f"{k}={v}")]
    done = run("db", "psql", "-X", "-v", "ON_ERROR_STOP=1", *variables, "-f", str(script),
               pgdata=pgdata)  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    assert "ERROR" not in done.stderr
    assert done.stdout.count("row") >= len(blocks)  # "(N rows)" per query


def test_dump_writes_the_inventory_database(
    demo: subprocess.CompletedProcess[str], pgdata: Path, tmp_path: Path
):
    target = tmp_path / "inventory.sql"
    done = run("db", "dump", "--schema-only", "-f", str(target), pgdata=pgdata)
    assert done.returncode == EXIT_OK, done.stderr
    text = target.read_text()
    assert "CREATE TABLE public.images" in text and "CREATE VIEW public.report_images" in text


def test_start_stop_status_as_a_service(demo: subprocess.CompletedProcess[str], pgdata: Path):
    again = run("db", "start", pgdata=pgdata)
    assert again.returncode == EXIT_OK and "already running" in again.stdout

    stopped = run("db", "stop", pgdata=pgdata)
    assert stopped.returncode == EXIT_OK and "stopped" in stopped.stdout, stopped.stderr
    twice = run("db", "stop", pgdata=pgdata)
    assert twice.returncode == EXIT_OK and "not running" in twice.stdout
    status = run("db", "status", pgdata=pgdata)
    assert status.returncode == EXIT_SKIPPED and "not running" in status.stdout
    assert "db start" in status.stdout

    # Not kept running: psql starts the server for itself and stops it as it exits.
    alone = run("db", "psql", "-tAc", "select 1", pgdata=pgdata)
    assert alone.returncode == EXIT_OK and alone.stdout.strip() == "1", alone.stderr
    assert run("db", "status", pgdata=pgdata).returncode == EXIT_SKIPPED

    started = run("db", "start", pgdata=pgdata)
    assert started.returncode == EXIT_OK and "started" in started.stdout, started.stderr
    assert run("db", "status", pgdata=pgdata).returncode == EXIT_OK


def test_stop_leaves_it_to_a_process_still_using_it(
    demo: subprocess.CompletedProcess[str], pgdata: Path
):
    assert run("db", "start", pgdata=pgdata).returncode == EXIT_OK
    user = subprocess.Popen(
        [str(INVENTORY), "db", "psql", "-tAc", "select pg_sleep(4)"],
        env=env_for(pgdata),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (
            user.pid
            not in json.loads(run("db", "status", "--json", pgdata=pgdata).stdout)["processes"]
        ):
            assert time.monotonic() < deadline, "the psql process never showed as a user"
            time.sleep(0.1)
        stop = run("db", "stop", pgdata=pgdata)
        assert stop.returncode == EXIT_OK and f"pid {user.pid}" in stop.stdout, stop.stdout
        status = run("db", "status", pgdata=pgdata)
        assert status.returncode == EXIT_OK  # still up for the query under way
        assert "stops when the last inventory process using it exits" in status.stdout
        assert user.wait(60) == 0, user.stderr.read() if user.stderr else ""
    finally:
        user.kill()
        user.wait()
    # ... and the last of them stopped it as it exited.
    assert run("db", "status", pgdata=pgdata).returncode == EXIT_SKIPPED


def test_tcp_port_for_tools_without_unix_sockets(
    demo: subprocess.CompletedProcess[str], pgdata: Path
):
    import socket

    assert run("db", "stop", pgdata=pgdata).returncode == EXIT_OK
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = run("db", "start", "--port", str(port), pgdata=pgdata)
    assert started.returncode == EXIT_OK, started.stderr
    assert f"127.0.0.1:{port}" in started.stdout
    url = run("db", "url", "--tcp", pgdata=pgdata)
    assert url.stdout.strip() == f"postgresql://postgres@127.0.0.1:{port}/inventory"
    import psycopg

    with psycopg.connect(url.stdout.strip()) as conn:
        assert conn.execute("select count(*) from images").fetchone()[0] > 0  # type: ignore[index]
    other = run("db", "start", "--port", str(port + 1), pgdata=pgdata)
    assert other.returncode == EXIT_CONFIG and "db stop" in other.stderr
    assert run("db", "stop", pgdata=pgdata).returncode == EXIT_OK


def test_a_configured_database_is_used_not_the_embedded_one(database_url: str, tmp_path: Path):
    env = {**os.environ, "INVENTORY_PGDATA": str(tmp_path / "unused")}
    start = subprocess.run(
        [str(INVENTORY), "db", "start"], capture_output=True, text=True, env=env, check=False
    )
    assert start.returncode == EXIT_CONFIG
    assert "INVENTORY_DATABASE_URL" in start.stderr and "Traceback" not in start.stderr
    query = subprocess.run(
        [str(INVENTORY), "db", "psql", "-tAc", "select current_database()"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert query.returncode == EXIT_OK, query.stderr
    from sqlalchemy.engine import make_url

    assert query.stdout.strip() == make_url(database_url).database
    assert not (tmp_path / "unused").exists()


def test_a_password_stays_off_the_clients_command_line_and_out_of_sight(
    database_url: str, tmp_path: Path
) -> None:
    """The review found URL.set(password=None) kept the password: psql got it in argv,
    where `ps` shows it. The test server trusts loopback, so a password is accepted and
    ignored, and the child's own command line and environment can be read while it runs."""
    from sqlalchemy.engine import make_url

    secret = "pw-must-not-show-71"
    url = make_url(database_url).set(drivername="postgresql", password=secret)
    env = {
        **os.environ,
        "INVENTORY_PGDATA": str(tmp_path / "unused"),
        "INVENTORY_DATABASE_URL": url.render_as_string(hide_password=False),
    }
    proc = subprocess.Popen(
        [str(INVENTORY), "db", "psql", "-tAc", "select pg_sleep(3)"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        child = None
        while child is None and time.monotonic() < deadline:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            child = pids[0] if pids else None
            time.sleep(0.05)
        assert child is not None, "psql never started"
        argv = Path(f"/proc/{child}/cmdline").read_bytes().decode()
        environ = Path(f"/proc/{child}/environ").read_bytes().decode()
        assert secret not in argv, argv
        assert f"PGPASSWORD={secret}" in environ.split("\0")
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == EXIT_OK, err
    finally:
        proc.kill()
        proc.wait()
    for args in (("db", "url"), ("db", "status"), ("db", "status", "--json"), ("db", "start")):
        done = subprocess.run(
            [str(INVENTORY), *args], capture_output=True, text=True, env=env, check=False
        )
        assert secret not in done.stdout + done.stderr, args
    bare = make_url(database_url).set(drivername="postgresql")
    rendered = bare.render_as_string(hide_password=False)
    in_url = f"{rendered}{'&' if '?' in rendered else '?'}password={secret}"
    in_query = {**env, "INVENTORY_DATABASE_URL": in_url}
    shown = subprocess.run(
        [str(INVENTORY), "db", "url"], capture_output=True, text=True, env=in_query, check=False
    )
    assert shown.returncode == EXIT_OK and secret not in shown.stdout + shown.stderr
    assert "password=***" in shown.stdout


def test_db_start_on_a_taken_port_changes_nothing(
    demo: subprocess.CompletedProcess[str], pgdata: Path
) -> None:
    import socket

    assert run("db", "stop", pgdata=pgdata).returncode == EXIT_OK
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("db", "start", "--port", str(port), pgdata=pgdata)
    assert done.returncode == EXIT_CONFIG and "taken" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (pgdata / "inventory-keep-running").exists()
    assert run("db", "status", pgdata=pgdata).returncode == EXIT_SKIPPED
