"""Huawei error envelopes, and one classification of a failed response.

Huawei answers errors with a 4xx/5xx status and, depending on the layer, one of:

- the API gateway and most services: ``{"error_code": "APIGW.0301", "error_msg": "...",
  "request_id": "..."}``;
- IMS and Keystone/IAM: one level of nesting, ``{"error": {"code": "IMG.0001" | 401,
  "message": "...", "title": "..."}}``;
- older services: ``errorCode``/``errorMsg`` or ``code``/``message``;
- upstream Glance behind no gateway: an HTML or text page.

:func:`parse_error` reads any of them. :func:`raise_for_response` turns a non-2xx response
(or a 2xx one carrying the gateway's error envelope) into the right error class: 429,
``APIGW.0308`` (the gateway's throttling code, which may come with a status other than
429) and 5xx are transient; 401 is an
:class:`~inventory.errors.AuthenticationError`; the rest are terminal with a hint saying
what to change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from inventory.errors import (
    AuthenticationError,
    ProviderTerminalError,
    ProviderTransientError,
    Throttled,
)

THROTTLE_CODES = frozenset({"APIGW.0308"})
_PAIRS = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))
_TAGS = re.compile(r"<[^>]+>")


def _pair(body: Mapping[str, Any]) -> tuple[str | None, str | None] | None:
    for code_key, message_key in _PAIRS:
        if code_key in body or message_key in body:
            code, message = body.get(code_key), body.get(message_key)
            return (
                str(code) if code not in (None, "") else None,
                str(message) if message not in (None, "") else None,
            )
    return None


def parse_error(response: httpx.Response) -> tuple[str | None, str]:
    """``(provider error code or None, message)`` from any Huawei error body."""
    text = response.text if response.content else ""
    try:
        body = json.loads(text) if text else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        found = _pair(body)
        if found is None:
            # One level of nesting: {"error": {...}} (IMS, Keystone), {"badRequest": {...}}.
            for value in body.values():
                if isinstance(value, dict):
                    found = _pair(value)
                    if found is not None:
                        break
        if found is not None:
            code, message = found
            return code, (message or "")[:300]
    flat = " ".join(_TAGS.sub(" ", text).split())
    return None, flat[:200]


def _error_in_body(response: httpx.Response) -> bool:
    """A gateway's error envelope sent with a 2xx status (it happens behind some proxies):
    an error all the same, never a page without items."""
    if b'"error_code"' not in response.content[:512]:
        return False
    code, _ = parse_error(response)
    return code is not None


def request_id(response: httpx.Response) -> str | None:
    rid: str | None = response.headers.get("X-Request-Id") or response.headers.get(
        "X-Openstack-Request-Id"
    )
    return rid


def raise_for_response(
    response: httpx.Response,
    *,
    what: str,
    auth_hint: str,
    hints: Mapping[int, str] | None = None,
) -> None:
    """Raise the classified error for a non-2xx ``response`` (or a 2xx one holding the
    gateway's error envelope); return for a good one.

    ``what`` names the call ("ListImages"), ``auth_hint`` says what to change after a 401,
    ``hints`` maps other statuses to what to change.
    """
    status = response.status_code
    if 200 <= status < 300 and not _error_in_body(response):
        return
    code, message = parse_error(response)
    shown = f"{code}: {message}" if code else message or "(empty body)"
    rid = request_id(response)
    suffix = f" (request id {rid})" if rid else ""
    head = f"{what}: HTTP {status} {shown}{suffix}"
    err_code = code or str(status)
    if status == 429 or (code or "") in THROTTLE_CODES:
        raise Throttled(f"{head} — throttled by the API gateway", code=err_code)
    if status >= 500:
        raise ProviderTransientError(head, code=err_code)
    if status == 401:
        raise AuthenticationError(f"{head} — {auth_hint}", code=err_code)
    hint = (hints or {}).get(status, "refused by Huawei Cloud")
    raise ProviderTerminalError(f"{head} — {hint}", code=err_code)
