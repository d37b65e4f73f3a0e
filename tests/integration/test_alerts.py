"""Alerts end to end: real syncs against the QingCloud emulator, a real local HTTP receiver
(webhook and Slack), a real local SMTP server (aiosmtpd), and the dispatcher.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from inventory.alerts.channels import sign
from inventory.alerts.dispatcher import DispatchResult, dispatch, replay
from inventory.config import Settings, parse_settings
from inventory.errors import ConfigError
from inventory.http import RetryPolicy
from inventory.sync import RunResult, sync_source

from .helpers import Emulator, fetch_all

FAST = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02)
HMAC_ENV = "INVENTORY_TEST_ALERT_HMAC"
HMAC_KEY = "alert-shared-secret-1"
SLACK_ENV = "INVENTORY_TEST_SLACK_URL"


# -- a real HTTP receiver ---------------------------------------------------------------------


class Receiver:
    """An HTTP server on loopback; each path has a behaviour and keeps what it received.

    Behaviours: ``ok``; ``fail:N`` (HTTP 500 N times, then 200); ``dead`` (always 500);
    ``stall`` (hold the request until :attr:`release` is set, then 200).
    """

    def __init__(self) -> None:
        self.behaviour: dict[str, str] = {}
        self.received: dict[str, list[tuple[dict[str, str], bytes]]] = {}
        self.calls: dict[str, int] = {}
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code = receiver.answer(self.path, dict(self.headers.items()), body)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        behaviour = self.behaviour.get(path, "ok")
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
            calls = self.calls[path]
        if behaviour == "dead":
            return 500
        if behaviour.startswith("fail:") and calls <= int(behaviour[5:]):
            return 500
        if behaviour == "stall":
            self.stalled.set()
            self.release.wait(60)
        with self.lock:
            self.received.setdefault(path, []).append(
                ({k.lower(): v for k, v in headers.items()}, body)
            )
        return 200

    def got(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.received.get(path, []))

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def alert_config(
    receiver: Receiver,
    smtp_port: int | None = None,
    *,
    rules: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    hook_path: str = "/hook",
) -> dict[str, Any]:
    os.environ[HMAC_ENV] = HMAC_KEY
    os.environ[SLACK_ENV] = receiver.url("/slack")
    channels: dict[str, Any] = {
        "hook": {"type": "webhook", "url": receiver.url(hook_path), "secret": f"${{{HMAC_ENV}}}"},
        "slack": {"type": "slack", "url": f"${{{SLACK_ENV}}}"},
        "other": {"type": "webhook", "url": receiver.url("/other")},
        "log": {"type": "log"},
    }
    if smtp_port is not None:
        channels["mail"] = {
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp_port,
            "from": "inventory@example.test",
            "to": ["ops@example.test"],
        }
    table: dict[str, Any] = {
        "channels": channels,
        "backoff_base_s": 0,
        "max_attempts": 3,
        "health_channels": [],
        **(extra or {}),
    }
    if rules is not None:
        table["rules"] = rules
    return {"alerts": table}


def make_settings(config: dict[str, Any]) -> Settings:
    return parse_settings(config, None)


def sync(engine: Engine, emu: Emulator, settings: Settings) -> RunResult:
    return sync_source(engine, settings, emu.source(), policy=FAST)


def outbox(engine: Engine) -> list[Any]:
    return fetch_all(engine, "SELECT * FROM alert_outbox ORDER BY id")


def verify(headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (docs/alerts.md)."""
    expected = (
        "sha256="
        + hmac.new(
            HMAC_KEY.encode(),
            headers["x-inventory-timestamp"].encode() + b"." + body,
            hashlib.sha256,
        ).hexdigest()
    )
    return hmac.compare_digest(expected, headers.get("x-inventory-signature", ""))


# -- tests ------------------------------------------------------------------------------------


