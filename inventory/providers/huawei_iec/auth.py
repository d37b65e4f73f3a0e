"""How an IEC source authenticates: AK/SK ``SDK-HMAC-SHA256`` or an IAM token.

The source gives one of two credential sets (see ``ProviderSpec.credential_sets``):

- ``access_key_id`` + ``secret_access_key``: every request signed; IEC is an account-level
  (global) service, so the official SDK sends the account id as ``X-Domain-Id`` and signs
  it. The SDK looks the id up through IAM when it is not configured; this collector asks for
  it instead (``options.domain_id``), which saves a call and a permission;
- ``username`` + ``password`` (+ ``options.domain_name``): an IAM token. IEC is global, so
  the token is domain-scoped by default; ``options.project_id`` / ``project_name`` ask for
  a project-scoped one instead.
"""

from __future__ import annotations

import httpx

from inventory.errors import ConfigError
from inventory.providers.huawei_common.options import token_auth
from inventory.providers.huawei_common.signer import SdkHmacAuth
from inventory.providers.huawei_common.token import TokenScope
from inventory.source import SourceConfig

DEFAULT_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"


def uses_token(source: SourceConfig) -> bool:
    return source.has_credential("username")


def make_auth(source: SourceConfig) -> httpx.Auth:
    if uses_token(source):
        domain = source.options.get("domain_name", "")
        return token_auth(
            source,
            default_iam_endpoint=DEFAULT_IAM_ENDPOINT,
            default_scope=TokenScope("domain", domain),
        )
    domain_id = source.options.get("domain_id")
    if not domain_id:
        raise ConfigError(
            f"source {source.name!r}: options.domain_id (the account id, sent as X-Domain-Id) "
            "is required with credentials.access_key_id and credentials.secret_access_key; "
            "find it under My Credentials in the Huawei Cloud console"
        )
    return SdkHmacAuth(
        source.credential("access_key_id").reveal(),
        source.credential("secret_access_key"),
        extra_headers={"X-Domain-Id": domain_id},
    )
