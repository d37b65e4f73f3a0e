"""Huawei sources in the config: the documented examples load, options and filters are
validated, the two IEC credential sets, and the option each set needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inventory.config import SecretRef, SourceConfig, load_settings
from inventory.errors import ConfigError
from inventory.http import RetryPolicy
from inventory.providers import PROVIDERS
from inventory.providers.huawei_common.signer import SdkHmacAuth
from inventory.providers.huawei_common.token import KeystonePasswordAuth, TokenScope
from inventory.providers.huawei_iec.auth import make_auth as iec_auth
from inventory.providers.huawei_ims.auth import make_auth as ims_auth

DOCS = Path(__file__).resolve().parents[2] / "docs" / "providers"


def toml_block(doc: str) -> str:
    blocks = re.findall(r"```toml\n(.*?)```", (DOCS / doc).read_text(), flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def load(tmp_path: Path, text: str) -> list[SourceConfig]:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return list(load_settings(path).sources)


def test_iec_doc_example_loads(tmp_path: Path) -> None:
    aksk, token = load(tmp_path, toml_block("huawei-iec.md"))
    assert aksk.provider == token.provider == "huawei-iec"
    assert set(aksk.credentials) == {"access_key_id", "secret_access_key"}
    assert set(token.credentials) == {"username", "password"}
    assert aksk.options["domain_id"] == "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert dict(aksk.filters) == {"__imagetype": "private", "status": "active"}
    assert dict(token.filters) == {"__isregistered": "true", "__support_arm": "true"}
    assert token.credentials["password"].kind == "env"


def test_ims_doc_example_loads(tmp_path: Path) -> None:
    (source,) = load(tmp_path, toml_block("huawei-ims-v1.md"))
    assert (source.provider, source.location, source.page_size) == (
        "huawei-ims-v1",
        "cn-north-4",
        100,
    )
    assert dict(source.options) == {"domain_name": "my-account"}
    assert dict(source.filters) == {"disk_format": "zvhd2", "size_min": "1048576"}


BASE = """
[[sources]]
name = "hw"
provider = "{provider}"
region = "cn-north-4"
[sources.credentials]
{credentials}
[sources.options]
{options}
[sources.filters]
{filters}
"""
TOKEN = 'username = "${U}"\npassword = "${P}"'
AKSK = 'access_key_id = "${A}"\nsecret_access_key = "${S}"'


def config(
    provider: str = "huawei-iec",
    credentials: str = TOKEN,
    options: str = 'domain_name = "acct"',
    filters: str = "",
) -> str:
    return BASE.format(provider=provider, credentials=credentials, options=options, filters=filters)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (config(credentials='username = "${U}"'), "give exactly one of"),
        (config(credentials=TOKEN + '\naccess_key_id = "${A}"'), "give exactly one of"),
        (config(provider="huawei-ims-v1", credentials=AKSK), "credentials"),
        (config(options='tenant = "x"'), "options.tenant: unknown option"),
        (config(options='domain_name = ""'), "options.domain_name: must be a non-empty"),
        (config(options='iam_endpoint = "iam.example.com"'), "options.iam_endpoint"),
        (config(options='project_id = "a"\nproject_name = "b"'), "not both"),
        (config(provider="huawei-ims-v1", options='domain_id = "x"'), "options.domain_id"),
        (config(filters='status = "gone"'), "filters.status"),
        (config(filters="__support_arm = false"), "filters.__support_arm"),
        (config(filters='__os_type = "linux"'), "filters.__os_type"),
        (config(filters='flavor = "x"'), "filters.flavor: unknown filter"),
        (config(provider="huawei-ims-v1", filters="size_min = -1"), "filters.size_min"),
        (config(provider="huawei-ims-v1", filters='changes-since = "lately"'), "changes-since"),
        (config(provider="huawei-ims-v1", filters='status = "ok"'), "filters.status"),
        (config(provider="huawei-ims-v1", filters='visibility = "x"'), "unknown filter"),
    ],
)
def test_invalid_configs_name_the_field(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load(tmp_path, text)


def test_ims_changes_since_accepts_toml_datetime(tmp_path: Path) -> None:
    text = config(provider="huawei-ims-v1", filters="changes-since = 2024-01-31T08:00:00+08:00")
    (source,) = load(tmp_path, text)
    assert source.filters["changes-since"] == "2024-01-31T00:00:00Z"


def source(provider: str, creds: dict[str, str], **options: str) -> SourceConfig:
    return SourceConfig(
        name="hw",
        provider=provider,
        location="cn-east-3",
        credentials={k: SecretRef("env", v, "test") for k, v in creds.items()},
        options=options,
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "A": "HWUNITAK",
        "S": "sk-value",
        "U": "hw-unit-user",
        "P": "pw-value",
    }.items():
        monkeypatch.setenv(name, value)


def test_iec_credential_sets_choose_the_auth(env: None) -> None:
    aksk = iec_auth(
        source("huawei-iec", {"access_key_id": "A", "secret_access_key": "S"}, domain_id="d1")
    )
    assert isinstance(aksk, SdkHmacAuth) and aksk.extra_headers == {"X-Domain-Id": "d1"}
    token = iec_auth(source("huawei-iec", {"username": "U", "password": "P"}, domain_name="acct"))
    assert isinstance(token, KeystonePasswordAuth)
    assert token.key.scope == TokenScope("domain", "acct")
    assert token.key.iam_endpoint == "https://iam.myhuaweicloud.com"
    assert "pw-value" not in repr(token) and "sk-value" not in repr(aksk)


def test_ims_token_defaults_to_region_project(env: None) -> None:
    auth = ims_auth(source("huawei-ims-v1", {"username": "U", "password": "P"}, domain_name="a"))
    assert auth.key.scope == TokenScope("project_name", "cn-east-3")
    assert auth.key.iam_endpoint == "https://iam.cn-east-3.myhuaweicloud.com"
    by_id = ims_auth(
        source(
            "huawei-ims-v1",
            {"username": "U", "password": "P"},
            domain_name="a",
            project_id="p1",
            iam_endpoint="https://iam.example.com/v3/",
        )
    )
    assert by_id.key.scope == TokenScope("project_id", "p1")
    assert by_id.key.iam_endpoint == "https://iam.example.com"


@pytest.mark.parametrize(
    ("provider", "creds", "fragment"),
    [
        ("huawei-iec", {"access_key_id": "A", "secret_access_key": "S"}, "options.domain_id"),
        ("huawei-iec", {"username": "U", "password": "P"}, "options.domain_name"),
        ("huawei-ims-v1", {"username": "U", "password": "P"}, "options.domain_name"),
    ],
)
def test_collector_names_the_missing_option(
    env: None, provider: str, creds: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        PROVIDERS[provider].collector(source(provider, creds), RetryPolicy(), None)
