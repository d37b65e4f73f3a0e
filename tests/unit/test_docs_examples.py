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
