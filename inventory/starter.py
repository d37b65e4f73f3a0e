"""``inventory init``: a commented starter ``inventory.toml``.

For the providers asked for, one source each with what that provider needs and nothing it
does not, every value a placeholder to change and every secret a ``${ENV}`` reference; or,
with ``--emulators``, a ready setup of the five emulators on consecutive ports (their
``--print-config`` tables). The file written is loaded back before it is kept, so what
``init`` writes always parses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inventory.errors import UsageError
from inventory.providers import PROVIDERS

HEADER = """\
# inventory.toml: the sources to keep in the inventory (docs/configuration.md has every
# option). Secrets are never written here: "${ENV_VAR}" or "file:/path" references only.
# Next: set the variables named below, then
#   inventory check     # config, credentials, database, one page of each source
#   inventory sync      # the first sync
# and give each source a `schedule` for `inventory scheduler` (or run sync from cron).

[sync]
confirm_gone_runs = 2           # gone once missing from 2 complete listings in a row
max_disappearance_share = 0.5   # refuse to mark more than half of a source gone at once
"""

SOURCES = {
    "qingcloud": """\
# QingCloud DescribeImages: the account's own images in one zone
# (docs/providers/qingcloud.md). zone = "*" syncs every zone the account sees.
[[sources]]
name = "qingcloud-pek3a"
provider = "qingcloud"
zone = "pek3a"
# schedule = "0 * * * *"        # hourly, UTC (a `timezone` may be given)
[sources.credentials]
access_key_id = "${QY_ACCESS_KEY_ID}"
secret_access_key = "${QY_SECRET_ACCESS_KEY}"
# [sources.filters]
# provider = "system"           # QingCloud's platform images instead of your own
""",
    "tencent": """\
# Tencent Cloud CVM DescribeImages in one region (docs/providers/tencent.md).
# region = "*" syncs every region DescribeRegions lists for the account.
[[sources]]
name = "tencent-guangzhou"
provider = "tencent"
region = "ap-guangzhou"
# schedule = "15 * * * *"
[sources.credentials]
secret_id = "${TC_SECRET_ID}"
secret_key = "${TC_SECRET_KEY}"
# [sources.filters]
# image-type = ["PRIVATE_IMAGE", "SHARED_IMAGE"]
""",
    "ksyun": """\
# Kingsoft Cloud KEC DescribeImages in one region (docs/providers/ksyun.md).
[[sources]]
name = "ksyun-beijing6"
provider = "ksyun"
region = "cn-beijing-6"
# schedule = "30 * * * *"
[sources.credentials]
access_key_id = "${KS_ACCESS_KEY_ID}"
secret_access_key = "${KS_SECRET_ACCESS_KEY}"
# [sources.filters]
# ImageType = "system"
""",
    "huawei-iec": """\
# Huawei Cloud IEC ListImages: one global endpoint (docs/providers/huawei-iec.md).
# Signed with an access key (AK/SK) and the account id, or with an IAM user's token.
[[sources]]
name = "huawei-iec"
provider = "huawei-iec"
region = "cn-north-4"           # a label only: IEC is global
[sources.credentials]
access_key_id = "${HUAWEI_ACCESS_KEY_ID}"
secret_access_key = "${HUAWEI_SECRET_ACCESS_KEY}"
[sources.options]
domain_id = "CHANGE-ME"         # your account id, sent as X-Domain-Id
""",
    "huawei-ims-v1": """\
# Huawei IMS GET /v1.1/images/detail in one region, with an IAM user's token
# (docs/providers/huawei-ims-v1.md). region = "*" syncs every region project.
[[sources]]
name = "huawei-ims-cn-north-4"
provider = "huawei-ims-v1"
region = "cn-north-4"
[sources.credentials]
username = "${HUAWEI_USERNAME}"
password = "${HUAWEI_PASSWORD}"
[sources.options]
domain_name = "CHANGE-ME"       # the account the IAM user belongs to
# iam_endpoint = "https://iam.cn-north-4.myhuaweicloud.com"   # the default
""",
}

#: ``init --emulators``: the emulators in the order of their ports (the first given).
EMULATORS = ("qingcloud", "tencent", "ksyun", "huawei-iec", "huawei-ims-v1")


def starter(providers: Sequence[str]) -> str:
    unknown = [p for p in providers if p not in SOURCES]
    if unknown:
        raise UsageError(
            f"init: {', '.join(map(repr, unknown))} is not a provider; "
            f"use any of {', '.join(sorted(SOURCES))}"
        )
    chosen = list(dict.fromkeys(providers)) or sorted(SOURCES)
    return HEADER + "".join(f"\n{SOURCES[p]}" for p in chosen)


def emulator_setup(first_port: int = 8101) -> tuple[str, list[str]]:
    """The config for the five emulators on ports from ``first_port`` up, and the
    commands that start them."""
    body, commands, exports = [HEADER.split("\n[sync]")[0] + "\n"], [], []
    for port, provider in enumerate(EMULATORS, start=first_port):
        table = PROVIDERS.emulated(provider).print_config(port=port)
        exports += [line.split("export ", 1)[1] for line in table.splitlines() if "export " in line]
        body.append("\n" + table)
        commands.append(f"inventory emulate {provider} --port {port} &")
    return "".join(body), [*commands, "export " + " ".join(exports)]


def write(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path`` unless a file is there (``force`` overwrites), after
    checking that it loads as a configuration."""
    from inventory.config import parse_settings
    from inventory.errors import ConfigError

    if path.exists() and not force:
        raise UsageError(f"init: {path} exists; keep it, or pass --force to overwrite it")
    import tomllib

    try:
        parse_settings(tomllib.loads(text), path)
    except (ConfigError, tomllib.TOMLDecodeError) as err:  # pragma: no cover - a bug here
        raise AssertionError(f"the starter config does not load: {err}") from err
    try:
        path.write_text(text)
    except OSError as err:
        raise UsageError(f"init: cannot write {path}: {err.strerror or err}") from None
