"""An emulated provider as the CLI, the demo and the benchmarks use it.

Each dialect module declares one :class:`EmulatedSource` (``EMULATED``) to build, serve or
start its emulator. A started one is a :class:`Running` handle whose ``[[sources]]`` table
names the credentials only as ``${ENV}`` references; its ``env`` holds their values.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from inventory.emulation.app import EmulatorApp
from inventory.emulation.catalogue import Catalogue
from inventory.emulation.server import EmulatorServer


@dataclass
class Running:
    """A started emulator of one provider and the source that reaches it."""

    provider: str
    server: EmulatorServer
    catalogue: Catalogue
    source: dict[str, Any]  # a [[sources]] table, credentials as ${ENV} references
    env: dict[str, str] = field(repr=False)  # the values of those references

    def stop(self) -> None:
        self.server.stop()


@dataclass(frozen=True)
class EmulatedSource:
    app: type[EmulatorApp]
    label: str  # the provider as people name it, for the demo
    location: tuple[str, str]  # the demo source's location field and value
    path: str = "/"  # where the listing is served
    page_size: int | None = 100  # the demo source's; None: the provider has no page size
    short_label: str | None = None  # for the banner of ``inventory emulate``; default label

    @property
    def provider(self) -> str:
        return self.app.provider

    def make_server(
        self,
        *,
        port: int = 0,
        images: int = 1000,
        seed: int = 1,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        verbose: bool = False,
        **catalogue: Any,
    ) -> EmulatorServer:
        """An unstarted server over a catalogue generated from ``seed`` (``catalogue``: the
        provider's settings, e.g. ``system_share``), accepting the test keys unless given."""
        app = self.app(self.app.catalogue_class.generate(images, seed, **catalogue))
        app.accept(access_key_id, secret_access_key)
        return EmulatorServer(app, port, verbose=verbose)

    def serve(self, *, images: int = 1000, seed: int = 1, **kw: Any) -> None:
        """``inventory emulate PROVIDER``: serve in the foreground until Ctrl-C. The first
        line printed names the URL, written once the port listens (port 0 picks one)."""
        server = self.make_server(images=images, seed=seed, **kw)
        app = server.app
        name = self.short_label or self.label
        where = f"{server.url}{self.path} ({images} images, seed {seed}); {app.banner()}"
        print(f"{name} emulator: {where}; control API {server.url}/_emulator/", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()

    def start(self, *, images: int, seed: int, name: str, **kw: Any) -> Running:
        """Start on a free port; the source ``name`` reaches it (``kw``: the catalogue's
        generation settings, as for :meth:`make_server`)."""
        server = self.make_server(images=images, seed=seed, **kw).start()
        app = server.app
        prefix = "INVENTORY_EMU_" + self.provider.upper().replace("-", "_")
        credentials = app.credentials()
        env_of = {field: f"{prefix}_{field.upper()}" for field in credentials}
        source: dict[str, Any] = {
            "name": name,
            "provider": self.provider,
            self.location[0]: self.location[1],
            "endpoint": server.url + self.path,
            "credentials": {field: f"${{{env}}}" for field, env in env_of.items()},
        }
        if self.page_size is not None:
            source["page_size"] = self.page_size
        if options := app.source_options(server.url):
            source["options"] = options
        env = {env_of[field]: value for field, value in credentials.items()}
        return Running(self.provider, server, app.catalogue, source, env)
