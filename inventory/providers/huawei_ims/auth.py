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
from inventory.source import SourceConfig

DEFAULT_IAM_ENDPOINT = "https://iam.{region}.myhuaweicloud.com"


def make_auth(source: SourceConfig) -> KeystonePasswordAuth:
    return token_auth(
        source,
        default_iam_endpoint=DEFAULT_IAM_ENDPOINT.format(region=source.location),
        default_scope=TokenScope("project_name", source.location),
    )
