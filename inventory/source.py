"""One configured source and its secret references: what a provider's collector is given.

Below the config loader (:mod:`inventory.config`, which builds these) and the providers
(which read them), so neither imports the other's internals.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from inventory.errors import ConfigError
from inventory.secrets import Secret

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
#: The location of a ``[[sources]]`` table that asks for every region (``regions = "*"``).
EVERY_LOCATION = "*"


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret comes from: an environment variable or a file. Never the value."""

    kind: str  # "env", "file", or "literal" (only for a database URL without a password)
    target: str  # variable name or file path
    where: str  # for messages: 'inventory.toml: source "x": credentials.secret_access_key'

    @classmethod
    def parse(cls, value: object, where: str) -> SecretRef:
        if not isinstance(value, str):
            raise ConfigError(f'{where}: expected a string like "${{ENV_VAR}}" or "file:/path"')
        match = _ENV_REF.match(value)
        if match:
            return cls("env", match.group(1), where)
        if value.startswith("file:") and len(value) > 5:
            return cls("file", value[5:], where)
        raise ConfigError(
            f"{where}: secrets are not written in the config file; "
            'write a reference such as "${QY_SECRET_ACCESS_KEY}" or "file:/run/secrets/name"'
        )

    def resolve(self) -> Secret:
        if self.kind == "literal":
            return Secret(self.target)
        if self.kind == "env":
            value = os.environ.get(self.target)
            if not value:
                raise ConfigError(
                    f"{self.where}: environment variable {self.target} is not set; "
                    "export it before running"
                )
            return Secret(value)
        try:
            text = Path(self.target).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(
                f"{self.where}: cannot read secret file {self.target}: {err.strerror}"
            ) from None
        if not text:
            raise ConfigError(f"{self.where}: secret file {self.target} is empty")
        return Secret(text)

    def __repr__(self) -> str:
        return f"SecretRef({self.kind}:{self.target})"


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One configured source: a provider account in one zone or region, with filters."""

    name: str
    provider: str
    location: str
    account: str | None = None
    endpoint: str | None = None
    filters: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    schedule: str | None = None
    timezone: str = "UTC"
    credentials: Mapping[str, SecretRef] = field(default_factory=lambda: MappingProxyType({}))
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    page_size: int | None = None
    #: Requests in flight at once for listings whose total is known after the first page
    #: (None: the provider's default); marker and one-answer listings page one at a time.
    concurrency: int | None = None
    #: Requests per second to this account's API in this region, shared by every source of
    #: the same account and region in one process (None: the provider's default).
    rate_limit_per_s: float | None = None
    timeout_s: float = 30.0
    max_attempts: int = 5
    #: The ``[[sources]]`` table whose ``regions = "*"`` found this source's region (its
    #: name), or None for a source written out (inventory/discovery.py). Such a table
    #: itself is a template whose location is :data:`EVERY_LOCATION`.
    discovered_by: str | None = None

    def has_credential(self, name: str) -> bool:
        return name in self.credentials

    def credential(self, name: str) -> Secret:
        ref = self.credentials.get(name)
        if ref is None:
            raise ConfigError(f"source {self.name!r}: credentials.{name} is required")
        return ref.resolve()
