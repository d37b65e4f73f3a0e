"""QingCloud signature v1 against the published known-answer vectors (qingcloud.md)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from inventory.providers.qingcloud.auth import QingCloudAuth, canonical_query, sign
from inventory.secrets import Secret

KAT_PARAMS = {
    "count": "1",
    "vxnets.1": "vxnet-0",
    "instance_type": "small_b",
    "signature_version": "1",
    "signature_method": "HmacSHA256",
    "instance_name": "demo",
    "image_id": "centos64x86a",
    "login_mode": "passwd",
    "login_passwd": "QingCloud20130712",
    "version": "1",
    "access_key_id": "QYACCESSKEYIDEXAMPLE",
    "action": "RunInstances",
    "time_stamp": "2013-08-27T14:30:10Z",
}


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("pek3a", "byjccvWIvAftaq+oublemagH3bYAlDWxxLFAzAsyslw="),
        ("pek1", "32bseYy39DOlatuewpeuW5vpmW51sD1A/JdGynqSpP8="),
    ],
)
def test_known_answer_signature(zone: str, expected: str) -> None:
    params = {**KAT_PARAMS, "zone": zone}
    query, signature = sign(params.items(), "SECRETACCESSKEY", "GET", "/iaas/")
    assert signature == expected
    assert query.startswith("access_key_id=QYACCESSKEYIDEXAMPLE&action=RunInstances&count=1")
    assert "time_stamp=2013-08-27T14%3A30%3A10Z" in query


def test_canonical_query_encoding() -> None:
    query = canonical_query(
        [("b", "a b"), ("a", "x:/+~"), ("images.1", "img-1"), ("signature", "s")]
    )
    assert query == "a=x%3A%2F%2B~&b=a%20b&images.1=img-1"


def test_auth_signs_request_url_verifiably() -> None:
    auth = QingCloudAuth("QYKEY", Secret("the-secret"))
    request = httpx.Request(
        "GET", "http://127.0.0.1/iaas/", params={"action": "DescribeImages", "zone": "pek3a"}
    )
    signed = next(auth.auth_flow(request))
    raw_query = urlsplit(str(signed.url)).query
    params = parse_qsl(raw_query, keep_blank_values=True)
    got = dict(params)
    assert got["access_key_id"] == "QYKEY"
    assert got["signature_method"] == "HmacSHA256"
    # What a server re-derives from the URL is exactly what was signed.
    _, expected = sign(params, "the-secret", "GET", "/iaas/")
    assert got["signature"] == expected
    assert "the-secret" not in str(signed.url)
    assert "the-secret" not in repr(auth)
