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
