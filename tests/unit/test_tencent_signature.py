"""Tencent TC3-HMAC-SHA256 against the published known-answer vectors (tencent-cvm.md)."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from inventory.providers.tencent.auth import (
    ALGORITHM,
    TencentAuth,
    parse_authorization,
    sha256_hex,
    sign,
    signing_key,
    utc_date,
)
from inventory.secrets import Secret

# The documentation's request: its body bytes carry literal backslash-u escapes.
KAT_BODY = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
KAT_HEADERS = {
    "content-type": "application/json; charset=utf-8",
    "host": "cvm.tencentcloudapi.com",
    "x-tc-action": "DescribeInstances",
}
KAT_TIMESTAMP = 1551113065
# Vector A's published numbers are computed with the masked key itself (32 asterisks).
KEY_A = "*" * 32
KEY_B = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"


def test_payload_hash() -> None:
    assert sha256_hex(KAT_BODY) == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )


@pytest.mark.parametrize(
    ("key", "signed", "hashed", "signature"),
    [
        pytest.param(
            KEY_A,
            ("content-type", "host", "x-tc-action"),
            "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84",
            "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f",
            id="A-current-doc",
        ),
        pytest.param(
            KEY_B,
            ("content-type", "host"),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031",
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
            id="B-older-doc",
        ),
    ],
)
def test_known_answer_vectors(
    key: str, signed: tuple[str, ...], hashed: str, signature: str
) -> None:
    result = sign(
        secret_key=key,
        method="POST",
        headers=KAT_HEADERS,
        signed_headers=signed,
        body=KAT_BODY,
        timestamp=KAT_TIMESTAMP,
    )
    assert result.hashed_canonical_request == hashed
    assert result.signature == signature
    assert result.credential_scope == "2019-02-25/cvm/tc3_request"
    assert result.string_to_sign == (
        f"TC3-HMAC-SHA256\n{KAT_TIMESTAMP}\n2019-02-25/cvm/tc3_request\n{hashed}"
    )
    assert result.signed_headers == ";".join(signed)


def test_canonical_request_layout_vector_a() -> None:
    result = sign(
        secret_key=KEY_A,
        method="POST",
        headers=KAT_HEADERS,
        signed_headers=("x-tc-action", "host", "content-type"),  # order does not matter
        body=KAT_BODY,
        timestamp=KAT_TIMESTAMP,
    )
    assert result.canonical_request == (
        "POST\n/\n\n"
        "content-type:application/json; charset=utf-8\n"
        "host:cvm.tencentcloudapi.com\n"
        "x-tc-action:describeinstances\n"  # the value is lower-cased too
        "\n"
        "content-type;host;x-tc-action\n"
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )


def test_derived_keys_of_vector_a() -> None:
    k_date = hmac.new(b"TC3" + KEY_A.encode(), b"2019-02-25", hashlib.sha256).digest()
    k_service = hmac.new(k_date, b"cvm", hashlib.sha256).digest()
    assert k_date.hex() == "da98fb70dcf6b112dc21038d1eeeb3a95c74b4dcb12c1131f864f6066bd02be0"
    assert k_service.hex() == "8d70cbefb03939f929db64d32dc2ba89b1095620119fe3e050e2b18c5bd2752f"
    assert signing_key(KEY_A, "2019-02-25").hex() == (
        "b596b923aad85185e2d1f6659d2a062e0a86731226e021e61bfe06f7ed05f5af"
    )


def test_scope_date_is_utc() -> None:
    # 2019-02-25T23:59:59Z is already the 26th east of UTC and still the 25th west of it.
    assert utc_date(1551139199) == "2019-02-25"
    assert utc_date(1551139200) == "2019-02-26"


def test_authorization_header_round_trip() -> None:
    result = sign(
        secret_key=KEY_B,
        method="POST",
        headers=KAT_HEADERS,
        signed_headers=("content-type", "host"),
        body=KAT_BODY,
        timestamp=KAT_TIMESTAMP,
    )
    header = result.authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE")
    assert header == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )
    parsed = parse_authorization(header)
    assert parsed is not None
    assert (parsed.secret_id, parsed.date, parsed.service, parsed.terminator) == (
        "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        "2019-02-25",
        "cvm",
        "tc3_request",
    )
    assert parsed.signed_headers == ("content-type", "host")
    assert parsed.signature == result.signature


@pytest.mark.parametrize(
    "header",
    [
        "",
        "HMAC-SHA256 Credential=a/b/c/d, SignedHeaders=host, Signature=x",
        "TC3-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=x",
        "TC3-HMAC-SHA256 Credential=a/b/c/d, SignedHeaders=host",
        "TC3-HMAC-SHA256 garbage",
    ],
)
def test_malformed_authorization_headers(header: str) -> None:
    assert parse_authorization(header) is None


def test_auth_signs_the_request_it_sends() -> None:
    auth = TencentAuth(
        "AKIDTEST", Secret("the-tc3-secret"), region="ap-guangzhou", clock=lambda: 1700000000.9
    )
    body = b'{"Offset":0,"Limit":100}'
    request = httpx.Request(
        "POST",
        "http://127.0.0.1:8123/",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    signed = next(auth.auth_flow(request))
    headers = {k.lower(): v for k, v in signed.headers.items()}
    assert headers["x-tc-action"] == "DescribeImages"
    assert headers["x-tc-version"] == "2017-03-12"
    assert headers["x-tc-region"] == "ap-guangzhou"
    assert headers["x-tc-timestamp"] == "1700000000"
    assert headers["host"] == "127.0.0.1:8123"
    parsed = parse_authorization(headers["authorization"])
    assert parsed is not None
    assert parsed.secret_id == "AKIDTEST"
    assert parsed.signed_headers == ("content-type", "host", "x-tc-action")
    assert headers["authorization"].startswith(ALGORITHM + " ")
    # What a server re-derives from the wire is exactly what was signed.
    expected = sign(
        secret_key="the-tc3-secret",
        method="POST",
        headers=headers,
        signed_headers=parsed.signed_headers,
        body=body,
        timestamp=1700000000,
    )
    assert parsed.signature == expected.signature
    # A changed body no longer matches.
    tampered = sign(
        secret_key="the-tc3-secret",
        method="POST",
        headers=headers,
        signed_headers=parsed.signed_headers,
        body=b'{"Offset":100,"Limit":100}',
        timestamp=1700000000,
    )
    assert parsed.signature != tampered.signature
    assert "the-tc3-secret" not in repr(auth)
    assert "the-tc3-secret" not in str(signed.headers)


def test_auth_requires_the_body() -> None:
    assert TencentAuth.requires_request_body is True