def test_status_change_delivers_one_signed_alert_per_matching_channel(
    engine: Engine, emulator: Emulator, receiver: Receiver, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    settings = make_settings(
        alert_config(
            receiver,
            port,
            rules=[
                {"name": "deprecations", "channels": ["hook", "slack", "mail", "log"]},
                {"name": "never", "names": ["no-such-image-*"], "channels": ["other"]},
            ],
        )
    )
    emu = emulator.reset(images=40)
    assert sync(engine, emu, settings).ok
    [victim] = emu.mutate(seed=1, deprecate=1)["deprecate"]
    assert sync(engine, emu, settings).ok

    rows = outbox(engine)
    assert sorted(r.channel for r in rows) == ["hook", "log", "mail", "slack"]
    assert {r.kind for r in rows} == {"event"}

    result = dispatch(engine, settings)
    assert (result.sent, result.failed, result.dead) == (4, 0, 0)

    [(headers, body)] = receiver.got("/hook")
    assert verify(headers, body)
    payload = json.loads(body)
    assert headers["idempotency-key"] == payload["idempotency_key"]
    assert payload["event_count"] == 1
    [event] = payload["events"]
    assert (event["provider_image_id"], event["kind"], event["new_status"]) == (
        victim,
        "status_changed",
        "deprecated",
    )
    [(slack_headers, slack_body)] = receiver.got("/slack")
    assert victim in json.loads(slack_body)["text"]
    assert "x-inventory-signature" not in slack_headers  # no secret configured for Slack
    assert receiver.got("/other") == []
    [mail] = mailbox.messages
    message = message_from_bytes(mail, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert victim in message.get_content()
    assert (
        message["X-Inventory-Idempotency-Key"]
        == rows[[r.channel for r in rows].index("mail")].idempotency_key
    )

    # Nothing is sent twice: a second dispatch finds nothing due.
    again = dispatch(engine, settings)
    assert again.sent == 0 and len(receiver.got("/hook")) == 1
    attempts = fetch_all(engine, "SELECT outcome FROM alert_attempts")
    assert [a.outcome for a in attempts] == ["sent"] * 4


def test_receiver_failing_twice_gets_the_alert_on_the_third_attempt(
    engine: Engine, emulator: Emulator, receiver: Receiver
) -> None:
    receiver.behaviour["/hook"] = "fail:2"
    settings = make_settings(alert_config(receiver, rules=[{"channels": ["hook"]}]))
    emu = emulator.reset(images=20)
    assert sync(engine, emu, settings).ok
    emu.mutate(seed=2, deprecate=1)
    assert sync(engine, emu, settings).ok

    result = dispatch(engine, settings)
    assert (result.sent, result.failed, result.dead) == (1, 2, 0)
    assert receiver.calls["/hook"] == 3
    assert len(receiver.got("/hook")) == 1
    [row] = outbox(engine)
    assert (row.status, row.attempts) == ("sent", 3)
    attempts = fetch_all(engine, "SELECT attempt, outcome FROM alert_attempts ORDER BY id")
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "failed"), (2, "failed"), (3, "sent")]


def test_dead_receiver_ends_dead_without_blocking_another_channel(
    engine: Engine, emulator: Emulator, receiver: Receiver
) -> None:
    receiver.behaviour["/hook"] = "dead"
    settings = make_settings(alert_config(receiver, rules=[{"channels": ["hook", "slack"]}]))
    emu = emulator.reset(images=20)
    assert sync(engine, emu, settings).ok
    emu.mutate(seed=3, deprecate=2)
    assert sync(engine, emu, settings).ok

    result = dispatch(engine, settings)
    assert result.dead == 2 and result.sent == 2
    assert receiver.calls["/hook"] == 2 * 3  # max_attempts = 3 for each of the two alerts
    assert len(receiver.got("/slack")) == 2
    statuses = {(r.channel, r.status, r.attempts) for r in outbox(engine)}
    assert statuses == {("hook", "dead", 3), ("slack", "sent", 1)}

    # `alerts replay` re-queues a dead alert; once the receiver is back, it is delivered.
    dead_id = next(r.id for r in outbox(engine) if r.status == "dead")
    assert replay(engine, dead_id)
    assert not replay(engine, dead_id)  # pending now, not dead
    receiver.behaviour["/hook"] = "ok"
    assert dispatch(engine, settings).sent == 1
    assert len(receiver.got("/hook")) == 1


