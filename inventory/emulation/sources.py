"""Emulated sources: start a provider's emulator and point a source at it.

``inventory demo`` and the benchmarks use every provider the same way: each dialect module
declares an :class:`EmulatedSource`, whose :meth:`~EmulatedSource.start` starts the
emulator on a free loopback port and returns a :class:`Running` handle that knows the
catalogue (to mutate it between syncs) and the ``[[sources]]`` table that reaches it.
Credentials never appear in that table: it holds ``${ENV}`` references, and
:attr:`Running.env` holds the values (the emulator's documented test keys) to put into the
environment of the process that syncs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inventory.emulation.catalogue import Catalogue
from inventory.emulation.server import EmulatorServer


@dataclass
class Running:
    """A started emulator of one provider and the source that reaches it."""

    provider: str
    server: EmulatorServer
    catalogue: Catalogue
    source: dict[str, Any]  # a [[sources]] table, credentials as ${ENV} references
    env: dict[str, str]  # the values of those references

    def stop(self) -> None:
        self.server.stop()


@dataclass(frozen=True)
class EmulatedSource:
    provider: str
    label: str
    make_server: Callable[..., EmulatorServer]
    location: tuple[str, str]  # (config field, value)
    credentials: dict[str, tuple[str, str]]  # field -> (env var, emulator default)
    path: str = "/"
    page_size: int | None = None
    #: ``[sources.options]`` computed from the started server (e.g. its IAM endpoint).
    options: Callable[[EmulatorServer], dict[str, Any]] = lambda _server: {}
    server_args: dict[str, Any] = field(default_factory=dict)

    def start(self, *, images: int, seed: int, name: str, **server_args: Any) -> Running:
        """Start the emulator; ``server_args`` override its ``make_server`` arguments."""
        server = self.make_server(
            port=0, images=images, seed=seed, **{**self.server_args, **server_args}
        ).start()
        source: dict[str, Any] = {
            "name": name,
            "provider": self.provider,
            self.location[0]: self.location[1],
            "endpoint": server.url + self.path,
            "credentials": {f: f"${{{env}}}" for f, (env, _) in self.credentials.items()},
        }
        if self.page_size is not None:
            source["page_size"] = self.page_size
        options = self.options(server)
        if options:
            source["options"] = options
        env = dict(self.credentials.values())
        catalogue = server.app.catalogue  # type: ignore[attr-defined]
        return Running(self.provider, server, catalogue, source, env)
