"""KSyun SigV4 against the known-answer vectors of shared/providers/ksyun.md.

KSyun publishes no reproducible vector of its own, and its signing is unmodified SigV4, so
the vectors are AWS's: the test suite's ``get-vanilla`` and the IAM ``ListUsers`` example
of the General Reference, plus KEC-shaped vectors that botocore 1.44.5's
``SigV4Auth`` (an independent oracle; not a dependency of the tests) reproduced.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from inventory.providers.ksyun.auth import (
    EMPTY_SHA256,
    KsyunAuth,
    canonical_headers,
    canonical_query,
    sign,
    signing_key,
)
from inventory.secrets import Secret

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
DATE = "20150830T123600Z"


def test_get_vanilla() -> None:
    signed = sign(
        method="GET",
        path="/",
        params=[],
        headers={"host": "example.amazonaws.com", "x-amz-date": DATE},
        signed_headers=["host", "x-amz-date"],
        payload_hash=EMPTY_SHA256,
        secret=AWS_SECRET,
        amz_date=DATE,
        region="us-east-1",
        service="service",
    )
    assert signed.canonical_request == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\n" + EMPTY_SHA256
    )
    assert (
        signed.canonical_request_hash
        == "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    )
    assert signed.scope == "20150830/us-east-1/service/aws4_request"
    assert signed.signature == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"


def test_iam_list_users_general_reference_example() -> None:
    signed = sign(
        method="GET",
        path="/",
        params=[("Action", "ListUsers"), ("Version", "2010-05-08")],
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Host": "iam.amazonaws.com",
            "X-Amz-Date": DATE,
        },
        signed_headers=["content-type", "host", "x-amz-date"],
        payload_hash=EMPTY_SHA256,
        secret=AWS_SECRET,
        amz_date=DATE,
        region="us-east-1",
        service="iam",
    )
    assert (
        signed.canonical_request_hash
        == "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    )
    assert signed.string_to_sign == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n"
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    )
    assert signed.signature == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"


@pytest.mark.parametrize(
    ("params", "secret", "region", "stamp", "cr_hash", "signature"),
    [
        # The spec's self-computed KEC vector, now confirmed with botocore's SigV4Auth.
        (
            [("Action", "DescribeImages"), ("Version", "2016-03-04")],
            "EXAMPLESECRETKEY",
            "cn-beijing-6",
            "20240101T000000Z",
            "af3a2d02ae23c3108d1f11b4906ad042ef8f5b0130595ef72394fe7237eac0a1",
            "4233862fdba230b47f5eccec104c43bec2fe3c2e773a5b8066c4a5f1fd2a9782",
        ),
        # Filters out of order, a secret with '/', '+', '=' and a space: botocore again.
        (
            [
                ("Action", "DescribeImages"),
                ("Version", "2016-03-04"),
                ("ImageType", "system"),
                ("ImageId", "b1e3731b-c200-4499-be42-f6bfbbda990e"),
            ],
            "ksyun secret/with+chars=",
            "cn-shanghai-2",
            "20240615T081530Z",
            "4cd77b23bf6cf921697d41e03985969d80dc556d5f6d97235b6a424930b229a1",
            "c8a1ddc577e67cbaeb9ce9293dd7649ba095409afa590d3ac91a1063853511df",
        ),
    ],
)
def test_kec_vectors(
    params: list[tuple[str, str]],
    secret: str,
    region: str,
    stamp: str,
    cr_hash: str,
    signature: str,
) -> None:
    signed = sign(
        method="GET",
        path="/",
        params=params,
        headers={"host": "kec.api.ksyun.com", "x-amz-date": stamp},
        signed_headers=["host", "x-amz-date"],
        payload_hash=EMPTY_SHA256,
        secret=secret,
        amz_date=stamp,
        region=region,
    )
    assert signed.scope == f"{stamp[:8]}/{region}/kec/aws4_request"
    assert signed.canonical_request_hash == cr_hash
    assert signed.signature == signature


def test_form_post_vector_hashes_the_body() -> None:
    body = b"Action=DescribeImages&Version=2016-03-04"
    signed = sign(
        method="POST",
        path="/",
        params=[],
        headers={
            "Host": "kec.api.ksyun.com",
            "X-Amz-Date": "20240101T000000Z",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        signed_headers=["host", "x-amz-date", "content-type"],
        payload_hash=hashlib.sha256(body).hexdigest(),
        secret="EXAMPLESECRETKEY",
        amz_date="20240101T000000Z",
        region="cn-beijing-6",
    )
    # botocore 1.44.5 SigV4Auth on the same request.
    assert signed.signature == "507e34d7b56899927d53eebf6917faa71a1470fa3f227e8038c483c74c944352"


def test_signing_key_chain() -> None:
    # AWS's documented derived key for the IAM example (kSigning in hex).
    key = signing_key(AWS_SECRET, "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


def test_canonical_query_and_headers() -> None:
    query = canonical_query(
        [("b", "a b"), ("a", "x:/+~*"), ("a", "0"), ("X-Amz-Signature", "s"), ("Z", "é")]
    )
    assert query == "Z=%C3%A9&a=0&a=x%3A%2F%2B~%2A&b=a%20b"
    text = canonical_headers({"Host": " h ", "X-Amz-Date": "a   b  c"}, ["host", "x-amz-date"])
    assert text == "host:h\nx-amz-date:a b c\n"


def test_auth_signs_verifiably_and_hides_the_secret() -> None:
    fixed = datetime(2024, 1, 1, tzinfo=UTC)
    auth = KsyunAuth(
        "AKLTKEY",
        Secret("the-ksyun-secret"),
        "cn-beijing-6",
        security_token=Secret("session-token-value"),
        clock=lambda: fixed,
    )
    request = httpx.Request(
        "GET",
        "https://kec.api.ksyun.com/",
        params={"Version": "2016-03-04", "Action": "DescribeImages", "ImageType": "a b+c"},
    )
    signed = next(auth.auth_flow(request))
    raw_query = urlsplit(str(signed.url)).query
    # The URL carries exactly the canonical query: sorted, RFC 3986, %20 for a space.
    assert raw_query == "Action=DescribeImages&ImageType=a%20b%2Bc&Version=2016-03-04"
    assert signed.headers["X-Amz-Date"] == "20240101T000000Z"
    header = signed.headers["Authorization"]
    assert header.startswith(
        "AWS4-HMAC-SHA256 Credential=AKLTKEY/20240101/cn-beijing-6/kec/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="
    )
    expected = sign(
        method="GET",
        path="/",
        params=parse_qsl(raw_query),
        headers=signed.headers,
        signed_headers=["host", "x-amz-date", "x-amz-security-token"],
        payload_hash=EMPTY_SHA256,
        secret="the-ksyun-secret",
        amz_date="20240101T000000Z",
        region="cn-beijing-6",
    )
    assert header.endswith(f"Signature={expected.signature}")
    assert "the-ksyun-secret" not in repr(auth) and "the-ksyun-secret" not in str(signed.url)


def test_wrong_secret_gives_a_different_signature() -> None:
    def header(secret: str) -> str:
        auth = KsyunAuth(
            "AK", Secret(secret), "cn-beijing-6", clock=lambda: datetime(2024, 1, 1, tzinfo=UTC)
        )
        request = httpx.Request("GET", "https://kec.api.ksyun.com/?Action=DescribeImages")
        return next(auth.auth_flow(request)).headers["Authorization"]

    assert header("secret-one") != header("secret-two")
