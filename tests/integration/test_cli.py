"""The `inventory` command as cron and people run it: real processes, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_GUARD, EXIT_OK, EXIT_SKIPPED
from inventory.migrate import head_revision
from inventory.providers import PROVIDERS

from .helpers import Emulator, fetch_all

SECRET = "s3cr3t-value-that-must-never-be-logged"


def write_config(tmp_path: Path, emu: Emulator, extra: str = "") -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(f"\n{extra}\n" + emu.toml("qy-cli"))
    return path


def inventory(
    *args: str, config: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "inventory.cli",
            *(["--config", str(config)] if config else []),
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def start(*args: str, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "inventory.cli", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.reset(images=80, page_size=20)
    emulator.source()  # exports the credential variables for the subprocesses
    return emulator


def test_sync_status_and_json(engine: Engine, emu: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, emu)
    done = inventory("sync", "--verbose", config=config)
    assert done.returncode == EXIT_OK, done.stderr
    assert "qy-cli: succeeded" in done.stdout and "80 new" in done.stdout

    # Cron friendliness: quiet on success unless asked (stdout is not a terminal here).
    quiet = inventory("sync", config=config)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (EXIT_OK, "", "")

    logged = inventory("--log-level", "INFO", "--log-format", "json", "sync", config=config)
    lines = [json.loads(line) for line in logged.stderr.splitlines()]
    runs = [line for line in lines if line.get("event") == "sync_run"]
    assert len(runs) == 1
    assert runs[0]["source"] == "qy-cli" and runs[0]["outcome"] == "succeeded"
    assert runs[0]["unchanged"] == 80 and runs[0]["duration_s"] >= 0

    as_json = inventory("sync", "--json", config=config)
    summary = json.loads(as_json.stdout)
    assert summary["source"] == "qy-cli" and summary["unchanged"] == 80

    status = inventory("status", config=config)
    assert status.returncode == EXIT_OK
    assert "qy-cli" in status.stdout and "succeeded" in status.stdout


def test_two_processes_never_sync_one_source_at_once(
    engine: Engine, emu: Emulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, emu)
    emu.fail(page=1, kind="latency", latency_s=8.0, times=1)
    first = start("sync", config=config)
    emu.wait_for_requests(1)  # the first process holds the lock, waiting on page 1
    second = inventory("sync", "--verbose", config=config)
    _, err = first.communicate(timeout=60)

    assert second.returncode == EXIT_SKIPPED
    assert "already being synced" in second.stdout
    assert first.returncode == EXIT_OK, err
    runs = fetch_all(engine, "SELECT status FROM sync_runs")
    assert [r.status for r in runs] == ["succeeded"]


def test_guard_exit_code_and_override(engine: Engine, emu: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, emu)
    assert inventory("sync", config=config).returncode == EXIT_OK
    emu.mutate(seed=1, remove=50)
    missing = inventory("sync", "--verbose", config=config)  # missing once: not gone yet
    assert missing.returncode == EXIT_OK and "50 missing" in missing.stdout
    guarded = inventory("sync", config=config)  # the confirming listing meets the guard
    assert guarded.returncode == EXIT_GUARD
    assert "--allow-mass-disappearance" in guarded.stdout
    allowed = inventory("sync", "--verbose", "--allow-mass-disappearance", config=config)
    assert allowed.returncode == EXIT_OK
    assert "50 gone" in allowed.stdout


def test_failed_source_exit_code(engine: Engine, emu: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, emu)
    done = inventory("sync", config=config, env={Emulator.SECRET_ENV: "not-the-secret"})
    assert done.returncode == EXIT_FAILED
    assert "ret_code 1200" in done.stdout and "credentials.secret_access_key" in done.stdout


def test_config_errors_exit_2_with_file_source_field(emu: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, emu)
    config.write_text(config.read_text().replace("page_size = 20", "page_size = 1000"))
    done = inventory("sync", config=config)
    assert done.returncode == EXIT_CONFIG
    assert str(config) in done.stderr
    assert 'source "qy-cli"' in done.stderr and "page_size" in done.stderr

    missing = write_config(tmp_path, emu)
    env = {Emulator.SECRET_ENV: ""}
    done = inventory("sync", config=missing, env=env)
    assert done.returncode == EXIT_CONFIG
    assert f"{Emulator.SECRET_ENV} is not set" in done.stderr

    unknown = inventory("sync", "nope", config=missing)
    assert unknown.returncode == EXIT_CONFIG and "no source named 'nope'" in unknown.stderr


def test_secrets_never_logged_or_stored(engine: Engine, emulator: Emulator, tmp_path: Path) -> None:
    emulator.reset(images=30, page_size=10)
    assert emulator.app is not None
    emulator.app._secret = SECRET  # the emulator now accepts only this secret
    emulator.source()
    config = write_config(tmp_path, emulator)
    env = {Emulator.SECRET_ENV: SECRET}
    emulator.fail(page=2, kind="http_503", times=1)  # a retry, logged with its URL
    ok = inventory("--log-level", "DEBUG", "sync", config=config, env=env)
    assert ok.returncode == EXIT_OK, ok.stderr
    emulator.fail(page=None, kind="reset")  # a failing run, with its error stored
    failed = inventory("--log-level", "DEBUG", "sync", config=config, env=env)
    assert failed.returncode == EXIT_FAILED
    text = ok.stdout + ok.stderr + failed.stdout + failed.stderr
    assert "retrying" in text  # the log did cover the retry path
    assert SECRET not in text
    stored = fetch_all(
        engine, "SELECT coalesce(error, '') || coalesce(warning, '') AS msg FROM sync_runs"
    )
    assert all(SECRET not in r.msg for r in stored)
    assert any("page 1" in r.msg for r in stored)


def test_demo_flags_images_and_continues(engine: Engine) -> None:
    first = inventory("demo", "--images", "120")
    assert first.returncode == EXIT_OK, first.stderr
    out = first.stdout
    assert out.count("demo round 1 (a fresh database)") == len(PROVIDERS)
    assert "QingCloud: 12 became deprecated, 4 became deleted, 6 became ceased, 8 gone" in out
    assert "Tencent CVM: 12 became deprecated" in out
    assert "Kingsoft KEC: 8 gone" in out
    assert "Huawei IEC: 4 became deleted, 8 gone" in out
    assert "Huawei IMS v1.1: " in out and "Huawei IMS v1.1: none" not in out
    second = inventory("demo", "--images", "120")
    assert second.returncode == EXIT_OK, second.stderr
    assert second.stdout.count("demo round 2 (reusing the database") == len(PROVIDERS)
    for block in second.stdout.split("upstream:")[:-1]:
        assert "0 new, 0 changed" in block.rsplit("sync 1:", 1)[1]


def test_migrate_command_reports_head(database_url: str) -> None:
    done = inventory("migrate")
    assert done.returncode == EXIT_OK, done.stderr
    assert f"database at {head_revision()}" in done.stdout
    assert "inventory_test" in done.stdout  # names the database it migrated


def test_standalone_emulator_command() -> None:
    import httpx

    from inventory.providers.qingcloud.auth import QingCloudAuth
    from inventory.secrets import Secret

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inventory.cli",
            "emulate",
            "qingcloud",
            "--port",
            "0",
            "--images",
            "40",
            "--seed",
            "3",
            "--secret-access-key",
            "standalone-secret",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        url = banner.split(": ", 1)[1].split(" ", 1)[0]
        auth = QingCloudAuth("QYEMULATORACCESSKEY", Secret("standalone-secret"))
        body = httpx.get(
            url, params={"action": "DescribeImages", "zone": "pek3a"}, auth=auth
        ).json()
        assert body["ret_code"] == 0 and body["total_count"] > 0
        wrong = QingCloudAuth("QYEMULATORACCESSKEY", Secret("emulator-secret-access-key"))
        refused = httpx.get(
            url, params={"action": "DescribeImages", "zone": "pek3a"}, auth=wrong
        ).json()
        assert refused["ret_code"] == 1200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_unreachable_database_is_a_clear_error() -> None:
    done = inventory(
        "status", env={"INVENTORY_DATABASE_URL": "postgresql://nobody:pw-123456@127.0.0.1:1/x"}
    )
    assert done.returncode == EXIT_FAILED
    assert "cannot use the database" in done.stderr and "INVENTORY_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr and "pw-123456" not in done.stderr


def test_status_marks_stale_sources(engine: Engine, emu: Emulator, tmp_path: Path) -> None:
    from sqlalchemy import text

    config = write_config(tmp_path, emu)
    config.write_text(config.read_text().replace("max_attempts = 2", 'schedule = "0 * * * *"'))
    assert inventory("sync", config=config).returncode == EXIT_OK
    fresh = inventory("status", config=config)
    row = next(line for line in fresh.stdout.splitlines() if line.startswith("qy-cli"))
    assert " ok " in row and "STALE" not in fresh.stdout
    with engine.begin() as conn:  # the last success was five hours ago: past 3 intervals
        conn.execute(
            text(
                "UPDATE sync_runs SET started_at = started_at - interval '5 hours', "
                "finished_at = finished_at - interval '5 hours'"
            )
        )
    stale = inventory("status", config=config)
    assert "STALE" in stale.stdout and "qy-cli: stale" in stale.stdout


def test_sync_writes_the_metrics_textfile(engine: Engine, emu: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, emu)
    target = tmp_path / "textfile" / "inventory.prom"
    target.parent.mkdir()
    done = inventory("sync", "--metrics-textfile", str(target), config=config)
    assert done.returncode == EXIT_OK, done.stderr
    text = target.read_text()
    assert (
        'inventory_last_run_status{provider="qingcloud",source="qy-cli",status="succeeded"} 1.0'
        in text
    )
    occupied = tmp_path / "textfile" / "taken.prom"
    occupied.mkdir()  # a folder where the file should go: found only when writing
    unwritable = inventory("sync", "--metrics-textfile", str(occupied), config=config)
    assert unwritable.returncode == EXIT_OK  # metrics never hide the sync's outcome
    assert "could not write metrics" in unwritable.stderr


def test_a_metrics_textfile_node_exporter_would_never_read_is_refused(
    engine: Engine, emu: Emulator, tmp_path: Path
) -> None:
    """Before: a name without .prom or a missing folder synced and exited 0, and the
    metrics went where node_exporter never looks (or nowhere)."""
    config = write_config(tmp_path, emu)
    for path, said in (
        (tmp_path / "inventory.txt", "inventory.prom"),
        (tmp_path / "missing" / "inventory.prom", "does not exist"),
    ):
        done = inventory("sync", "--metrics-textfile", str(path), config=config)
        assert done.returncode == EXIT_CONFIG, done.stderr
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1
    status = inventory("status", "--json", config=config)
    assert status.returncode == EXIT_OK and status.stdout == ""  # nothing was synced


def test_status_as_json_lines(engine: Engine, emu: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, emu)
    assert inventory("sync", config=config).returncode == EXIT_OK
    done = inventory("status", "--json", config=config)
    assert done.returncode == EXIT_OK, done.stderr
    [record] = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["source"] == "qy-cli" and record["run_status"] == "succeeded"
    assert record["images"] == 80 and record["gone"] == 0 and record["stale"] is None
    assert record["last_success_at"].endswith("Z")  # the one time format of every --json


def test_jobs_sync_several_sources_at_once_and_never_more(
    engine: Engine, emu: Emulator, tmp_path: Path
) -> None:
    """`--jobs 3` over six sources: every source syncs once, its own run and lock, with
    runs overlapping but never more than three at once; the output has one JSON line per
    source however they interleave."""
    emu.fail(page=None, kind="latency", latency_s=0.05)  # so runs last long enough to overlap
    blocks = "\n".join(
        write_config(tmp_path, emu).read_text().replace('name = "qy-cli"', f'name = "qy-{n}"')
        for n in range(6)
    )
    config = tmp_path / "jobs.toml"
    config.write_text(blocks)
    done = inventory("sync", "--jobs", "3", "--json", config=config)
    assert done.returncode == EXIT_OK, done.stderr
    summaries = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(s["source"] for s in summaries) == [f"qy-{n}" for n in range(6)]
    assert {(s["status"], s["inserted"]) for s in summaries} == {("succeeded", 80)}
    runs = fetch_all(engine, "SELECT started_at, finished_at FROM sync_runs")
    moments = sorted([(r.started_at, 1) for r in runs] + [(r.finished_at, -1) for r in runs])
    at_once = peak = 0
    for _, step in moments:  # ends sort before starts at the same instant
        at_once += step
        peak = max(peak, at_once)
    assert 1 < peak <= 3

    bad = inventory("sync", "--jobs", "0", config=config)
    assert bad.returncode == EXIT_CONFIG
    assert "argument --jobs/-j: must be a whole number from 1 to 64" in bad.stderr


def test_a_closed_stdout_ends_output_quietly_and_every_source_still_syncs(
    engine: Engine, emulator: Emulator, tmp_path: Path
) -> None:
    """`inventory sync --json | head -1`: the reader leaves after the first line; the other
    sources sync all the same, the exit code is theirs, and no traceback is printed."""
    emu = emulator.reset(images=20, page_size=20)
    emu.fail(page=1, kind="latency", latency_s=1.0)  # the reader is gone before the next
    emu.source()
    sources = "".join(emu.toml(name) for name in ("qy-1", "qy-2", "qy-3"))
    config = tmp_path / "inventory.toml"
    config.write_text(sources)
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory.cli", "--config", str(config), "sync", "--json", "-j1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # as `head -1` does
    code = process.wait(timeout=120)
    stderr = process.stderr.read()
    assert json.loads(first)["source"] == "qy-1"
    assert code == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    synced = fetch_all(
        engine,
        "SELECT s.name FROM sync_runs r JOIN sources s ON s.id = r.source_id"
        " WHERE r.status = 'succeeded' ORDER BY s.name",
    )
    assert [r.name for r in synced] == ["qy-1", "qy-2", "qy-3"]


def test_mistakes_get_one_clear_line_not_a_traceback(tmp_path: Path, pg_server: Any) -> None:
    """A log level that does not exist, an emulator port in use, alerts on an unmigrated
    database: each says what to change (friction 3 of issue 13)."""
    import socket

    loud = inventory("--log-level", "LOUD", "status")
    assert loud.returncode == EXIT_CONFIG
    assert "'LOUD' is not one of DEBUG, INFO, WARNING, ERROR" in loud.stderr
    assert "Traceback" not in loud.stderr

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = inventory("emulate", "tencent", "--port", str(port))
    assert busy.returncode == EXIT_CONFIG, busy.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and "--port" in busy.stderr
    assert "Traceback" not in busy.stderr

    empty = pg_server.create_database("inventory_unmigrated")
    for command in (("alerts", "list"), ("alerts", "replay", "1")):
        done = inventory(*command, env={"INVENTORY_DATABASE_URL": empty})
        assert done.returncode == EXIT_CONFIG, done.stderr
        assert "run `inventory migrate`" in done.stderr
        assert "Traceback" not in done.stderr


def test_report_filters_name_what_exists(engine: Engine, emu: Emulator, tmp_path: Path) -> None:
    """A typo in a filter is an error listing the values that would do, never "(no rows)"
    with exit 0 (which read as "nothing flagged")."""
    config = write_config(tmp_path, emu)
    assert inventory("sync", config=config).returncode == EXIT_OK
    for args, names in (
        (("flagged", "--status", "bogus"), ("deprecated", "ceased", "gone")),
        (("changes", "--status", "bogus"), ("available", "gone")),
        (("health", "--status", "deprecated"), ("succeeded", "failed")),
        (("flagged", "--provider", "aws"), ("qingcloud", "tencent", "huawei-ims-v1")),
        (("summary", "--source", "nosuch"), ("qy-cli",)),
        (("flagged", "--account", "nobody"), ("none has one",)),
    ):
        done = inventory("report", *args, config=config)
        assert done.returncode == EXIT_CONFIG, (args, done.stdout, done.stderr)
        assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert repr(args[-1]) in done.stderr and all(n in done.stderr for n in names), done.stderr
    for args in (
        ("flagged", "--status", "gone"),
        ("flagged", "--status", "missing"),  # flagged until confirmed gone
        ("summary", "--source", "qy-cli"),
    ):
        assert inventory("report", *args, config=config).returncode == EXIT_OK


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_an_emulator_says_all_a_client_needs_and_prints_its_source(
    provider: str, engine: Engine, tmp_path: Path
) -> None:
    """Before: the key id but not the secret or password (the Huawei ones only in
    docstrings), and IMS needed iam_endpoint set by hand. Now the banner names every
    credential and option, and --print-config writes a table that syncs as printed."""
    import shlex
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    config = inventory("emulate", provider, "--port", port, "--print-config")
    assert config.returncode == EXIT_OK, config.stderr
    exports = dict(
        shlex.split(line.split("export ", 1)[1])[0].split("=", 1)
        for line in config.stdout.splitlines()
        if line.startswith("#   export ")
    )
    assert exports, config.stdout
    path = tmp_path / "inventory.toml"
    path.write_text(config.stdout)
    proc = subprocess.Popen(
        [sys.executable, "-m", "inventory.cli", "emulate", provider, "--port", port],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        said = ""
        while "--print-config" not in said:  # its last line names the option
            line = proc.stdout.readline()
            assert line, said
            said += line
        for value in exports.values():  # every credential it accepts, secrets included
            assert f" = {value}\n" in said, said
        if provider == "huawei-ims-v1":
            assert f"options.iam_endpoint = http://127.0.0.1:{port}" in said
        done = inventory("sync", "--verbose", config=path, env=exports)
        assert done.returncode == EXIT_OK, done.stdout + done.stderr
        assert f"emulated-{provider}: succeeded" in done.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert inventory("emulate", provider, "--port", "0", "--print-config").returncode == 2
