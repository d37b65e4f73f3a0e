"""The non-secret ``[sources.options]`` of the Huawei providers, and auth built from them.

Options (each a non-empty string):

- ``iam_endpoint``: the IAM (Keystone v3) base URL, e.g. ``https://iam.myhuaweicloud.com``;
- ``domain_name``: the account name; required with ``username`` + ``password``;
- ``domain_id``: the account id, sent as ``X-Domain-Id`` with AK/SK (IEC only);
- ``project_id`` or ``project_name`` (not both): a project scope for the token.

Which options a credential set needs is checked when the collector is built, because the
options validator does not see the credentials: the error then names the option to add.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from inventory.errors import ConfigError
from inventory.providers.huawei_common.token import KeystonePasswordAuth, TokenScope
from inventory.source import SourceConfig

ALL_OPTIONS = ("iam_endpoint", "domain_name", "domain_id", "project_id", "project_name")


def options_validator(allowed: Collection[str]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A ``ProviderSpec.validate_options`` accepting ``allowed`` of :data:`ALL_OPTIONS`."""

    def validate(options: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in options.items():
            if key not in allowed:
                raise ValueError(f"{key}: unknown option (allowed: {', '.join(allowed)})")
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{key}: must be a non-empty string")
            if key == "iam_endpoint" and not value.startswith(("http://", "https://")):
                raise ValueError("iam_endpoint: must be an http:// or https:// URL")
            out[key] = value.strip()
        if "project_id" in out and "project_name" in out:
            raise ValueError("project_id: give project_id or project_name, not both")
        return out

    return validate


def token_auth(
    source: SourceConfig, *, default_iam_endpoint: str, default_scope: TokenScope | None
) -> KeystonePasswordAuth:
    """The IAM token auth of a source that gives ``username`` + ``password``; scoped to
    ``default_scope`` unless the options name a project (None: to the account's domain)."""
    options = source.options
    domain = options.get("domain_name")
    if not domain:
        raise ConfigError(
            f"source {source.name!r}: options.domain_name is required with "
            "credentials.username and credentials.password (the account name the IAM user "
            'belongs to), e.g. [sources.options] domain_name = "my-account"'
        )
    if "project_id" in options:
        scope = TokenScope("project_id", options["project_id"])
    elif "project_name" in options:
        scope = TokenScope("project_name", options["project_name"])
    else:
        scope = default_scope or TokenScope("domain", domain)
    return KeystonePasswordAuth(
        options.get("iam_endpoint", default_iam_endpoint),
        source.credential("username").reveal(),
        source.credential("password"),
        domain,
        scope,
    )
