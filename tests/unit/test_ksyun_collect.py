"""KSyun collector pieces: filters, error classification, region check, the docs example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inventory.config import ConfigError, SecretRef, SourceConfig, load_settings, parse_settings
from inventory.errors import (
    AuthenticationError,
    MalformedResponse,
    ProviderTerminalError,
    ProviderTransientError,
)
from inventory.http import RetryPolicy
from inventory.providers import PROVIDERS
from inventory.providers.ksyun.collect import KsyunCollector, classify, validate_filters

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers" / "ksyun.md"


def test_spec() -> None:
    spec = PROVIDERS["ksyun"].spec
    assert (spec.location_field, spec.env_prefix) == ("region", "KS")
    assert spec.credential_sets == (("access_key_id", "secret_access_key"),)
    assert spec.max_page_size == 1  # no paging: nothing but the no-op 1 is accepted


def test_page_size_other_than_one_is_refused() -> None:
    table = {
        "name": "ks",
        "provider": "ksyun",
        "region": "cn-beijing-6",
        "credentials": {"access_key_id": "${A}", "secret_access_key": "${B}"},
    }
    assert parse_settings({"sources": [{**table, "page_size": 1}]}, None).sources[0].page_size == 1
    with pytest.raises(ConfigError, match="page_size"):
        parse_settings({"sources": [{**table, "page_size": 100}]}, None)


def test_filters_validate() -> None:
    ok = {"ImageId": "b1e3731b-c200-4499-be42-f6bfbbda990e", "ImageType": "system"}
    assert validate_filters(ok) == ok
    for bad, field in [
        ({"ImageId": ["a", "b"]}, "ImageId"),
        ({"ImageId": "has space"}, "ImageId"),
        ({"ImageType": "System Image"}, "ImageType"),
        ({"ImageType": ""}, "ImageType"),
        ({"images": ["x"]}, "images"),
    ]:
        with pytest.raises(ValueError, match=f"^{field}:"):
            validate_filters(bad)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "Throttling"),
        (400, "ThrottlingException"),
        (503, "RequestLimitExceeded"),
        (400, "InternalError"),
        (400, "ServiceUnavailable"),
        (429, None),
        (502, None),
        (503, None),
        (509, None),
        (500, None),
        (504, None),
        (503, "SomethingNew"),
    ],
)
def test_transient(status: int, code: str | None) -> None:
    err = classify(status, code, "msg")
    assert isinstance(err, ProviderTransientError)
    assert err.code == (code or str(status))


@pytest.mark.parametrize(
    ("code", "field"),
    [
        ("SignatureDoesNotMatch", "credentials.secret_access_key"),
        ("InvalidClientTokenId", "credentials.access_key_id"),
        ("IncompleteSignature", "credentials.access_key_id"),
        ("AuthFailure", "credentials.secret_access_key"),
        ("MissingAuthenticationToken", "credentials.access_key_id"),
    ],
)
def test_authentication(code: str, field: str) -> None:
    err = classify(403, code, "refused")
    assert isinstance(err, AuthenticationError)
    assert err.code == code and field in str(err)


@pytest.mark.parametrize(
    ("status", "code", "hint"),
    [
        (400, "RequestExpired", "clock"),
        (400, "ImageIdInvalidParameterValue", "filters.ImageId"),
        (400, "InvalidParameterValue", "filters"),
        (403, "AccessDenied", "permission"),
        (404, None, "refused"),
        (500, "SomeBackendBug", "refused"),
    ],
)
def test_terminal(status: int, code: str | None, hint: str) -> None:
    err = classify(status, code, "")
    assert isinstance(err, ProviderTerminalError) and not isinstance(err, AuthenticationError)
    assert hint in str(err)


def _source(region: str = "cn-beijing-6") -> SourceConfig:
    import os

    os.environ["INVENTORY_TEST_KS_UNIT_AK"] = "AKLTUNIT"
    os.environ["INVENTORY_TEST_KS_UNIT_SK"] = "unit-secret-value"
    return SourceConfig(
        name="ks-unit",
        provider="ksyun",
        location=region,
        credentials={
            "access_key_id": SecretRef("env", "INVENTORY_TEST_KS_UNIT_AK", "t"),
            "secret_access_key": SecretRef("env", "INVENTORY_TEST_KS_UNIT_SK", "t"),
        },
    )


def test_bad_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="field region"):
        KsyunCollector(_source("cn-beijing6"), RetryPolicy())


def _parse(status: int, body: bytes) -> object:
    collector = KsyunCollector(_source(), RetryPolicy())
    try:
        return collector._parse(status, body, 1)
    finally:
        collector.close()


def test_parse_envelope_and_shapes() -> None:
    page = _parse(200, b'{"RequestId":"r-1","ImagesSet":[{"ImageId":"a"}]}')
    assert getattr(page, "items", None) == [{"ImageId": "a"}]
    assert getattr(page, "total", None) == 1
    with pytest.raises(MalformedResponse, match="ImagesSet"):
        _parse(200, b'{"RequestId":"r-1","ImageSet":[]}')  # the wrong spelling
    with pytest.raises(MalformedResponse, match="not JSON"):
        _parse(200, b'{"RequestId":"r-1","ImagesSet":[{"Ima')
    with pytest.raises(AuthenticationError, match="SignatureDoesNotMatch"):
        _parse(403, b'{"RequestId":"r","Error":{"Code":"SignatureDoesNotMatch","Message":"m"}}')
    with pytest.raises(ProviderTransientError, match="HTTP 503"):
        _parse(503, b"<html>Service Unavailable</html>")


def test_docs_example_loads(tmp_path: Path) -> None:
    match = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert match is not None
    config = tmp_path / "inventory.toml"
    config.write_text(match.group(1), encoding="utf-8")
    settings = load_settings(config)
    assert [s.name for s in settings.sources] == ["ksyun-beijing6", "ksyun-shanghai2-system"]
    system = settings.source("ksyun-shanghai2-system")
    assert (system.provider, system.location) == ("ksyun", "cn-shanghai-2")
    assert dict(system.filters) == {"ImageType": "system"}
    assert system.credentials["secret_access_key"].kind == "file"
