"""`inventory init`, `inventory check` and shell completion, as a newcomer meets them
(issue 13): real processes, the five emulators over HTTP, the test database.

Before these commands a new user copied an example by hand, found out about a wrong key
or an unreachable endpoint only from a failed sync (which records a run), and had no
completion."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from inventory.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from inventory.config import load_settings
from inventory.providers import PROVIDERS

from .helpers import fetch_all
from .test_cli import inventory

INVENTORY = Path(sys.executable).parent / "inventory"


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for base in range(23000, 60000, 97):
        try:
            probes = []
            for port in range(base, base + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return base
    raise AssertionError("no free ports")


def test_init_writes_a_starter_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    done = inventory("init", "--path", str(path))
    assert done.returncode == EXIT_OK, done.stderr
    assert "check" in done.stdout and "--config" in done.stdout  # not ./inventory.toml
    settings = load_settings(str(path))
    assert sorted(s.provider for s in settings.sources) == sorted(PROVIDERS)
    text = path.read_text()
    assert text.count("#") > 20 and "${" in text  # commented, secrets as references
    assert 'secret_access_key = "${' in text

    again = inventory("init", "--path", str(path))
    assert again.returncode == EXIT_CONFIG and "--force" in again.stderr
    assert load_settings(str(path)).sources == settings.sources  # left alone

    two = inventory("init", "qingcloud", "tencent", "--path", str(path), "--force")
    assert two.returncode == EXIT_OK
    assert [s.provider for s in load_settings(str(path)).sources] == ["qingcloud", "tencent"]

    wrong = inventory("init", "aws", "--path", str(tmp_path / "x.toml"))
    assert wrong.returncode == EXIT_CONFIG and "huawei-iec" in wrong.stderr
    assert not (tmp_path / "x.toml").exists()


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], list[subprocess.Popen]]]:
    first = free_ports(5)
    path = tmp_path / "inventory.toml"
    done = inventory("init", "--emulators", "--first-port", str(first), "--path", str(path))
    assert done.returncode == EXIT_OK, done.stderr
    export = next(line for line in done.stdout.splitlines() if line.strip().startswith("export"))
    env = dict(pair.split("=", 1) for pair in export.split()[1:])
    procs = []
    for line in done.stdout.splitlines():
        if " emulate " in line:
            argv = line.strip().rstrip("&").split()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "inventory.cli", *argv[1:]],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
    for proc in procs:
        assert proc.stdout is not None and "emulator: http" in proc.stdout.readline()
    yield path, env, procs
    for proc in procs:
        proc.kill()
        proc.wait()


def test_check_says_ok_or_why_per_source_and_writes_nothing(
    engine: Engine, emulators: tuple[Path, dict[str, str], list[subprocess.Popen]]
) -> None:
    config, env, procs = emulators
    runs_before = fetch_all(engine, "SELECT count(*) AS n FROM sync_runs")[0].n

    ok = inventory("check", config=config, env=env)
    assert ok.returncode == EXIT_OK, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert [line.split()[:2] for line in lines][:2] == [["config", "ok"], ["database", "ok"]]
    for provider in PROVIDERS:
        line = next(line for line in lines if line.startswith(f"emulated-{provider} "))
        assert line.split()[1] == "ok" and "page 1" in line, line
    assert ok.stderr == ""
    # Nothing written: no run, no source, no image.
    assert fetch_all(engine, "SELECT count(*) AS n FROM sync_runs")[0].n == runs_before
    assert fetch_all(engine, "SELECT count(*) AS n FROM images")[0].n == 0
    assert fetch_all(engine, "SELECT count(*) AS n FROM sources")[0].n == 0
    as_json = inventory("check", "emulated-ksyun", "--json", config=config, env=env)
    records = [__import__("json").loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["check"], r["source"], r["status"]) for r in records] == [
        ("config", None, "ok"),
        ("database", None, "ok"),
        ("source", "emulated-ksyun", "ok"),
    ]

    synced = inventory("sync", config=config, env=env)
    assert synced.returncode == EXIT_OK, synced.stdout + synced.stderr

    # A wrong secret, a missing variable, a stopped emulator: each its own line.
    procs[0].send_signal(signal.SIGTERM)
    procs[0].wait(10)
    broken = {**env, "INVENTORY_EMU_TENCENT_SECRET_KEY": "not-the-key"}
    del broken["INVENTORY_EMU_KSYUN_SECRET_ACCESS_KEY"]
    env_without = {
        k: v for k, v in os.environ.items() if k != "INVENTORY_EMU_KSYUN_SECRET_ACCESS_KEY"
    }
    failed = subprocess.run(
        [str(INVENTORY), "--config", str(config), "check"],
        capture_output=True,
        text=True,
        env={**env_without, **broken},
        timeout=120,
        check=False,
    )
    assert failed.returncode == EXIT_FAILED
    by_source = {line.split()[0]: line for line in failed.stdout.splitlines()}
    assert by_source["emulated-qingcloud"].split()[1] == "FAIL"
    assert "ConnectError reaching http://127.0.0.1:" in by_source["emulated-qingcloud"]
    assert by_source["emulated-tencent"].split()[1] == "FAIL"
    assert "AuthFailure" in by_source["emulated-tencent"], by_source["emulated-tencent"]
    assert "credentials:" in by_source["emulated-ksyun"]
    assert "INVENTORY_EMU_KSYUN_SECRET_ACCESS_KEY" in by_source["emulated-ksyun"]
    assert by_source["emulated-huawei-iec"].split()[1] == "ok"
    assert "not-the-key" not in failed.stdout + failed.stderr


def test_check_names_an_unmigrated_database(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = pg_server.create_database("inventory_check_empty")
    path = tmp_path / "inventory.toml"
    assert inventory("init", "qingcloud", "--path", str(path)).returncode == EXIT_OK
    done = inventory("check", config=path, env={"INVENTORY_DATABASE_URL": empty})
    assert done.returncode == EXIT_FAILED
    line = next(line for line in done.stdout.splitlines() if line.startswith("database"))
    assert "FAIL" in line and "run `inventory migrate`" in line
    unknown = inventory("check", "nosuch", config=path)
    assert unknown.returncode == EXIT_CONFIG and "qingcloud-pek3a" in unknown.stderr


def complete_in_bash(*words: str, cwd: Path) -> list[str]:
    """What bash offers after `inventory WORDS<TAB>` with the script eval'ed."""
    script = subprocess.run(
        [str(INVENTORY), "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    line = " ".join(f"'{w}'" for w in words)
    shell = (
        f'{script}\nPATH="{INVENTORY.parent}:$PATH"\n'
        f"COMP_WORDS=(inventory {line}); COMP_CWORD={len(words)}\n"
        '_inventory_complete; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", shell], capture_output=True, text=True, cwd=cwd, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


def test_shell_completion(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    assert inventory("init", "qingcloud", "tencent", "--path", str(path)).returncode == EXIT_OK

    def offered(*words: str) -> list[str]:
        return complete_in_bash(*words, cwd=tmp_path)

    assert offered("rep") == ["report"]
    assert offered("report", "") == ["changes", "flagged", "health", "summary"]
    assert offered("report", "flagged", "--fo") == ["--format"]
    assert offered("report", "flagged", "--format", "") == ["csv", "json", "table"]
    assert offered("db", "st") == ["start", "status", "stop"]
    assert offered("sync", "") == ["qingcloud-pek3a", "tencent-guangzhou"]  # from the config
    assert offered("check", "ten") == ["tencent-guangzhou"]
    assert offered("--config", "inv") == ["inventory.toml"]
    for shell in ("zsh", "fish"):
        script = inventory("completion", shell)
        assert script.returncode == EXIT_OK and "__complete" in script.stdout
