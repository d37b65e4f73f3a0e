"""Tencent source config (filters, options, the documented example) and error mapping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inventory.config import SecretRef, SourceConfig, load_settings, parse_settings
from inventory.errors import (
    AuthenticationError,
    ConfigError,
    MalformedResponse,
    ProviderError,
    ProviderTerminalError,
    ProviderTransientError,
    Throttled,
)
from inventory.http import RetryPolicy
from inventory.providers import PROVIDERS
from inventory.providers.tencent.collect import TencentCollector, request_parameters

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers" / "tencent.md"


def source_table(**extra: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "name": "tc",
        "provider": "tencent",
        "region": "ap-guangzhou",
        "credentials": {"secret_id": "${TC_SECRET_ID}", "secret_key": "${TC_SECRET_KEY}"},
    }
    table.update(extra)
    return table


def parse(**extra: Any) -> SourceConfig:
    return parse_settings({"sources": [source_table(**extra)]}, None).sources[0]


def test_documented_example_loads(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    path = tmp_path / "inventory.toml"
    path.write_text(blocks[0], encoding="utf-8")
    settings = load_settings(path)
    gz = settings.source("tencent-guangzhou")
    assert gz.provider == "tencent" and gz.location == "ap-guangzhou"
    assert dict(gz.filters) == {
        "image-type": ["PRIVATE_IMAGE", "SHARED_IMAGE"],
        "tag:team": ["platform"],
    }
    assert gz.rate_limit_per_s == 20.0 and dict(gz.options) == {}
    assert gz.credentials["secret_id"].target == "TC_SECRET_ID"
    sh = settings.source("tencent-shanghai-golden")
    assert dict(sh.filters) == {"image_ids": ["img-9qabwvbn", "img-gvbnzy6f"]}
    assert sh.credentials["secret_key"].kind == "file"
    assert sh.endpoint == "https://cvm.ap-shanghai.tencentcloudapi.com/"


def test_spec() -> None:
    spec = PROVIDERS["tencent"].spec
    assert spec.location_field == "region"
    assert spec.credential_sets == (("secret_id", "secret_key"),)
    assert spec.env_hint("secret_key") == "TC_SECRET_KEY"
    assert spec.max_page_size == 100


def test_zone_is_refused() -> None:
    table = source_table(zone="ap-guangzhou-3")
    with pytest.raises(ConfigError, match="placed by region"):
        parse_settings({"sources": [table]}, None)


def test_missing_secret_key_names_the_env_hint() -> None:
    with pytest.raises(ConfigError, match=r"credentials.secret_key.*TC_SECRET_KEY"):
        parse(credentials={"secret_id": "${TC_SECRET_ID}"})


def test_image_ids_with_filters_refused_clearly() -> None:
    with pytest.raises(ConfigError) as err:
        parse(filters={"image_ids": ["img-9qabwvbn"], "image-type": "PRIVATE_IMAGE"})
    message = str(err.value)
    assert "filters.image_ids" in message
    assert "cannot be combined" in message and "image-type" in message
    assert "image-id filter" in message


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"owner": "me"}, "owner: unknown filter"),
        ({"image-type": "GOLDEN_IMAGE"}, "'GOLDEN_IMAGE' is not one of"),
        ({"platform": ["a", "b", "c", "d", "e", "f"]}, "at most 5 values"),
        ({"image-name": ""}, "non-empty string"),
        ({"image-name": 3}, "non-empty string"),
        ({"tag:": "x"}, "unknown filter"),
        ({"image_ids": ["ami-123"]}, "not an image id"),
        ({f"tag:k{i}": "v" for i in range(11)}, "at most 10 filters"),
    ],
)
def test_bad_filters(filters: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        parse(filters=filters)


def test_filters_become_request_parameters() -> None:
    source = parse(filters={"image-type": "PRIVATE_IMAGE", "tag:env": ["prod", "staging"]})
    assert request_parameters(source.filters) == {
        "Filters": [
            {"Name": "image-type", "Values": ["PRIVATE_IMAGE"]},
            {"Name": "tag:env", "Values": ["prod", "staging"]},
        ]
    }
    ids = parse(filters={"image_ids": "img-9qabwvbn"})
    assert request_parameters(ids.filters) == {"ImageIds": ["img-9qabwvbn"]}
    assert request_parameters({}) == {}


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"rate_limit_per_s": 0}, "must be a number above 0"),
        ({"rate_limit_per_s": True}, "must be a number above 0"),
        ({"rate_limit_per_s": "fast"}, "must be a number above 0"),
        ({"project_id": 3}, "project_id: unknown option"),
    ],
)
def test_bad_options(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"options.{next(iter(options))}")) as err:
        parse(options=options)
    assert fragment in str(err.value)


def test_page_size_capped_at_100() -> None:
    assert parse(page_size=100).page_size == 100
    with pytest.raises(ConfigError, match="page_size"):
        parse(page_size=101)


# -- the Response.Error envelope ---------------------------------------------------------


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[TencentCollector]:
    monkeypatch.setenv("TC_TEST_ID", "AKIDTEST")
    monkeypatch.setenv("TC_TEST_KEY", "unit-test-secret-key")
    source = SourceConfig(
        name="tc",
        provider="tencent",
        location="ap-guangzhou",
        credentials={
            "secret_id": SecretRef("env", "TC_TEST_ID", "test"),
            "secret_key": SecretRef("env", "TC_TEST_KEY", "test"),
        },
    )
    col = TencentCollector(source, RetryPolicy())
    yield col
    col.close()


def error_response(code: str, message: str = "msg") -> httpx.Response:
    return httpx.Response(
        200,
        json={"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "rid-1"}},
    )


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        ("RequestLimitExceeded", Throttled),
        ("RequestLimitExceeded.UinLimitExceeded", Throttled),
        ("RequestLimitExceeded.GlobalRegionUinLimitExceeded", Throttled),
        ("RequestLimitExceeded.IPLimitExceeded", Throttled),
        ("InternalError", ProviderTransientError),
        ("ServiceUnavailable", ProviderTransientError),
        ("RequestSizeLimitExceeded", ProviderTerminalError),
        ("LimitExceeded", ProviderTerminalError),
        ("AuthFailure.SignatureFailure", AuthenticationError),
        ("AuthFailure.SecretIdNotFound", AuthenticationError),
        ("AuthFailure.SignatureExpire", AuthenticationError),
        ("AuthFailure.MFAFailure", AuthenticationError),
        ("InvalidParameter.InvalidParameterCoexistImageIdsFilters", ProviderTerminalError),
        ("UnauthorizedOperation.PermissionDenied", ProviderTerminalError),
        ("SomethingNew", ProviderTerminalError),
    ],
)
def test_error_codes_are_classified(
    collector: TencentCollector, code: str, error_class: type[ProviderError]
) -> None:
    with pytest.raises(ProviderError) as err:
        collector._parse(error_response(code), 1)
    assert type(err.value) is error_class
    assert err.value.code == code
    assert "RequestId rid-1" in err.value.message


def test_auth_failure_names_the_credentials(collector: TencentCollector) -> None:
    with pytest.raises(AuthenticationError) as err:
        collector._parse(error_response("AuthFailure.SignatureFailure"), 1)
    assert "credentials.secret_id" in err.value.message
    assert "credentials.secret_key" in err.value.message


def test_signature_expire_points_at_the_clock(collector: TencentCollector) -> None:
    with pytest.raises(AuthenticationError, match="clock"):
        collector._parse(error_response("AuthFailure.SignatureExpire"), 1)


@pytest.mark.parametrize(
    "payload",
    [
        {"ImageSet": [], "TotalCount": 0},
        {"Response": {"ImageSet": None, "TotalCount": 0, "RequestId": "r"}},
        {"Response": {"ImageSet": [], "TotalCount": -1, "RequestId": "r"}},
        {"Response": {"ImageSet": [], "TotalCount": True, "RequestId": "r"}},
        {"Response": {"Error": {"Message": "no code"}, "RequestId": "r"}},
    ],
)
def test_malformed_envelopes(collector: TencentCollector, payload: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        collector._parse(httpx.Response(200, json=payload), 1)


def test_http_errors(collector: TencentCollector) -> None:
    with pytest.raises(ProviderTransientError):
        collector._parse(httpx.Response(502, text="bad gateway"), 1)
    with pytest.raises(ProviderTerminalError):
        collector._parse(httpx.Response(403, text="forbidden"), 1)
    with pytest.raises(MalformedResponse):
        collector._parse(httpx.Response(200, text="<html>"), 1)


def test_a_good_page(collector: TencentCollector) -> None:
    page = collector._parse(
        httpx.Response(
            200,
            json={
                "Response": {"ImageSet": [{"ImageId": "img-1"}], "TotalCount": 7, "RequestId": "r"}
            },
        ),
        2,
    )
    assert (page.number, page.total, page.items) == (2, 7, [{"ImageId": "img-1"}])


def test_collector_pacing_defaults_to_40_per_second(collector: TencentCollector) -> None:
    assert collector.limiter.rate == 40.0
    assert "unit-test-secret-key" not in repr(collector._client.auth)
