"""Emulated sources: start each provider's emulator and point a source at it.

``inventory demo`` and the benchmarks use every provider the same way through
:class:`EmulatedProvider`: :meth:`EmulatedProvider.start` starts the emulator(s) on free
loopback ports and returns a :class:`Running` handle that knows the catalogue (to mutate it
between syncs) and the ``[[sources]]`` table that reaches it. Credentials never appear in
that table: it holds ``${ENV}`` references, and :attr:`Running.env` holds the values (the
emulators' documented test keys) to put into the environment of the process that syncs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from inventory.emulators.base import EmulatorServer
from inventory.emulators.huawei_iam import (
    DEFAULT_DOMAIN_ID,
    DEFAULT_DOMAIN_NAME,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
)


class MutableCatalogue(Protocol):
    def mutate(
        self,
        seed: int,
        *,
        deprecate: int = 0,
        cease: int = 0,
        delete: int = 0,
        remove: int = 0,
        add: int = 0,
        rename: int = 0,
        now: datetime | None = None,
    ) -> dict[str, list[str]]: ...

    def __len__(self) -> int: ...


@dataclass
class Running:
    """Started emulator(s) of one provider and the source that reaches them."""

    provider: str
    servers: list[EmulatorServer]
    catalogue: MutableCatalogue
    source: dict[str, Any]  # a [[sources]] table, credentials as ${ENV} references
    env: dict[str, str]  # the values of those references

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


@dataclass(frozen=True)
class EmulatedProvider:
    provider: str
    label: str
    module: str
    location: tuple[str, str]  # (config field, value)
    credentials: dict[str, tuple[str, str]]  # field -> (env var, emulator default)
    path: str = "/"
    page_size: int | None = None
    server_args: dict[str, Any] = field(default_factory=dict)
    #: ``[sources.options]`` computed from the started server (e.g. its IAM endpoint).
    options: Callable[[EmulatorServer], dict[str, Any]] | None = None

    def start(self, *, images: int, seed: int, name: str, **server_args: Any) -> Running:
        """Start the emulator; ``server_args`` override its ``make_server`` arguments."""
        module = importlib.import_module(self.module)
        server: EmulatorServer = module.make_server(
            port=0, images=images, seed=seed, **{**self.server_args, **server_args}
        )
        server.start()
        servers = [server]
        options = self.options(server) if self.options is not None else {}
        source: dict[str, Any] = {
            "name": name,
            "provider": self.provider,
            self.location[0]: self.location[1],
            "endpoint": server.url + self.path,
            "credentials": {f: f"${{{env}}}" for f, (env, _) in self.credentials.items()},
        }
        if self.page_size is not None:
            source["page_size"] = self.page_size
        if options:
            source["options"] = options
        env = {env: value for env, value in self.credentials.values()}
        catalogue = server.app.catalogue  # type: ignore[attr-defined]
        return Running(self.provider, servers, catalogue, source, env)


EMULATED: dict[str, EmulatedProvider] = {
    "qingcloud": EmulatedProvider(
        provider="qingcloud",
        label="QingCloud",
        module="inventory.emulators.qingcloud",
        location=("zone", "pek3a"),
        credentials={
            "access_key_id": ("INVENTORY_EMU_QY_ACCESS_KEY_ID", "QYEMULATORACCESSKEY"),
            "secret_access_key": (
                "INVENTORY_EMU_QY_SECRET_ACCESS_KEY",
                "emulator-secret-access-key",
            ),
        },
        path="/iaas/",
        page_size=100,
    ),
    "tencent": EmulatedProvider(
        provider="tencent",
        label="Tencent CVM",
        module="inventory.emulators.tencent",
        location=("region", "ap-guangzhou"),
        credentials={
            "secret_id": ("INVENTORY_EMU_TC_SECRET_ID", "AKIDEMULATORTENCENT00000000000000000"),
            "secret_key": ("INVENTORY_EMU_TC_SECRET_KEY", "emulator-tencent-secret-key"),
        },
        page_size=100,
    ),
    "ksyun": EmulatedProvider(
        provider="ksyun",
        label="Kingsoft KEC",
        module="inventory.emulators.ksyun",
        location=("region", "cn-beijing-6"),
        credentials={
            "access_key_id": ("INVENTORY_EMU_KS_ACCESS_KEY_ID", "AKLTKSEMULATORKEY"),
            "secret_access_key": (
                "INVENTORY_EMU_KS_SECRET_ACCESS_KEY",
                "ksyun-emulator-secret-access-key",
            ),
        },
    ),
    "huawei-iec": EmulatedProvider(
        provider="huawei-iec",
        label="Huawei IEC",
        module="inventory.emulators.huawei_iec",
        location=("region", "cn-north-4"),
        # AK/SK signing here; the IMS source below shows the IAM token flow.
        credentials={
            "access_key_id": ("INVENTORY_EMU_HW_ACCESS_KEY_ID", "HWEMULATORACCESSKEY01"),
            "secret_access_key": (
                "INVENTORY_EMU_HW_SECRET_ACCESS_KEY",
                "emulator-huawei-secret-access-key",
            ),
        },
        page_size=100,
        options=lambda _server: {"domain_id": DEFAULT_DOMAIN_ID},
    ),
    "huawei-ims-v1": EmulatedProvider(
        provider="huawei-ims-v1",
        label="Huawei IMS v1.1",
        module="inventory.emulators.huawei_ims",
        location=("region", "cn-north-4"),
        credentials={
            "username": ("INVENTORY_EMU_HW_USERNAME", DEFAULT_USERNAME),
            "password": ("INVENTORY_EMU_HW_PASSWORD", DEFAULT_PASSWORD),
        },
        path="",
        page_size=100,
        # The emulator answers Keystone's POST /v3/auth/tokens on its own port too.
        options=lambda server: {"domain_name": DEFAULT_DOMAIN_NAME, "iam_endpoint": server.url},
    ),
}