def test_killed_dispatcher_loses_nothing_and_resends_with_the_same_key(
    engine: Engine, emulator: Emulator, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.behaviour["/hook"] = "stall"
    config = alert_config(receiver, rules=[{"channels": ["hook"]}])
    config["alerts"]["channels"]["hook"]["timeout_s"] = 60
    settings = make_settings(config)
    emu = emulator.reset(images=20)
    assert sync(engine, emu, settings).ok
    emu.mutate(seed=4, deprecate=1)
    assert sync(engine, emu, settings).ok

    config_path = tmp_path / "inventory.toml"
    config_path.write_text(
        f"""
[alerts]
backoff_base_s = 0
max_attempts = 3
health_channels = []
[alerts.channels.hook]
type = "webhook"
url = "{receiver.url("/hook")}"
secret = "${{{HMAC_ENV}}}"
timeout_s = 60
"""
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory.cli", "--config", str(config_path), "alerts", "dispatch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert receiver.stalled.wait(60), "the dispatcher never reached the receiver"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    [row] = outbox(engine)
    assert row.status == "pending"  # the kill lost the delivery, not the alert
    [started] = fetch_all(engine, "SELECT outcome FROM alert_attempts")
    assert started.outcome == "started"  # the interrupted attempt is on record

    receiver.behaviour["/hook"] = "ok"
    receiver.release.set()  # the stalled request completes too: a duplicate, same key
    # PostgreSQL frees the killed session's row lock when it sees the connection close;
    # until then SKIP LOCKED passes over the row, so try a bounded number of times.
    result = DispatchResult()
    for _ in range(200):
        result.add(dispatch(engine, settings))
        if result.sent:
            break
    assert result.sent == 1
    [row] = outbox(engine)
    assert row.status == "sent"
    deliveries = receiver.got("/hook")
    assert 1 <= len(deliveries) <= 2
    keys = {headers["idempotency-key"] for headers, _ in deliveries}
    assert keys == {row.idempotency_key}
    assert all(verify(h, b) for h, b in deliveries)
    outcomes = [
        a.outcome for a in fetch_all(engine, "SELECT outcome FROM alert_attempts ORDER BY id")
    ]
    assert outcomes == ["failed", "sent"]  # the interrupted one is closed as failed


def test_failed_sync_produces_no_disappearance_alert(
    engine: Engine, emulator: Emulator, receiver: Receiver
) -> None:
    settings = make_settings(
        alert_config(
            receiver, rules=[{"events": ["disappeared", "status_changed"], "channels": ["hook"]}]
        )
    )
    emu = emulator.reset(images=250, page_size=100)
    assert sync(engine, emu, settings).ok
    emu.mutate(seed=5, remove=30, deprecate=5)
    emu.fail(page=2, kind="http_503", times=2)  # both attempts of the next run fail
    result = sync(engine, emu, settings)
    assert result.status == "failed"
    assert outbox(engine) == []
    assert dispatch(engine, settings).sent == 0
    assert receiver.got("/hook") == []

    # The control: once the listing completes, the same changes do alert: the deprecations
    # at once, the removed images when a second complete listing confirms them gone.
    retried = sync(engine, emu, settings)
    assert retried.ok and (retried.disappeared, retried.missing) == (0, 30)
    confirmed = sync(engine, emu, settings)
    assert confirmed.ok and confirmed.disappeared == 30
    sizes = [len(row.event_ids) for row in outbox(engine)]
    assert sum(sizes) == 35 and sizes[-1] == 30  # the disappearances come last, together


def test_first_sync_of_a_new_source_sends_no_per_image_alert(
    engine: Engine, emulator: Emulator, receiver: Receiver
) -> None:
    settings = make_settings(
        alert_config(
            receiver,
            rules=[
                {
                    "events": ["appeared", "status_changed", "disappeared"],
                    "statuses": ["available", "deprecated", "deleted", "ceased"],
                    "channels": ["hook"],
                }
            ],
        )
    )
    emu = emulator.reset(images=60)
    first = sync(engine, emu, settings)
    assert first.ok and first.inserted == 60
    assert outbox(engine) == []
    # The control: appearances in a later run do alert under this rule.
    emu.mutate(seed=6, add=2)
    assert sync(engine, emu, settings).ok
    assert len(outbox(engine)) == 2


def test_volatile_field_changes_never_alert(
    engine: Engine, emulator: Emulator, receiver: Receiver
) -> None:
    rule = {"events": ["status_changed", "changed", "disappeared"], "channels": ["hook"]}
    settings = make_settings(alert_config(receiver, rules=[rule]))
    emu = emulator.reset(images=20)
    assert sync(engine, emu, settings).ok
    ids = emu.catalogue.ids()
    # QingCloud's volatile fields: left out of the fingerprint, so no event, so no alert.
    emu.edit(ids[0], status_time="2030-01-01T00:00:00Z", transition_status="updating")
    assert sync(engine, emu, settings).ok
    assert outbox(engine) == []
    # The control: a durable field change under the same rule does alert.
    emu.edit(ids[1], description="a new description")
    assert sync(engine, emu, settings).ok
    assert len(outbox(engine)) == 1


def test_five_thousand_changes_arrive_as_one_digest_per_channel(
    engine: Engine, emulator: Emulator, receiver: Receiver, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    settings = make_settings(
        alert_config(receiver, port, rules=[{"channels": ["hook", "slack", "mail"]}])
    )
    emu = emulator.reset(images=5000, page_size=100)
    assert sync(engine, emu, settings).ok
    catalogue = emu.catalogue
    for image_id in catalogue.ids():
        current = catalogue.get(image_id)
        assert current is not None
        emu.edit(image_id, status="deleted" if current["status"] == "deprecated" else "deprecated")
    run = sync(engine, emu, settings)
    assert run.ok and run.changed == 5000

    rows = outbox(engine)
    assert sorted((r.channel, r.kind, len(r.event_ids)) for r in rows) == [
        ("hook", "digest", 5000),
        ("mail", "digest", 5000),
        ("slack", "digest", 5000),
    ]
    assert dispatch(engine, settings).sent == 3
    [(headers, body)] = receiver.got("/hook")
    payload = json.loads(body)
    assert verify(headers, body)
    assert payload["kind"] == "digest" and payload["event_count"] == 5000
    assert len({e["provider_image_id"] for e in payload["events"]}) == 5000
    assert len(receiver.got("/slack")) == 1
    assert len(mailbox.messages) == 1


def test_source_health_alerts_once_and_again_on_recovery(
    engine: Engine, emulator: Emulator, receiver: Receiver
) -> None:
    config = alert_config(receiver, rules=[{"channels": ["hook"]}])
    config["alerts"]["health_channels"] = ["hook"]
    config["alerts"]["health_failures"] = 2
    settings = make_settings(config)
    emu = emulator.reset(images=20)
    assert sync(engine, emu, settings).ok
    emu.fail(page=1, kind="http_503", times=6)  # three runs of two attempts each
    for _ in range(3):
        assert sync(engine, emu, settings).status == "failed"
        dispatch(engine, settings)
    alerts = [json.loads(b) for _, b in receiver.got("/hook")]
    assert [(a["kind"], a["health"]["state"]) for a in alerts] == [("health", "failing")]

    assert sync(engine, emu, settings).ok
    dispatch(engine, settings)
    dispatch(engine, settings)
    alerts = [json.loads(b) for _, b in receiver.got("/hook")]
    assert [a["health"]["state"] for a in alerts] == ["failing", "ok"]


def test_alert_config_errors_name_the_field(receiver: Receiver) -> None:
    bad_slack = alert_config(receiver)
    bad_slack["alerts"]["channels"]["slack"]["url"] = "https://hooks.slack.com/services/x"
    with pytest.raises(ConfigError, match='channel "slack": url: a Slack webhook URL is a secret'):
        make_settings(bad_slack)
    unknown_channel = alert_config(receiver, rules=[{"name": "r", "channels": ["nope"]}])
    with pytest.raises(ConfigError, match="rule \"r\": channels: no channel named 'nope'"):
        make_settings(unknown_channel)
    bad_severity = alert_config(receiver, rules=[{"name": "r", "severity": "loud"}])
    with pytest.raises(ConfigError, match="field severity"):
        make_settings(bad_severity)


def test_signature_helper_matches_documented_scheme() -> None:
    body = b'{"a": 1}'
    expected = "sha256=" + hmac.new(b"k", b"123." + body, hashlib.sha256).hexdigest()
    assert sign("k", "123", body) == expected


def test_cli_test_list_and_replay(
    engine: Engine,
    emulator: Emulator,
    receiver: Receiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from inventory.cli import main

    os.environ[HMAC_ENV] = HMAC_KEY
    config = tmp_path / "inventory.toml"
    config.write_text(
        f"""
[alerts]
max_attempts = 1
health_channels = []
[alerts.channels.hook]
type = "webhook"
url = "{receiver.url("/hook")}"
secret = "${{{HMAC_ENV}}}"
"""
    )
    assert main(["--config", str(config), "alerts", "test", "hook"]) == 0
    [(headers, body)] = receiver.got("/hook")
    assert verify(headers, body) and json.loads(body)["kind"] == "test"
    assert main(["--config", str(config), "alerts", "test", "nope"]) == 2

    # A dead alert shows in the list, and replay re-queues it.
    receiver.behaviour["/hook"] = "dead"
    settings = make_settings(alert_config(receiver, rules=[{"channels": ["hook"]}]))
    emu = emulator.reset(images=20)
    assert sync(engine, emu, settings).ok
    emu.mutate(seed=8, deprecate=1)
    assert sync(engine, emu, settings).ok
    capsys.readouterr()
    assert main(["--config", str(config), "alerts", "dispatch"]) == 0
    assert "1 dead" in capsys.readouterr().out
    assert main(["--config", str(config), "alerts", "list", "--status", "dead", "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    listed = json.loads(line)
    assert (listed["status"], listed["channel"], listed["events"]) == ("dead", "hook", 1)
    assert main(["--config", str(config), "alerts", "replay", str(listed["id"])]) == 0
    assert main(["--config", str(config), "alerts", "replay", str(listed["id"])]) == 2
    [row] = outbox(engine)
    assert row.status == "pending"
