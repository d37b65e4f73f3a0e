"""Region discovery: a ``[[sources]]`` table asking for ``regions = "*"`` (or ``zones``)
stands for one source per region the provider's own API lists for the account.

:func:`expand` asks each such table's provider once (Tencent ``DescribeRegions``, QingCloud
``DescribeZones``: the spec's ``discovery`` call, signed like the listing) and returns the
settings with one source per location listed, named ``<name>-<location>``: each has its own
runs, lock and history, exactly as if it were written out. What it found is kept in
``sources`` (``discovered_by``, ``retired_at``; migration 0011):

- a location listed for the first time gets its row; its first sync is a first sync (it
  stores what exists and raises no alerts, as any source's first sync);
- a source whose location is no longer listed is *retired*: it is not synced, ``inventory
  status`` shows it, and none of its images is marked gone (a region leaving the account's
  list says nothing about the images in it). Listed again, it is restored, and its next
  sync compares with what it stored;
- when the provider cannot be asked (network, credentials, a malformed answer, a listing
  of none), nothing is retired: the sources found last time are used, and the failure is
  reported. Discovery never turns a failure into "the region is gone".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine, text

from inventory import store
from inventory.config import Settings
from inventory.errors import ConfigError, InventoryError
from inventory.http import RetryPolicy
from inventory.providers import PROVIDERS
from inventory.source import SourceConfig

log = logging.getLogger(__name__)

#: A source name (as the config's): a discovered location must make one.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Discovery:
    """What one ``regions = "*"`` table stood for this time."""

    template: str
    provider: str
    #: The sources it stands for (their names), listed now or, after an error, last time.
    sources: tuple[str, ...]
    added: tuple[str, ...] = ()  # listed for the first time
    retired: tuple[str, ...] = ()  # no longer listed
    restored: tuple[str, ...] = ()  # listed again after a retirement
    #: Why the provider could not be asked (then nothing was retired), or None.
    error: str | None = None
    #: Locations listed that cannot name a source, left out.
    skipped: tuple[str, ...] = ()


def find_locations(template: SourceConfig) -> list[str]:
    """The locations the provider lists for the template's account, through its collector
    (the same signing, retries and rate limit as its listing)."""
    provider = PROVIDERS[template.provider]
    collector = provider.collector(template, RetryPolicy(max_attempts=template.max_attempts), None)
    try:
        return collector.discover()
    finally:
        collector.close()


def discover_sources(
    settings: Settings, engine: Engine, names: Sequence[str] = ()
) -> tuple[Settings, list[Discovery]]:
    """:func:`expand` for the sources ``names`` (a ``[[sources]]`` table's name, or a
    source it stands for), or for every table when no name is given."""
    wanted = [
        template
        for template in settings.templates
        if not names or any(n == template.name or n.startswith(f"{template.name}-") for n in names)
    ]
    return expand(replace(settings, templates=tuple(wanted)), engine)


def select_sources(settings: Settings, engine: Engine, names: Sequence[str]) -> list[SourceConfig]:
    """The sources ``names`` stand for (all when none): a written-out or discovered source
    by its name, a ``regions = "*"`` table's name for all of its sources. A retired
    source's name is refused saying so."""
    if not names:
        return list(settings.sources)
    chosen: list[SourceConfig] = []
    for name in names:
        if any(template.name == name for template in settings.templates):
            chosen += [s for s in settings.sources if s.discovered_by == name]
            continue
        try:
            chosen.append(settings.source(name))
        except ConfigError:
            with engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT provider, location, retired_at FROM sources"
                        " WHERE name = :name AND retired_at IS NOT NULL"
                    ),
                    {"name": name},
                ).first()
            if row is None:
                raise
            raise ConfigError(store.retired(name, *row)) from None
    return list({source.name: source for source in chosen}.values())


def source_named(settings: Settings, engine: Engine, name: str) -> SourceConfig:
    """The source ``name``: written out, or found by an earlier discovery (its row names
    its table and region; the provider is not asked). Raises ConfigError when there is
    none (a retired one says so)."""
    for template in settings.templates:
        if not name.startswith(f"{template.name}-"):
            continue
        with engine.connect() as conn:
            location = conn.execute(
                text(
                    "SELECT location FROM sources WHERE name = :name AND discovered_by = :by"
                    " AND retired_at IS NULL"
                ),
                {"name": name, "by": template.name},
            ).scalar()
        if location is not None:
            return replace(template, name=name, location=location, discovered_by=template.name)
    if any(template.name == name for template in settings.templates):
        raise ConfigError(f'{name!r} is a regions = "*" table: name one of its sources')
    return select_sources(settings, engine, [name])[0]


