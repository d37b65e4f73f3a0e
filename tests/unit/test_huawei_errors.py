"""Huawei error envelopes and their classification; the token cache's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from inventory.errors import (
    AuthenticationError,
    ProviderTerminalError,
    ProviderTransientError,
    Transient,
)
from inventory.providers.huawei_common.errors import parse_error, raise_for_response
from inventory.providers.huawei_common.token import (
    REFRESH_MARGIN_S,
    TokenCache,
    TokenKey,
    TokenScope,
    password_verifier,
)
from inventory.secrets import Secret


def response(status: int, **kw: Any) -> httpx.Response:
    return httpx.Response(status, **kw)


@pytest.mark.parametrize(
    ("resp", "expected"),
    [
        (
            response(401, json={"error_code": "APIGW.0301", "error_msg": "bad token"}),
            ("APIGW.0301", "bad token"),
        ),
        (
            response(400, json={"error": {"code": "IMG.0001", "message": "Invalid marker"}}),
            ("IMG.0001", "Invalid marker"),
        ),
        (
            response(401, json={"error": {"code": 401, "title": "Unauthorized", "message": "no"}}),
            ("401", "no"),
        ),
        (response(400, json={"errorCode": "X.1", "errorMsg": "m"}), ("X.1", "m")),
        (
            response(401, text="<html><body><h1>401 Unauthorized</h1></body></html>"),
            (None, "401 Unauthorized"),
        ),
        (response(503, content=b""), (None, "")),
    ],
)
def test_parse_error_shapes(resp: httpx.Response, expected: tuple[str | None, str]) -> None:
    assert parse_error(resp) == expected


def test_classification() -> None:
    throttled = response(
        429,
        json={"error_code": "APIGW.0308", "error_msg": "throttled"},
        headers={"X-Request-Id": "rid-1"},
    )
    with pytest.raises(ProviderTransientError) as err:
        raise_for_response(throttled, what="ListImages", auth_hint="x")
    assert err.value.code == "APIGW.0308" and "rid-1" in str(err.value)
    # The throttling code counts even when the gateway pairs it with another status.
    odd = response(403, json={"error_code": "APIGW.0308", "error_msg": "throttled"})
    with pytest.raises(ProviderTransientError):
        raise_for_response(odd, what="ListImages", auth_hint="x")
    with pytest.raises(ProviderTransientError) as err:
        raise_for_response(response(502, text="bad gateway"), what="w", auth_hint="x")
    assert err.value.code == "502" and isinstance(err.value, Transient)
    with pytest.raises(AuthenticationError, match=r"check credentials\.username"):
        raise_for_response(
            response(401, json={"error_code": "APIGW.0301", "error_msg": "m"}),
            what="w",
            auth_hint="check credentials.username",
        )
    with pytest.raises(ProviderTerminalError, match="check the filters") as err:
        raise_for_response(
            response(400, json={"error_code": "IEC.0001", "error_msg": "bad"}),
            what="w",
            auth_hint="x",
            hints={400: "check the filters"},
        )
    assert err.value.code == "IEC.0001"
    raise_for_response(response(200, json={}), what="w", auth_hint="x")  # no error


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


KEY = TokenKey("https://iam.example.com", "user", "acct", TokenScope("domain", "acct"))


def test_cache_reuses_until_shortly_before_expiry() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    verifier = password_verifier(Secret("pw-one"))
    token = Secret("token-one")
    cache.put(KEY, token, clock.now + timedelta(hours=24), verifier)
    assert cache.get(KEY, verifier) == token
    clock.now += timedelta(hours=24) - timedelta(seconds=REFRESH_MARGIN_S + 1)
    assert cache.get(KEY, verifier) == token
    clock.now += timedelta(seconds=2)
    assert cache.get(KEY, verifier) is None  # inside the refresh margin


def test_short_lived_token_refreshes_at_three_quarters() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    verifier = password_verifier(Secret("pw-one"))
    cache.put(KEY, Secret("token-s"), clock.now + timedelta(seconds=100), verifier)
    clock.now += timedelta(seconds=74)
    assert cache.get(KEY, verifier) is not None
    clock.now += timedelta(seconds=2)
    assert cache.get(KEY, verifier) is None


def test_cache_never_serves_another_password_and_keys_hold_none() -> None:
    cache = TokenCache()
    right = password_verifier(Secret("pw-right"))
    cache.put(KEY, Secret("token-r"), datetime.now(UTC) + timedelta(hours=1), right)
    assert cache.get(KEY, password_verifier(Secret("pw-wrong"))) is None
    assert cache.get(KEY, right) is not None
    assert "pw-right" not in repr(KEY) and "pw-right" not in str(KEY)
    assert b"pw-right" not in right


def test_invalidate_only_drops_the_named_token() -> None:
    cache = TokenCache()
    verifier = password_verifier(Secret("pw-x"))
    cache.put(KEY, Secret("token-new"), datetime.now(UTC) + timedelta(hours=1), verifier)
    cache.invalidate(KEY, Secret("token-old"))  # another thread already renewed it
    assert cache.get(KEY, verifier) == Secret("token-new")
    cache.invalidate(KEY, Secret("token-new"))
    assert cache.get(KEY, verifier) is None and len(cache) == 0


def test_httpcore_header_trace_is_masked() -> None:
    import logging

    from inventory.logs import HeaderRedactingFilter

    record = logging.LogRecord(
        "httpcore.http11",
        logging.DEBUG,
        __file__,
        1,
        "receive_response_headers.complete return_value=%s",
        (
            "(b'HTTP/1.1', 201, b'Created', "
            "[(b'X-Subject-Token', b'MIIsecretvalue'), (b'A', b'b')])",
        ),
        None,
    )
    assert HeaderRedactingFilter().filter(record)
    assert "MIIsecretvalue" not in record.getMessage()
    assert "(b'X-Subject-Token', b'***')" in record.getMessage()
    assert "(b'A', b'b')" in record.getMessage()
