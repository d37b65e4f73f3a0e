"""The example configuration in docs/ stays valid."""

from __future__ import annotations

from pathlib import Path

from inventory.config import load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_example_config_loads() -> None:
    settings = load_settings(DOCS / "examples" / "inventory.toml")
    names = [s.name for s in settings.sources]
    assert names == ["qingcloud-pek3a", "qingcloud-sh1a-platform"]
    platform = settings.source("qingcloud-sh1a-platform")
    assert dict(platform.filters) == {"provider": "system", "status": ["available", "deprecated"]}
    assert platform.credentials["secret_access_key"].kind == "file"


def test_normalization_doc_matches_every_status_map() -> None:
    """docs/normalization.md's side-by-side table lists each STATUS_MAP entry in its row."""
    import importlib
    import re

    columns = ["qingcloud", "tencent", "ksyun", "huawei_iec", "huawei_ims"]
    text = (DOCS / "normalization.md").read_text()
    table = text.split("## Status tables, side by side")[1].split("\n## ")[0]
    rows: dict[str, list[set[str]]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            status = cells[0].strip("`")
            rows[status] = [set(re.findall(r"`([^`]+)`", c)) for c in cells[1:]]
    assert set(rows) >= {"pending", "available", "deprecated", "failed", "unknown"}
    for index, name in enumerate(columns):
        module = importlib.import_module(f"inventory.providers.{name}.normalize")
        for raw, status in module.STATUS_MAP.items():
            assert raw in rows[status.value][index], (name, raw, status)


def _toml_block(page: str) -> str:
    text = (DOCS / "providers" / page).read_text()
    return text.split("```toml\n", 1)[1].split("```", 1)[0]


def test_qingcloud_page_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(_toml_block("qingcloud.md"))
    settings = load_settings(path)
    own, platform = settings.sources
    assert (own.provider, own.location, own.schedule) == ("qingcloud", "pek3a", "*/30 * * * *")
    assert dict(platform.filters) == {"provider": "system", "status": ["available", "deprecated"]}
    assert platform.credentials["secret_access_key"].kind == "file"


def test_emulators_doc_lists_every_fault_kind() -> None:
    """docs/emulators.md is the one list of fault kinds: exactly the engine's, no more."""
    import re

    from inventory.emulation import FAULT_KINDS

    text = (DOCS / "emulators.md").read_text()
    table = text.split("## Fault kinds")[1].split("The provider's own answers")[0]
    documented = {
        k
        for row in table.splitlines()
        if row.startswith("| `")
        for k in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])
    }
    assert documented == set(FAULT_KINDS)


def test_accounts_example_loads(tmp_path: Path) -> None:
    text = (DOCS / "configuration.md").read_text().split("## Accounts and regions")[1]
    path = tmp_path / "inventory.toml"
    path.write_text(text.split("```toml\n", 1)[1].split("```", 1)[0])
    settings = load_settings(path)
    assert [(s.name, s.location, s.account) for s in settings.sources] == [
        ("tc-prod-ap-guangzhou", "ap-guangzhou", "tc-prod"),
        ("tc-prod-ap-shanghai", "ap-shanghai", "tc-prod"),
        ("tc-prod-hk", "ap-hongkong", "tc-prod"),
    ]
    assert [s.rate_limit_per_s for s in settings.sources] == [40, 40, 10]
