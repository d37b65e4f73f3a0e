"""``regions = "*"``: one account's sources found through the provider's own region API
(Tencent DescribeRegions, QingCloud DescribeZones, KEC DescribeRegions, Huawei IAM's
projects for IMS), served by the emulators over real HTTP.

A region the emulator stops listing retires its source, and none of its images is marked
gone; listed again, it syncs again; a new region starts with a first sync, without alerts.
A discovery that fails retires nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from inventory.config import load_settings
from inventory.discovery import Discovery, expand
from inventory.emulation import FaultRule
from inventory.emulation.sources import Running
from inventory.providers.huawei_common.emulator_iam import DEFAULT_PROJECTS
from inventory.providers.huawei_ims.emulator import EMULATED as IMS
from inventory.providers.ksyun.emulator import EMULATED as KSYUN
from inventory.providers.qingcloud.emulator import EMULATED as QINGCLOUD
from inventory.providers.tencent.emulator import EMULATED as TENCENT
from inventory.sync import sync_source

from .helpers import fetch_all
from .test_cli import inventory
from .test_scheduler import wait_for
from .test_sync import FAST

EMULATORS = {
    "tencent": (TENCENT, "regions"),
    "qingcloud": (QINGCLOUD, "zones"),
    "ksyun": (KSYUN, "regions"),
    "huawei-ims-v1": (IMS, "regions"),
}


@pytest.fixture(params=sorted(EMULATORS))
def running(request: pytest.FixtureRequest) -> Iterator[Running]:
    emulated, _ = EMULATORS[request.param]
    started = emulated.start(images=60, seed=5, name="unused")
    os.environ.update(started.env)
    if request.param == "huawei-ims-v1":  # one region served by default: all its projects
        started.server.app.locations = frozenset(DEFAULT_PROJECTS)
    yield started
    started.stop()


def config_for(running: Running, tmp_path: Path, *, extra: str = "") -> Path:
    """One account reaching the emulator, and one source asking for all its regions."""
    table = running.source
    plural = EMULATORS[running.provider][1]
    credentials = ", ".join(f'{k} = "{v}"' for k, v in table["credentials"].items())
    page = f"page_size = {table['page_size']}\n" if "page_size" in table else ""
    options = table.get("options", {})
    given = ", ".join(f'{k} = "{v}"' for k, v in options.items())
    option_line = f"options = {{ {given} }}\n" if options else ""
    path = tmp_path / "inventory.toml"
    path.write_text(
        f"""
