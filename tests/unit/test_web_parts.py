"""The dashboard's pure parts: chart geometry, credentials, the address check, [web]."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from inventory.config import WebSettings, load_settings
from inventory.errors import ConfigError
from inventory.secrets import Secret
from inventory.source import SecretRef
from inventory.web import charts
from inventory.web.security import Credentials, check_address, credentials, is_loopback

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _interval(status: str, start: timedelta, end: timedelta | None) -> dict[str, object]:
    return {"status": status, "valid_from": T0 + start, "valid_to": T0 + end if end else None}


def test_timeline_is_proportional_in_order_and_fills_the_chart() -> None:
    line = charts.timeline(
        [
            _interval("available", timedelta(0), timedelta(days=10)),
            _interval("deprecated", timedelta(days=10), timedelta(days=15)),
            _interval("gone", timedelta(days=15), None),
        ],
        now=T0 + timedelta(days=20),
    )
    assert [s.status for s in line.segments] == ["available", "deprecated", "gone"]
    assert [round(s.width) for s in line.segments] == [480, 240, 240]
    assert line.segments[0].x == 0
    for left, right in zip(line.segments, line.segments[1:], strict=False):
        assert left.x + left.width == pytest.approx(right.x)
    assert line.segments[-1].end is None
    assert [t.label for t in line.ticks][0::4] == ["2026-11-01", "2026-11-21"]


def test_a_status_held_for_seconds_stays_visible_and_the_sum_still_fits() -> None:
    line = charts.timeline(
        [
            _interval("available", timedelta(0), timedelta(days=30)),
            _interval("deprecated", timedelta(days=30), timedelta(days=30, seconds=5)),
            _interval("gone", timedelta(days=30, seconds=5), None),
        ],
        now=T0 + timedelta(days=30, seconds=10),
    )
    widths = [s.width for s in line.segments]
    assert min(widths) >= 20
    assert sum(widths) == pytest.approx(charts.WIDTH)
    assert line.segments[-1].x + line.segments[-1].width == pytest.approx(charts.WIDTH)


def test_many_brief_statuses_leave_the_long_one_most_of_the_chart() -> None:
    flaps = [
        _interval(
            ("deprecated", "available")[n % 2],
            timedelta(days=300, hours=n),
            timedelta(days=300, hours=n + 1),
        )
        for n in range(100)
    ]
    line = charts.timeline(
        [_interval("available", timedelta(0), timedelta(days=300)), *flaps],
        now=T0 + timedelta(days=300, hours=100),
    )
    first, *brief = line.segments
    assert first.width >= 0.75 * charts.WIDTH
    assert all(s.width > 1 for s in brief)
    assert sum(s.width for s in line.segments) == pytest.approx(charts.WIDTH)
    # The ticks follow the drawing: the axis' middle (day 152) is in the first segment.
    xs = [t.x for t in line.ticks]
    assert xs == sorted(xs) and xs[0] == 0 and xs[-1] == pytest.approx(charts.WIDTH)
    assert 0 < xs[2] < first.width


def test_daily_chart_stacks_statuses_and_scales_to_a_round_top() -> None:
    rows = [
        {"day": d, "source": "s", "provider": "qingcloud", "status": st, "images": n}
        for d, st, n in (
            (date(2026, 11, 1), "available", 80),
            (date(2026, 11, 1), "deprecated", 0),
            (date(2026, 11, 2), "available", 70),
            (date(2026, 11, 2), "deprecated", 14),
        )
    ]
    (chart,) = charts.daily_charts(rows)
    assert chart.statuses == ["available", "deprecated"]
    assert chart.top == 100 and chart.totals == {date(2026, 11, 1): 80, date(2026, 11, 2): 84}
    assert chart.latest == {"available": 70, "deprecated": 14}  # the legend
    assert [(b.day.day, b.status, b.images) for b in chart.bars] == [
        (1, "available", 80),
        (2, "available", 70),
        (2, "deprecated", 14),
    ]
    available, deprecated = chart.bars[1], chart.bars[2]
    assert deprecated.y + deprecated.height == pytest.approx(available.y)  # stacked on top
    assert [charts._nice(v) for v in (0, 1, 3, 84, 120, 5001)] == [1, 1, 5, 100, 200, 10000]


def test_credentials_accept_the_token_by_bearer_or_basic_and_nothing_else() -> None:
    token = Credentials(token=Secret("tok-123456-ünï"))
    assert token.accepts("Bearer tok-123456-ünï".encode())  # UTF-8 bytes, as sent
    assert token.accepts(b"Basic " + base64.b64encode("anyone:tok-123456-ünï".encode()))
    assert not token.accepts(b"Bearer tok-123456-un")
    assert not token.accepts(b"Basic " + base64.b64encode("tok-123456-ünï".encode()))  # no ':'
    assert not token.accepts(b"Basic not-base64!")
    assert not token.accepts(b"Digest tok-123456")
    assert not token.accepts(None)
    basic = Credentials(user="ops", password=Secret("pa55-word"))
    assert basic.accepts(b"Basic " + base64.b64encode(b"ops:pa55-word"))
    assert not basic.accepts(b"Basic " + base64.b64encode(b"root:pa55-word"))
    assert not basic.accepts(b"Bearer pa55-word")
    assert "pa55" not in repr(basic)


def test_only_loopback_may_go_without_credentials() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        check_address(host, Credentials())
    for host in ("0.0.0.0", "::", "10.0.0.5", "dashboard.example"):  # noqa: S104
        assert not is_loopback(host)
        with pytest.raises(ConfigError, match=f"{host} is not a loopback address"):
            check_address(host, Credentials())
        check_address(host, Credentials(token=Secret("tok-123456-abcdef")))


def test_host_header_names() -> None:
    from inventory.web.security import _host_name

    assert [
        _host_name(h) for h in ("127.0.0.1:8080", "localhost", "[::1]:80", "::1", "a.example:1")
    ] == ["127.0.0.1", "localhost", "::1", "::1", "a.example"]
    # Not a host and port: nothing (so not loopback either).
    assert [_host_name(h) for h in ("[::1]evil.example", "[::1]:x", "127.0.0.1:80x")] == [""] * 3


def test_credentials_come_from_web_settings_else_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("INVENTORY_WEB_TOKEN", "INVENTORY_WEB_USER", "INVENTORY_WEB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert not credentials(WebSettings()).configured
    monkeypatch.setenv("INVENTORY_WEB_TOKEN", "from-env-token-1234")
    assert credentials(WebSettings()).accepts(b"Bearer from-env-token-1234")
    secret = tmp_path / "token"
    secret.write_text("from-file-token-1234\n")
    settings = WebSettings(token=SecretRef("file", str(secret), "[web] token"))
    assert credentials(settings).accepts(b"Bearer from-file-token-1234")
    monkeypatch.setenv("INVENTORY_WEB_TOKEN", "short")
    with pytest.raises(ConfigError, match="the token has 5 characters; give at least 16"):
        credentials(WebSettings())
    monkeypatch.delenv("INVENTORY_WEB_TOKEN")
    monkeypatch.setenv("INVENTORY_WEB_PASSWORD", "lonely-password")
    with pytest.raises(ConfigError, match="go together"):
        credentials(WebSettings())


def _web(tmp_path: Path, body: str) -> WebSettings:
    path = tmp_path / "inventory.toml"
    path.write_text("[web]\n" + body)
    return load_settings(path).web


def test_web_table_is_checked(tmp_path: Path) -> None:
    web = _web(tmp_path, 'host = "10.0.0.5"\nport = 9000\nrole = "inventory_reader"\n')
    assert (web.host, web.port, web.role) == ("10.0.0.5", 9000, "inventory_reader")
    assert web.page_size == 50
    for body, message in (
        ("port = 70000\n", "port"),
        ('role = "Reader; DROP"\n', "role name"),
        ('user = "ops"\n', "user and password go together"),
        ('token = "plain-text-token"\n', "secrets are not written in the config file"),
        ('database_url = "postgresql://u:pw@db/inventory"\n', "contains a password"),
        ("colour = 1\n", "colour"),
        ('allowed_hosts = "inventory.internal"\n', "allowed_hosts: must be a list"),
    ):
        with pytest.raises(ConfigError, match=message):
            _web(tmp_path, body)