def expand(
    settings: Settings,
    engine: Engine,
    *,
    find: Callable[[SourceConfig], Sequence[str]] = find_locations,
) -> tuple[Settings, list[Discovery]]:
    """``settings`` with the sources of its ``regions = "*"`` tables added, and what each
    table stood for (see the module docstring). Raises ConfigError when a discovered
    source would take the name of one written out."""
    if not settings.templates:
        return settings, []
    written = {source.name for source in settings.sources}
    sources = list(settings.sources)
    outcomes: list[Discovery] = []
    for template in settings.templates:
        try:
            found: Sequence[str] | None = find(template)
            error = None
        except InventoryError as err:  # provider errors, and a credential not set
            found, error = None, str(err)
        with engine.begin() as conn:
            outcome = _record(conn, template, found, error, written)
        outcomes.append(outcome)
        _log(outcome)
        for name in outcome.sources:
            location = name[len(template.name) + 1 :]
            sources.append(
                replace(template, name=name, location=location, discovered_by=template.name)
            )
    return replace(settings, sources=tuple(sources)), outcomes


def _record(
    conn: Connection,
    template: SourceConfig,
    found: Sequence[str] | None,
    error: str | None,
    written: set[str],
) -> Discovery:
    """Keep what discovery found in ``sources``: new rows, retirements, restorations."""
    by = {"by": template.name}
    if found is None:  # the last sources found, none retired
        last = conn.execute(
            text(
                "SELECT name FROM sources WHERE discovered_by = :by AND retired_at IS NULL"
                " ORDER BY name"
            ),
            by,
        ).scalars()
        return Discovery(template.name, template.provider, tuple(last), error=error)
    usable = [location for location in found if _NAME.match(f"{template.name}-{location}")]
    skipped = tuple(location for location in found if location not in usable)
    names = [f"{template.name}-{location}" for location in usable]
    for name in names:
        if name in written:
            raise ConfigError(
                f'source "{template.name}" found {name[len(template.name) + 1 :]!r}, whose '
                f'source would be named "{name}" like one written out; rename one of them'
            )
    known = set(
        conn.execute(text("SELECT name FROM sources WHERE discovered_by = :by"), by).scalars()
    )
    retired = conn.execute(
        text(
            "UPDATE sources SET retired_at = now(), updated_at = now()"
            " WHERE discovered_by = :by AND retired_at IS NULL AND NOT (name = ANY(:names))"
            " RETURNING name"
        ),
        {**by, "names": names},
    ).scalars()
    restored = conn.execute(
        text(
            "UPDATE sources SET retired_at = NULL, updated_at = now()"
            " WHERE discovered_by = :by AND retired_at IS NOT NULL AND name = ANY(:names)"
            " RETURNING name"
        ),
        {**by, "names": names},
    ).scalars()
    retired_names, restored_names = tuple(sorted(retired)), tuple(sorted(restored))
    for name, location in zip(names, usable, strict=True):
        source = replace(template, name=name, location=location, discovered_by=template.name)
        store.upsert_source(conn, source)
    return Discovery(
        template.name,
        template.provider,
        tuple(names),
        added=tuple(name for name in names if name not in known),
        retired=retired_names,
        restored=restored_names,
        skipped=skipped,
    )


def _log(outcome: Discovery) -> None:
    fields = {"event": "sources_discovered", "source": outcome.template}
    if outcome.error is not None:
        log.error(
            "source %s: could not list the account's %ss, so nothing was retired; using the "
            "%d found before: %s",
            outcome.template,
            PROVIDERS[outcome.provider].spec.location_field,
            len(outcome.sources),
            outcome.error,
            extra={"fields": {**fields, "error": outcome.error}},
        )
        return
    for what, names in (("new", outcome.added), ("restored", outcome.restored)):
        if names:
            log.info("source %s: %s: %s", outcome.template, what, ", ".join(names))
    for name in outcome.retired:
        log.warning(
            "source %s: retired %s: its region is no longer listed (none of its images is "
            "marked gone)",
            outcome.template,
            name,
            extra={"fields": {"event": "source_retired", "source": name}},
        )
    for location in outcome.skipped:
        log.warning(
            "source %s: %r cannot name a source (<name>-<location>: at most 63 letters, "
            "digits, '.', '_' or '-'); left out",
            outcome.template,
            location,
        )
    log.debug(
        "source %s: %d sources", outcome.template, len(outcome.sources), extra={"fields": fields}
    )
