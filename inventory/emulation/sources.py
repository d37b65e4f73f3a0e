"""An emulated provider as the CLI, the demo and the benchmarks use it.

Each dialect module declares one :class:`EmulatedSource` (``EMULATED``) to build, serve or
start its emulator. A started one is a :class:`Running` handle whose ``[[sources]]`` table
names the credentials only as ``${ENV}`` references; its ``env`` holds their values.
"""

from __future__ import annotations

import contextlib
import json
import shlex
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
        line printed names the URL, written once the port listens (port 0 picks one); the
        next say all a client needs: the credentials it accepts (these are the emulator's
        test keys, not secrets), the source options (an IAM endpoint, a domain),
        and how to get a ready ``[[sources]]`` table."""
        server = self.make_server(images=images, seed=seed, **kw)
        app = server.app
        name = self.short_label or self.label
        where = f"{server.url}{self.path} ({images} images, seed {seed}); {app.banner()}"
        print(f"{name} emulator: {where}; control API {server.url}/_emulator/", flush=True)
        for key, value in app.credentials().items():
            print(f"  credentials.{key} = {value}")
        for option, value in app.source_options(server.url).items():
            print(f"  options.{option} = {value}")
        port = server.url.rsplit(":", 1)[1]
        print(
            f"  a [[sources]] table for it: inventory emulate {self.provider} --port {port}"
            " --print-config",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()

    def source_for(
        self, app: EmulatorApp, url: str, name: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """A ``[[sources]]`` table reaching ``app`` at ``url`` (credentials as ``${ENV}``
        references, as the config wants every secret) and the values of those variables."""
        prefix = "INVENTORY_EMU_" + self.provider.upper().replace("-", "_")
        credentials = app.credentials()
        env_of = {field: f"{prefix}_{field.upper()}" for field in credentials}
        source: dict[str, Any] = {
            "name": name,
            "provider": self.provider,
            self.location[0]: self.location[1],
            "endpoint": url + self.path,
            "credentials": {field: f"${{{env}}}" for field, env in env_of.items()},
        }
        if self.page_size is not None:
            source["page_size"] = self.page_size
        if options := app.source_options(url):
            source["options"] = options
        return source, {env_of[field]: value for field, value in credentials.items()}

    def print_config(
        self,
        *,
        port: int,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        name: str | None = None,
    ) -> str:
        """``inventory emulate PROVIDER --port N --print-config``: the ``[[sources]]`` table
        (TOML) for the emulator started with the same port and keys, the ``export`` lines
        of its credentials above it as comments."""
        app = self.app(self.app.catalogue_class.generate(0, 1))
        app.accept(access_key_id, secret_access_key)
        command = f"inventory emulate {self.provider} --port {port}"
        source, env = self.source_for(
            app, f"http://127.0.0.1:{port}", name or f"emulated-{self.provider}"
        )
        lines = [
            f"# A source for `{command}`.",
            "# Its credentials are read from the environment, as every secret is (these are",
            "# the emulator's test keys); set them first:",
            *(f"#   export {var}={shlex.quote(value)}" for var, value in env.items()),
        ]
        return "\n".join(lines) + "\n" + source_toml(source)

    def start(self, *, images: int, seed: int, name: str, **kw: Any) -> Running:
        """Start on a free port; the source ``name`` reaches it (``kw``: the catalogue's
        generation settings, as for :meth:`make_server`)."""
        server = self.make_server(images=images, seed=seed, **kw).start()
        app = server.app
        source, env = self.source_for(app, server.url, name)
        return Running(self.provider, server, app.catalogue, source, env)


def source_toml(source: dict[str, Any]) -> str:
    """One ``[[sources]]`` table as TOML: strings, numbers and one level of sub-tables
    (credentials, options), which is all a source has."""
    lines = ["[[sources]]"]
    tables = {k: v for k, v in source.items() if isinstance(v, dict)}
    lines += [f"{k} = {_toml(v)}" for k, v in source.items() if k not in tables]
    for table, values in tables.items():
        lines.append(f"[sources.{table}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A TOML value: a basic string (JSON's escapes are TOML's), or a number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)
