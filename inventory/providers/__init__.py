"""Provider registry: the one place that lists the providers.

A provider is one folder (auth, collect, normalize and its emulator dialect) exposing a
:class:`Provider`: its config spec, a collector factory and a normalizer; its
``emulator`` module declares an ``EMULATED`` source for the demo, the benchmarks and
``inventory emulate``. Adding a provider is that folder and one line in :data:`PROVIDERS`;
the core (config, sync, store) reads only these interfaces.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from inventory.emulation import EmulatedSource
    from inventory.http import RetryPolicy
    from inventory.paging import Page
    from inventory.records import ImageRecord
    from inventory.source import SourceConfig


#: Why a provider without a ``discovery`` call refuses ``regions = "*"``, unless it says.
NO_DISCOVERY = "it has no call that lists them; list them"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What a source of this provider looks like in the config file."""

    name: str
    location_field: str  # "zone" or "region"
    example_location: str
    #: Each tuple is one complete way to authenticate (e.g. AK/SK, or user + password);
    #: a source gives exactly the fields of one of them.
    credential_sets: tuple[tuple[str, ...], ...]
    env_prefix: str
    default_page_size: int
    max_page_size: int
    default_endpoint: str
    validate_filters: Callable[[Mapping[str, Any]], dict[str, Any]]
    #: Non-secret provider settings from ``[sources.options]`` (project ids, domains...).
    #: Raises ValueError("<field>: <problem>"). The default accepts none.
    validate_options: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda options: _no_options(
        options
    )
    #: The API call that lists the account's zones or regions, for ``regions = "*"``
    #: (inventory/discovery.py); else why the provider has none and what to write instead.
    discovery: str | None = None
    no_discovery: str = NO_DISCOVERY

    @property
    def credential_fields(self) -> tuple[str, ...]:
        """Every credential field any set uses, in first-seen order."""
        seen: dict[str, None] = {}
        for fields in self.credential_sets:
            seen.update(dict.fromkeys(fields))
        return tuple(seen)

    def env_hint(self, credential: str) -> str:
        return f"{self.env_prefix}_{credential.upper()}"

    @classmethod
    def of(
        cls,
        collect: ModuleType,
        name: str,
        *,
        placed_by: tuple[str, str],
        credentials: tuple[tuple[str, ...], ...],
        env_prefix: str,
    ) -> ProviderSpec:
        """The spec of a provider whose ``collect`` module defines ``DEFAULT_PAGE_SIZE``,
        ``MAX_PAGE_SIZE``, ``DEFAULT_ENDPOINT``, ``validate_filters`` and, if the provider
        takes ``[sources.options]``, ``validate_options``. ``placed_by`` is the location
        field and an example value: ``("zone", "pek3a")``."""
        return cls(
            name=name,
            location_field=placed_by[0],
            example_location=placed_by[1],
            credential_sets=credentials,
            env_prefix=env_prefix,
            default_page_size=collect.DEFAULT_PAGE_SIZE,
            max_page_size=collect.MAX_PAGE_SIZE,
            default_endpoint=collect.DEFAULT_ENDPOINT,
            validate_filters=collect.validate_filters,
            validate_options=getattr(collect, "validate_options", _no_options),
            discovery=getattr(collect, "DISCOVERY", None),
            no_discovery=getattr(collect, "NO_DISCOVERY", NO_DISCOVERY),
        )


#: The access key pair most providers sign with.
AK_SK = ("access_key_id", "secret_access_key")


def _no_options(options: Mapping[str, Any]) -> dict[str, Any]:
    if options:
        raise ValueError(f"{next(iter(options))}: this provider takes no options")
    return {}


class Collector(Protocol):
    """Pages through one source's listing. Raises on any failure; never returns [] for one.

    After :meth:`pages` is exhausted, ``complete`` tells whether the whole listing was seen
    and ``incomplete_reason`` why not.
    """

    @property
    def complete(self) -> bool: ...

    @property
    def incomplete_reason(self) -> str | None: ...

    def pages(self) -> Iterator[Page]: ...

    def close(self) -> None: ...

    def discover(self) -> list[str]:
        """The zones or regions its account may use (``regions = "*"``: the spec's
        ``discovery`` call)."""
        ...


class Provider(Protocol):
    @property
    def spec(self) -> ProviderSpec: ...

    def collector(
        self,
        source: SourceConfig,
        policy: RetryPolicy,
        on_retry: Callable[[int, BaseException], None] | None,
    ) -> Collector: ...

    def normalize(self, raw: dict[str, Any]) -> ImageRecord: ...

    #: The field of a listed image that holds its id, as :meth:`normalize` reads it.
    @property
    def id_field(self) -> str: ...

    #: The files of the code that :meth:`normalize` runs (its module and the project's
    #: modules it uses), for :func:`inventory.staging.normalized_by`.
    def normalizer_files(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Assembled:
    """A :class:`Provider` made of its folder's parts: what each provider package exposes
    as ``PROVIDER``."""

    spec: ProviderSpec
    collector_class: Callable[..., Collector]
    normalizer: Callable[[dict[str, Any]], ImageRecord]
    id_field: str

    def collector(
        self,
        source: SourceConfig,
        policy: RetryPolicy,
        on_retry: Callable[[int, BaseException], None] | None,
    ) -> Collector:
        return self.collector_class(source, policy, on_retry)

    def normalize(self, raw: dict[str, Any]) -> ImageRecord:
        return self.normalizer(raw)

    def normalizer_files(self) -> tuple[str, ...]:
        """The normalizer's module and the project's modules it takes names from."""
        module = sys.modules[self.normalizer.__module__]
        names = {module.__name__}
        for value in vars(module).values():
            owner = (
                value.__name__
                if isinstance(value, ModuleType)
                else getattr(value, "__module__", None)
            )
            if isinstance(owner, str) and owner.startswith("inventory."):
                names.add(owner)
        return tuple(sorted(sys.modules[name].__file__ or name for name in names))


class _Registry(Mapping[str, "Provider"]):
    """Provider name -> Provider, importing each provider's package on first use only."""

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = modules
        self._loaded: dict[str, Provider] = {}

    def __getitem__(self, name: str) -> Provider:
        if name not in self._loaded:
            module = importlib.import_module(self._modules[name])
            self._loaded[name] = module.PROVIDER
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def emulated(self, name: str) -> EmulatedSource:
        """The provider's emulator (its folder's ``emulator.EMULATED``), which ``inventory
        emulate``, the demo and the benchmarks start."""
        module = importlib.import_module(f"{self._modules[name]}.emulator")
        source: EmulatedSource = module.EMULATED
        return source


#: The registry: config name -> the package that exposes ``PROVIDER``.
PROVIDERS = _Registry(
    {
        "qingcloud": "inventory.providers.qingcloud",
        "tencent": "inventory.providers.tencent",
        "ksyun": "inventory.providers.ksyun",
        "huawei-iec": "inventory.providers.huawei_iec",
        "huawei-ims-v1": "inventory.providers.huawei_ims",
    }
)
