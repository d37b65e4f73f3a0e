"""Every `inventory` command line in jobs/ (systemd units, Kubernetes manifests, crontab)
parses with the CLI as it is: a renamed flag cannot leave a deployment file behind."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from inventory.cli import _parser

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def command_lines() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for path in sorted(p for p in JOBS.rglob("*") if p.is_file()):
        joined = re.sub(r"\\\n\s*", " ", path.read_text())  # continued lines as one
        for line in joined.splitlines():
            if line.lstrip().startswith("#"):
                continue
            if (match := re.search(r"command: \[(.*)\]", line)) is not None:
                words = [w.strip().strip('"') for w in match[1].split(",")]
            elif (match := re.search(r"(?:^|[\s/])inventory\s+(.*)$", line)) is not None:
                words = ["inventory", *shlex.split(match[1].split(";")[0].split("||")[0])]
            else:
                continue
            if words and words[0] == "inventory":
                found.append((f"{path.relative_to(JOBS)}: {line.strip()}", words[1:]))
    return found


def test_the_deploy_files_run_inventory() -> None:
    places = {where.split(":")[0] for where, _ in command_lines()}
    assert {
        "systemd/inventory-worker.service",
        "systemd/inventory-scheduler.service",
        "kubernetes/worker-deployment.yaml",
        "kubernetes/scheduler-deployment.yaml",
        "systemd/inventory-web.service",
        "kubernetes/web-deployment.yaml",
    } <= places


@pytest.mark.parametrize(("where", "argv"), command_lines(), ids=lambda v: str(v)[:60])
def test_each_command_line_parses(where: str, argv: list[str]) -> None:
    try:
        _parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"{where}: does not parse (exit {exit_.code})")