[accounts.fleet]
provider = "{running.provider}"
endpoint = "{table["endpoint"]}"
credentials = {{ {credentials} }}
{option_line}
[[sources]]
name = "all"
account = "fleet"
{plural} = "*"
{page}{extra}"""
    )
    return path


def set_locations(running: Running, locations: list[str]) -> None:
    answer = httpx.put(
        f"{running.server.url}/_emulator/locations", json={"locations": locations}, timeout=5
    )
    assert answer.status_code == 200, answer.text


def listed(running: Running) -> list[str]:
    return sorted(running.server.app.locations)


def image_counts(engine: Engine) -> dict[str, int]:
    rows = fetch_all(
        engine,
        "SELECT s.name, count(i.id) AS n FROM sources s"
        " LEFT JOIN images i ON i.source_id = s.id GROUP BY s.name",
    )
    return {row.name: row.n for row in rows}


def succeeded_sources(engine: Engine) -> set[str]:
    rows = fetch_all(
        engine,
        "SELECT DISTINCT s.name FROM sources s JOIN sync_runs r ON r.source_id = s.id"
        " WHERE r.status = 'succeeded'",
    )
    return {row.name for row in rows}


def retired_sources(engine: Engine) -> set[str]:
    rows = fetch_all(engine, "SELECT name FROM sources WHERE retired_at IS NOT NULL")
    return {row.name for row in rows}


def run_count(engine: Engine, name: str) -> int:
    rows = fetch_all(
        engine,
        "SELECT count(*) AS n FROM sync_runs r JOIN sources s ON s.id = r.source_id"
        " WHERE s.name = :name",
        name=name,
    )
    return int(rows[0].n)


def sync_all(engine: Engine, config: Path) -> tuple[list[Discovery], dict[str, str]]:
    settings, found = expand(load_settings(config), engine)
    results = {s.name: sync_source(engine, settings, s, policy=FAST) for s in settings.sources}
    return found, {name: result.status for name, result in results.items()}


def test_every_listed_region_becomes_a_source_and_a_vanished_one_retires(
    engine: Engine, running: Running, tmp_path: Path
) -> None:
    config = config_for(running, tmp_path)
    regions = listed(running)
    assert len(regions) >= 3

    found, statuses = sync_all(engine, config)
    names = [f"all-{region}" for region in regions]
    assert [f.sources for f in found] == [tuple(names)]
    assert found[0].added == tuple(names) and found[0].error is None
    assert statuses == dict.fromkeys(names, "succeeded")
    stored = image_counts(engine)
    rows = fetch_all(
        engine,
        "SELECT name, location, account, discovered_by, retired_at FROM sources ORDER BY name",
    )
    assert [tuple(r) for r in rows] == [
        (f"all-{region}", region, "fleet", "all", None) for region in regions
    ]

    # The emulator stops listing one region: its source retires, its images stay.
    gone_region = regions[0]
    set_locations(running, regions[1:])
    found, statuses = sync_all(engine, config)
    assert found[0].retired == (f"all-{gone_region}",)
    assert f"all-{gone_region}" not in statuses
    assert set(statuses.values()) == {"succeeded"}
    images = fetch_all(
        engine,
        """SELECT count(*) FILTER (WHERE i.gone_at IS NULL AND i.missing_runs = 0) AS kept,
                  count(*) AS images
             FROM images i JOIN sources s ON s.id = i.source_id WHERE s.name = :name""",
        name=f"all-{gone_region}",
    )[0]
    assert images.kept == images.images == stored[f"all-{gone_region}"] > 0
    events = fetch_all(
        engine,
        """SELECT e.kind, count(*) AS n FROM image_events e
             JOIN images i ON i.id = e.image_id JOIN sources s ON s.id = i.source_id
            WHERE s.name = :name GROUP BY e.kind""",
        name=f"all-{gone_region}",
    )
    assert [tuple(e) for e in events] == [("appeared", images.images)]

    # Asked for by name, a retired source is refused saying why.
    refused = inventory("sync", f"all-{gone_region}", config=config, env=running.env)
    assert refused.returncode == 2, refused.stderr
    assert "is retired" in refused.stderr and gone_region in refused.stderr

    # `inventory status` shows it retired.
    status = inventory("status", config=config, env=running.env)
    assert status.returncode == 0, status.stderr
    line = next(ln for ln in status.stdout.splitlines() if ln.startswith(f"all-{gone_region} "))
    assert "retired" in line

    # Listed again, it is restored and syncs against what it stored.
    set_locations(running, regions)
    found, statuses = sync_all(engine, config)
    assert found[0].restored == (f"all-{gone_region}",)
    assert statuses[f"all-{gone_region}"] == "succeeded"


def test_a_new_region_starts_with_a_first_sync_and_raises_no_alert(
    engine: Engine, running: Running, tmp_path: Path
) -> None:
    config = config_for(
        running,
        tmp_path,
        extra='\n[alerts.channels.log]\ntype = "log"\n\n[[alerts.rules]]\nname = "all"\n'
        'channels = ["log"]\n',
    )
    regions = listed(running)
    set_locations(running, regions[:-1])
    sync_all(engine, config)
    set_locations(running, regions)
    found, statuses = sync_all(engine, config)
    new = f"all-{regions[-1]}"
    assert found[0].added == (new,)
    assert statuses[new] == "succeeded"
    inserted = fetch_all(
        engine,
        """SELECT r.inserted FROM sync_runs r JOIN sources s ON s.id = r.source_id
            WHERE s.name = :name""",
        name=new,
    )
    assert [r.inserted for r in inserted] == [image_counts(engine)[new]]
    assert inserted[0].inserted > 0
    assert fetch_all(engine, "SELECT count(*) AS n FROM alert_outbox")[0].n == 0


def test_a_failed_discovery_retires_nothing_and_syncs_what_it_found_before(
    engine: Engine, running: Running, tmp_path: Path
) -> None:
    config = config_for(running, tmp_path, extra="max_attempts = 2\n")
    regions = listed(running)
    sync_all(engine, config)

    # Both attempts answered by a gateway error: discovery fails, nothing retires.
    running.server.app.faults.replace([FaultRule(kind="http_503", page=1, times=2)])
    settings, found = expand(load_settings(config), engine)
    assert found[0].error is not None and "503" in found[0].error
    assert found[0].retired == ()
    assert [s.name for s in settings.sources] == [f"all-{region}" for region in regions]
    assert (
        fetch_all(engine, "SELECT count(*) AS n FROM sources WHERE retired_at IS NOT NULL")[0].n
        == 0
    )

    # A listing of none is an error too, never "every region is gone".
    set_locations(running, [])
    settings, found = expand(load_settings(config), engine)
    assert found[0].error is not None and "listed none" in found[0].error
    assert found[0].retired == ()
    assert len(settings.sources) == len(regions)

    # `inventory sync` says so, exits 1, and still syncs the sources found before.
    set_locations(running, regions)
    running.server.app.faults.replace([FaultRule(kind="http_503", page=1, times=2)])
    result = inventory("sync", "--json", config=config, env=running.env)
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["status"] == "discovery_failed" and lines[0]["source"] == "all"
    assert sorted(line["source"] for line in lines[1:]) == [f"all-{r}" for r in regions]
    assert {line["status"] for line in lines[1:]} == {"succeeded"}


def test_the_scheduler_discovers_again_and_stops_syncing_a_retired_region(
    engine: Engine, running: Running, tmp_path: Path
) -> None:
    config = config_for(running, tmp_path, extra='schedule = "* * * * * *"\n')
    text = config.read_text()
    config.write_text(
        "[scheduler]\nleader_poll_s = 0.5\nmisfire_grace_s = 5\ndiscover_every_s = 1\n" + text
    )
    regions = listed(running)
    env = {**os.environ, **running.env}
    log_path = tmp_path / "scheduler.log"
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "inventory.cli", "--config", str(config), "scheduler"],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env=env,
        )
        try:
            names = [f"all-{region}" for region in regions]
            wait_for(lambda: set(names) <= succeeded_sources(engine), "a run of each region")
            set_locations(running, regions[1:])
            retired = f"all-{regions[0]}"
            wait_for(lambda: retired_sources(engine) == {retired}, "the retirement")
            # Runs of the retired source end; the others go on.
            time.sleep(1.5)  # a run that had started by then may still finish
            count = run_count(engine, retired)
            others = {name: run_count(engine, name) for name in names[1:]}
            wait_for(
                lambda: all(run_count(engine, n) >= 2 + before for n, before in others.items()),
                "two more runs of each of the others",
            )
            assert run_count(engine, retired) == count
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0, log_path.read_text()


DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def docs_examples() -> dict[str, str]:
    """The ``regions = "*"`` examples of docs/configuration.md, by provider."""
    section = DOCS.read_text().split('### Every region: `regions = "*"`')[1].split("\n## ")[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```toml\n")[1:]]
    examples = {}
    for block in blocks:
        provider = re.search(r'provider = "([a-z0-9-]+)"', block)
        assert provider is not None, block
        examples[provider[1]] = block
    return examples


def test_the_docs_show_a_discovery_example_for_each_provider_that_has_one() -> None:
    from inventory.providers import PROVIDERS

    discovering = {name for name, p in PROVIDERS.items() if p.spec.discovery is not None}
    assert set(docs_examples()) == discovering == set(EMULATORS)


def test_each_docs_example_finds_every_region_of_its_emulator(
    engine: Engine, running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = docs_examples()[running.provider]
    # The example's own ${NAME}s, given the emulator's keys; its account sent to the emulator.
    references = re.findall(r'(\w+) = "\$\{(\w+)\}"', block)
    values = running.server.app.credentials()
    for field, env in references:
        monkeypatch.setenv(env, values[field])
    endpoint = running.source["endpoint"]
    block = block.replace("\n[[sources]]", f'endpoint = "{endpoint}"\n\n[[sources]]', 1)
    if options := running.source.get("options"):  # its account, and the emulator's IAM
        given = ", ".join(f'{k} = "{v}"' for k, v in options.items())
        block = re.sub(r"options = \{[^}]*\}", f"options = {{ {given} }}", block, count=1)
    path = tmp_path / "inventory.toml"
    path.write_text(block)
    settings, found = expand(load_settings(path), engine)
    name = settings.templates[0].name
    assert found[0].error is None
    assert [s.name for s in settings.sources] == [f"{name}-{loc}" for loc in listed(running)]
    results = [sync_source(engine, settings, s, policy=FAST) for s in settings.sources[:1]]
    assert results[0].status == "succeeded" and results[0].inserted > 0
