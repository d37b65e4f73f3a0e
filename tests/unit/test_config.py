"""Config validation: one clear message naming the file, the source and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.config import load_settings
from inventory.errors import ConfigError

GOOD = """
[sync]
max_disappearance_share = 0.3

[[sources]]
name = "qy-pek3a"
provider = "qingcloud"
zone = "pek3a"
endpoint = "http://127.0.0.1:8100/iaas/"
schedule = "*/15 * * * *"
page_size = 50
[sources.credentials]
access_key_id = "${QY_ACCESS_KEY_ID}"
secret_access_key = "file:/run/secrets/qy"
[sources.filters]
status = ["available", "deprecated"]
provider = "self"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return path


def test_good_config(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    source = settings.source("qy-pek3a")
    assert source.location == "pek3a"
    assert source.page_size == 50
    assert source.concurrency is None  # the provider's default
    eight = load_settings(write(tmp_path, GOOD.replace("page_size = 50", "concurrency = 8")))
    assert eight.sources[0].concurrency == 8
    assert dict(source.filters) == {"status": ["available", "deprecated"], "provider": "self"}
    assert settings.sync.max_disappearance_share == 0.3
    assert "QY_ACCESS_KEY_ID" in repr(source.credentials["access_key_id"])


def test_secret_resolved_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "sk"
    secret_file.write_text("s3cr3t-value\n")
    text = GOOD.replace("/run/secrets/qy", str(secret_file))
    monkeypatch.setenv("QY_ACCESS_KEY_ID", "AKID")
    source = load_settings(write(tmp_path, text)).sources[0]
    assert source.credential("access_key_id").reveal() == "AKID"
    secret = source.credential("secret_access_key")
    assert secret.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in f"{secret}"


def test_missing_env_var_names_source_field_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QY_ACCESS_KEY_ID", raising=False)
    source = load_settings(write(tmp_path, GOOD)).sources[0]
    with pytest.raises(ConfigError) as info:
        source.credential("access_key_id")
    message = str(info.value)
    assert 'source "qy-pek3a"' in message
    assert "credentials.access_key_id" in message
    assert "QY_ACCESS_KEY_ID is not set" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('zone = "pek3a"', 'zone = ""', 'source "qy-pek3a": field zone: required'),
        ('provider = "qingcloud"', 'provider = "aws"', "field provider: 'aws' is not one of"),
        ("page_size = 50", "page_size = 500", "field page_size: must be an integer from 1 to 100"),
        ("page_size = 50", "concurrency = 0", "field concurrency: must be an integer from 1 to 32"),
        ("page_size = 50", 'concurrency = "8"', "field concurrency: must be an integer"),
        ('schedule = "*/15 * * * *"', 'schedule = "every hour"', "field schedule"),
        ('schedule = "*/15 * * * *"', 'schedule = "0 0 30 2 *"', "schedule: '0 0 30 2 *' never"),
        ('schedule = "*/15 * * * *"', 'schedule = "0 0 0 31 4 *"', "never fires"),
        ('provider = "self"', 'colour = "red"', "filters.colour: unknown filter"),
        ('"available", "deprecated"', '"gone"', "filters.status: 'gone' is not one of"),
        (
            'access_key_id = "${QY_ACCESS_KEY_ID}"',
            'access_key_id = "AKIDLITERAL"',
            "secrets are not written in the config file",
        ),
        ('endpoint = "http://127.0.0.1:8100/iaas/"', 'endpoint = "ftp://x"', "field endpoint"),
        ("page_size = 50", "page_sise = 50", "unknown field 'page_sise'"),
        ('zone = "pek3a"', 'zone = "pek3a"\nregion = "x"', "field region"),
        (
            "max_disappearance_share = 0.3",
            "max_disappearance_share = 3",
            "[sync]: field max_disappearance_share",
        ),
        (
            "max_disappearance_share = 0.3",
            "max_disappearance_share = 0.3\nconfirm_gone_runs = 0",
            "[sync]: field confirm_gone_runs",
        ),
        (
            "max_disappearance_share = 0.3",
            "max_disappearance_share = 0.3\nworkers = -1",
            "[sync]: field workers",
        ),
    ],
)
def test_invalid_config_messages(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_credential(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('secret_access_key = "file:/run/secrets/qy"', ""))
    with pytest.raises(ConfigError, match=r"credentials\.secret_access_key: required"):
        load_settings(path)


def test_duplicate_source_names(tmp_path: Path) -> None:
    block = GOOD.split("[[sources]]")[1]
    path = write(tmp_path, GOOD + "\n[[sources]]" + block)
    with pytest.raises(ConfigError, match="name is used twice"):
        load_settings(path)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[[sources]\nname="))
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "nope.toml")


def test_unknown_source_lookup(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match=r"no source named 'x'.*qy-pek3a"):
        settings.source("x")


def test_database_url_with_password_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "postgresql://u:pw@db/x"\n')
    with pytest.raises(ConfigError, match="contains a password"):
        load_settings(path)


ACCOUNTS = """
[accounts.tc-prod]
provider = "tencent"
rate_limit_per_s = 20
[accounts.tc-prod.credentials]
secret_id = "${TC_PROD_SECRET_ID}"
secret_key = "file:/run/secrets/tc_prod"

[accounts.qy-main]
provider = "qingcloud"
endpoint = "http://127.0.0.1:8100/iaas/"
credentials = { access_key_id = "${QY_ID}", secret_access_key = "${QY_KEY}" }

[[sources]]
name = "tc-prod"
account = "tc-prod"
regions = ["ap-guangzhou", "ap-shanghai"]
schedule = "0 * * * *"

[[sources]]
name = "tc-prod-hk"
account = "tc-prod"
region = "ap-hongkong"
rate_limit_per_s = 5

[[sources]]
name = "qy"
account = "qy-main"
zones = ["pek3a", "sh1a"]
[sources.filters]
provider = "self"
"""


def test_an_account_is_declared_once_and_a_source_lists_its_regions(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ACCOUNTS))
    names = [s.name for s in settings.sources]
    assert names == [
        "tc-prod-ap-guangzhou",
        "tc-prod-ap-shanghai",
        "tc-prod-hk",
        "qy-pek3a",
        "qy-sh1a",
    ]
    gz, sh, hk, pek, sh1 = settings.sources
    assert (gz.location, sh.location, hk.location) == ("ap-guangzhou", "ap-shanghai", "ap-hongkong")
    for source in (gz, sh, hk):
        assert (source.provider, source.account) == ("tencent", "tc-prod")
        assert source.credentials["secret_key"].target == "/run/secrets/tc_prod"
        assert 'account "tc-prod": credentials.secret_key' in source.credentials["secret_key"].where
    assert (gz.rate_limit_per_s, hk.rate_limit_per_s) == (20, 5)  # the source's own wins
    assert gz.schedule == sh.schedule == "0 * * * *" and hk.schedule is None
    assert (pek.location, sh1.location) == ("pek3a", "sh1a")
    assert pek.endpoint == "http://127.0.0.1:8100/iaas/" and dict(sh1.filters) == {
        "provider": "self"
    }
    assert settings.accounts["qy-main"].provider == "qingcloud"


