"""Alert channels: each sends one rendered payload or raises :class:`DeliveryError`.

Every send has its own timeout, so a slow receiver costs at most that long per attempt.
Webhook messages carry ``Idempotency-Key`` and, with a shared secret, a signature:
``X-Inventory-Signature: sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">`` with the
timestamp in ``X-Inventory-Timestamp``; signing the timestamp too stops an old message
from being replayed as new (docs/alerts.md shows how a receiver verifies it).
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import json
import logging
import smtplib
import time
from email.message import EmailMessage
from typing import Any

import httpx

from inventory.alerts.payload import text_body
from inventory.config import ChannelConfig
from inventory.errors import InventoryError
from inventory.http import make_client, redact
from inventory.secrets import scrub

log = logging.getLogger("inventory.alerts")

SIGNATURE_HEADER = "X-Inventory-Signature"
TIMESTAMP_HEADER = "X-Inventory-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class DeliveryError(InventoryError):
    """A channel did not accept a message; the dispatcher retries it later."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def send(channel: ChannelConfig, payload: dict[str, Any]) -> None:
    """Deliver ``payload`` through ``channel``; raise DeliveryError on any failure."""
    try:
        if channel.type == "webhook":
            _post(channel, json.dumps(payload, ensure_ascii=False).encode(), payload)
        elif channel.type == "slack":
            body = {"text": text_body(payload)}
            _post(channel, json.dumps(body, ensure_ascii=False).encode(), payload)
        elif channel.type == "email":
            _mail(channel, payload)
        else:
            log.warning(
                "alert %s: %s",
                payload["idempotency_key"][:12],
                text_body(payload),
                extra={"fields": {"event": "alert", **_log_fields(payload)}},
            )
    except DeliveryError:
        raise
    except (httpx.HTTPError, OSError, smtplib.SMTPException) as err:
        raise DeliveryError(
            f"channel {channel.name}: {type(err).__name__}: {scrub(str(err))}"
        ) from None


def _log_fields(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: payload[k] for k in ("alert_id", "kind", "severity", "summary", "event_count")}


def _post(channel: ChannelConfig, body: bytes, payload: dict[str, Any]) -> None:
    assert channel.url is not None
    url = channel.url.resolve().reveal()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: payload["idempotency_key"],
        TIMESTAMP_HEADER: timestamp,
    }
    if channel.secret is not None:
        headers[SIGNATURE_HEADER] = sign(channel.secret.resolve().reveal(), timestamp, body)
    with make_client(None, channel.timeout_s) as client:
        response = client.post(url, content=body, headers=headers)
    if not 200 <= response.status_code < 300:
        raise DeliveryError(
            f"channel {channel.name}: {redact(url)} answered HTTP {response.status_code}"
        )


def _mail(channel: ChannelConfig, payload: dict[str, Any]) -> None:
    # No folding below RFC 5322's hard limit: a folded 64-character key would come back
    # with a leading space from some parsers, and receivers compare it byte for byte.
    message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    message["Subject"] = f"[inventory] [{payload['severity']}] {payload['summary']}"[:200]
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.recipients)
    # The same Message-ID for every delivery of one alert lets mail clients fold duplicates.
    message["Message-ID"] = f"<{payload['idempotency_key']}@inventory>"
    message["X-Inventory-Idempotency-Key"] = payload["idempotency_key"]
    message.set_content(text_body(payload))
    with smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=channel.timeout_s) as smtp:
        if channel.starttls:
            smtp.starttls()
        if channel.username is not None and channel.password is not None:
            smtp.login(channel.username, channel.password.resolve().reveal())
        smtp.send_message(message)
