"""The [alerts] config of docs/alerts.md parses, its verification snippet accepts our
signature, and globs become the LIKE patterns the rule SQL expects."""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path

import pytest

from inventory.alerts.channels import sign
from inventory.alerts.rules import glob_to_like
from inventory.config import DEFAULT_ALERT_STATUSES, parse_settings
from inventory.errors import ConfigError

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def _block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, f"no {language} block in {DOC}"
    return str(blocks[0])


def test_documented_config_parses() -> None:
    settings = parse_settings(tomllib.loads(_block("toml")), None)
    alerts = settings.alerts
    assert set(alerts.channels) == {"ops", "slack", "mail", "log"}
    assert alerts.channels["mail"].starttls and alerts.channels["mail"].recipients
    [rule] = alerts.rules
    assert (rule.severity, rule.channels) == ("critical", ("ops", "slack"))
    assert alerts.health_channels == ("ops",)


def test_default_rule_covers_every_channel() -> None:
    settings = parse_settings({"alerts": {"channels": {"a": {"type": "log"}}}}, None)
    [rule] = settings.alerts.rules
    assert rule.channels == ("a",)
    assert rule.statuses == DEFAULT_ALERT_STATUSES
    assert rule.events == ("status_changed", "disappeared")


def test_documented_verification_snippet_accepts_our_signature() -> None:
    namespace: dict[str, object] = {}
    exec(_block("python"), namespace)  # noqa: S102 - our own documentation
    verify = namespace["verify"]
    assert callable(verify)
    body = b'{"kind": "event"}'
    timestamp = str(int(time.time()))
    headers = {
        "X-Inventory-Timestamp": timestamp,
        "X-Inventory-Signature": sign("k", timestamp, body),
    }
    assert verify(b"k", headers, body)
    assert not verify(b"other", headers, body)
    assert not verify(b"k", headers, body + b" ")


@pytest.mark.parametrize(
    ("glob", "like"),
    [("ubuntu-*", "ubuntu-%"), ("a?c", "a_c"), ("100%_x", "100\\%\\_x"), ("plain", "plain")],
)
def test_glob_to_like(glob: str, like: str) -> None:
    assert glob_to_like(glob) == like


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"type": "pager"}, "field type: must be one of"),
        ({"type": "email", "to": []}, "field to: must list at least one"),
        ({"type": "email", "to": ["a@b"], "username": "u"}, "give both username and password"),
        ({"type": "webhook", "url": "ftp://x"}, "secrets are not written in the config"),
        ({"type": "log", "url": "http://x"}, "unknown field 'url'"),
    ],
)
def test_bad_channel_fields_are_named(channel: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_settings({"alerts": {"channels": {"c": channel}}}, None)