def test_every_region_is_a_template_found_by_discovery(tmp_path: Path) -> None:
    text = ACCOUNTS.replace('regions = ["ap-guangzhou", "ap-shanghai"]', 'regions = "*"', 1)
    text = text.replace('zones = ["pek3a", "sh1a"]', 'zones = "*"', 1)
    settings = load_settings(write(tmp_path, text))
    assert [s.name for s in settings.sources] == ["tc-prod-hk"]
    assert [(t.name, t.provider, t.location) for t in settings.templates] == [
        ("tc-prod", "tencent", "*"),
        ("qy", "qingcloud", "*"),
    ]
    tc = settings.templates[0]
    assert tc.account == "tc-prod" and tc.schedule == "0 * * * *" and tc.rate_limit_per_s == 20


@pytest.mark.parametrize(
    ("provider", "why"),
    [
        ("huawei-iec", "IEC is one global endpoint: one source (region = 'cn-north-4')"),
    ],
)
def test_every_region_of_a_provider_without_discovery_says_what_to_write(
    tmp_path: Path, provider: str, why: str
) -> None:
    path = write(
        tmp_path,
        f"""
[[sources]]
name = "hw"
provider = "{provider}"
regions = "*"
credentials = {{ access_key_id = "${{A}}", secret_access_key = "${{B}}" }}
""",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert f'source "hw": field regions: "*" asks {provider} for every region' in message
    assert why in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('account = "qy-main"', 'account = "qy-typo"', "no [accounts.qy-typo] is declared"),
        ('account = "qy-main"', 'account = "qy-typo"', "(declared: tc-prod, qy-main)"),
        (
            'account = "qy-main"',
            'account = "qy-main"\nprovider = "tencent"',
            "but account 'qy-main' is a qingcloud account",
        ),
        ('zones = ["pek3a", "sh1a"]', 'zones = ["pek3a", "pek3a"]', "'pek3a' is listed twice"),
        ('zones = ["pek3a", "sh1a"]', "zones = []", "field zones: must be a non-empty list"),
        ('zones = ["pek3a", "sh1a"]', 'zones = ["pek3a"]\nzone = "sh1a"', "zone or zones, not"),
        ('zones = ["pek3a", "sh1a"]', 'regions = ["pek3a"]', "placed by zone"),
        (
            'regions = ["ap-guangzhou", "ap-shanghai"]',
            'regions = "all"',
            'field regions: must be a non-empty list of regions, or "*"',
        ),
        (
            'regions = ["ap-guangzhou", "ap-shanghai"]',
            'regions = ["ap-' + "x" * 60 + '"]',
            "shorten the name",
        ),
        ('provider = "tencent"\nrate_limit_per_s = 20', 'provider = "aws"', "'aws' is not one of"),
        (
            "rate_limit_per_s = 20",
            "page_size = 20",
            "account \"tc-prod\": unknown field 'page_size'",
        ),
        (
            'provider = "tencent"\nrate_limit_per_s = 20',
            'provider = "tencent"\noptions = { colour = "red" }',
            'account "tc-prod": options.colour',
        ),
        (
            'account = "qy-main"',
            'account = "qy-main"\ncredentials = '
            '{ access_key_id = "${A}", secret_access_key = "${B}" }',
            "drop the source's credentials",
        ),
    ],
)
def test_account_and_location_list_mistakes_name_the_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in ACCOUNTS
    path = write(tmp_path, ACCOUNTS.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value) and expected in str(info.value)
