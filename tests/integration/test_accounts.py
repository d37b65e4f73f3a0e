"""An account declared once, a source listing its zones: one source per zone, each with
its own name, runs, lock and history, all signed with the account's credentials."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine

from inventory.config import load_settings
from inventory.sync import sync_source

from .helpers import DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, Emulator, fetch_all
from .test_cli import inventory
from .test_sync import FAST


def test_each_zone_of_an_account_syncs_as_its_own_source(
    engine: Engine, emulator: Emulator, tmp_path: Path
) -> None:
    emu = emulator.reset(images=120, page_size=40)
    os.environ["INVENTORY_TEST_ACCOUNT_KEY_ID"] = DEFAULT_ACCESS_KEY_ID
    os.environ["INVENTORY_TEST_ACCOUNT_SECRET"] = DEFAULT_SECRET_ACCESS_KEY
    config = tmp_path / "inventory.toml"
    config.write_text(
        f"""
[accounts.main]
provider = "qingcloud"
endpoint = "{emu.endpoint}"
credentials = {{ access_key_id = "${{INVENTORY_TEST_ACCOUNT_KEY_ID}}", \
secret_access_key = "${{INVENTORY_TEST_ACCOUNT_SECRET}}" }}

[[sources]]
name = "qy"
account = "main"
zones = ["pek3a", "sh1a"]
page_size = 40
"""
    )
    settings = load_settings(config)
    results = [sync_source(engine, settings, s, policy=FAST) for s in settings.sources]
    assert [(r.source, r.status, r.inserted) for r in results] == [
        ("qy-pek3a", "succeeded", 120),
        ("qy-sh1a", "succeeded", 120),
    ]
    sources = fetch_all(
        engine,
        """SELECT s.name, s.location, s.account, count(i.id) AS images,
                  count(DISTINCT r.id) AS runs
             FROM sources s JOIN images i ON i.source_id = s.id
             JOIN sync_runs r ON r.source_id = s.id
            GROUP BY s.name, s.location, s.account ORDER BY s.name""",
    )
    assert [tuple(r) for r in sources] == [
        ("qy-pek3a", "pek3a", "main", 120, 1),
        ("qy-sh1a", "sh1a", "main", 120, 1),
    ]

    # `inventory status` names each source's account, its sources together.
    sync_source(engine, settings, emu.source("lone"), policy=FAST)  # no account
    status = inventory("status", config=config)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()[1:]
    assert lines[0].split()[:3] == ["SOURCE", "ACCOUNT", "PROVIDER"]
    rows = [line.split()[:3] for line in lines[1:4]]
    assert rows == [
        ["lone", "-", "qingcloud"],
        ["qy-pek3a", "main", "qingcloud"],
        ["qy-sh1a", "main", "qingcloud"],
    ]


def test_reports_list_an_accounts_sources_together_and_filter_by_account(
    engine: Engine, emulator: Emulator, tmp_path: Path
) -> None:
    import json

    emu = emulator.reset(images=30, page_size=30)
    os.environ["INVENTORY_TEST_ACCOUNT_KEY_ID"] = DEFAULT_ACCESS_KEY_ID
    os.environ["INVENTORY_TEST_ACCOUNT_SECRET"] = DEFAULT_SECRET_ACCESS_KEY
    config = tmp_path / "inventory.toml"
    credentials = (
        'credentials = { access_key_id = "${INVENTORY_TEST_ACCOUNT_KEY_ID}", '
        'secret_access_key = "${INVENTORY_TEST_ACCOUNT_SECRET}" }'
    )
    config.write_text(
        f"""
[accounts.zeta]
provider = "qingcloud"
endpoint = "{emu.endpoint}"
{credentials}

[accounts.alpha]
provider = "qingcloud"
endpoint = "{emu.endpoint}"
{credentials}

[[sources]]
name = "a"
account = "zeta"
zones = ["pek3a", "sh1a"]

[[sources]]
name = "b"
account = "alpha"
zone = "pek3a"
"""
    )
    settings = load_settings(config)
    for source in (*settings.sources, emu.source("lone")):
        assert sync_source(engine, settings, source, policy=FAST).status == "succeeded"

    def report(*args: str) -> list[dict[str, object]]:
        done = inventory("report", *args, "--format", "json", config=config)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    health = report("health")
    assert [(r["source"], r["account"]) for r in health] == [
        ("lone", None),
        ("b", "alpha"),
        ("a-pek3a", "zeta"),
        ("a-sh1a", "zeta"),
    ]
    summary = {(r["account"], r["source"]) for r in report("summary")}
    assert ("zeta", "a-sh1a") in summary and (None, "lone") in summary
    flagged = report("flagged", "--account", "zeta")
    assert flagged and {r["source"] for r in flagged} == {"a-pek3a", "a-sh1a"}
    assert {r["account"] for r in flagged} == {"zeta"}
    table = inventory("report", "health", config=config).stdout.splitlines()
    assert table[0].split()[:2] == ["SOURCE", "ACCOUNT"]
