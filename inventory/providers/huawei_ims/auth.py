"""How an IMS v1.1 source authenticates: a project-scoped IAM (Keystone v3) token.

The OpenStack-native IMS APIs are documented with token auth only; the project comes from
the token's scope (there is no project id in the path). By default the token is scoped to
the project named like the region (Huawei's convention: project ``cn-north-4`` in region
``cn-north-4``); ``options.project_id`` or ``options.project_name`` choose another one
(a sub-project, say). The IAM endpoint defaults to the region's,
``https://iam.<region>.myhuaweicloud.com``.
"""

from __future__ import annotations

from inventory.providers.huawei_common.options import token_auth
from inventory.providers.huawei_common.token import KeystonePasswordAuth, TokenScope
from inventory.source import EVERY_LOCATION, SourceConfig

DEFAULT_IAM_ENDPOINT = "https://iam.{region}.myhuaweicloud.com"
#: The global IAM endpoint: where a ``regions = "*"`` source lists the account's projects,
#: with a token scoped to the account's domain.
GLOBAL_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"


def iam_endpoint(source: SourceConfig) -> str:
    if "iam_endpoint" in source.options:
        return str(source.options["iam_endpoint"])
    if source.location == EVERY_LOCATION:
        return GLOBAL_IAM_ENDPOINT
    return DEFAULT_IAM_ENDPOINT.format(region=source.location)


def make_auth(source: SourceConfig) -> KeystonePasswordAuth:
    every = source.location == EVERY_LOCATION  # listing the projects: the domain's token
    return token_auth(
        source,
        default_iam_endpoint=iam_endpoint(source),
        default_scope=None if every else TokenScope("project_name", source.location),
    )
