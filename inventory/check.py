"""``inventory check``: is everything in place for a sync, without syncing?

Each check is one line, ok or the reason: the database (reached, and its schema at this
version's head), then each source: its credentials resolve, and its first page answers
(signature, endpoint, filters, zone accepted). A ``regions = "*"`` table lists its
regions (the provider's own call) and checks the first page of each. Nothing is written:
no run, no image, no discovered source; one page is asked for, with at most two attempts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Engine

from inventory.config import Settings
from inventory.errors import InventoryError, ProviderError, UsageError, without_source
from inventory.http import RetryPolicy
from inventory.source import SourceConfig


@dataclass(frozen=True)
class Check:
    subject: str  # "database", a source's name
    ok: bool
    detail: str


def check_database(engine: Engine, describe: str) -> Check:
    from inventory.migrate import HEAD, current_revision

    try:
        revision = current_revision(engine)
    except Exception as err:  # any failure to reach it is the answer
        from inventory.secrets import scrub

        cause = getattr(err, "orig", None) or err
        return Check("database", False, f"{describe}: {scrub(str(cause)).strip()}")
    if revision != HEAD:
        return Check(
            "database",
            False,
            f"{describe}: schema at {revision or 'nothing'}, this version needs {HEAD}: "
            "run `inventory migrate`",
        )
    return Check("database", True, f"{describe}, schema at {HEAD}")


def chosen(settings: Settings, names: Sequence[str]) -> list[SourceConfig]:
    """The sources and ``regions = "*"`` tables named (all when none is)."""
    every = [*settings.sources, *settings.templates]
    if not names:
        return every
    by_name = {s.name: s for s in every}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UsageError(
            f"check: no source named {', '.join(map(repr, unknown))} in "
            f"{settings.path or 'the configuration'}; configured: "
            f"{', '.join(by_name) or 'none'}"
        )
    return [by_name[n] for n in names]


def check_sources(
    sources: Sequence[SourceConfig], jobs: int, each: Callable[[Check], None]
) -> None:
    """Every source's checks, up to ``jobs`` at once; ``each`` hears each line as it is
    known (a ``regions = "*"`` table's regions first, then each region's page)."""
    from concurrent.futures import ThreadPoolExecutor

    def run(source: SourceConfig) -> list[Check]:
        return list(_source_checks(source))

    with ThreadPoolExecutor(max(1, min(jobs, len(sources))), "check") as pool:
        for lines in pool.map(run, sources):
            for line in lines:
                each(line)


def _source_checks(source: SourceConfig) -> Iterator[Check]:
    from inventory.source import EVERY_LOCATION

    if source.location == EVERY_LOCATION:
        yield from _template_checks(source)
    else:
        yield first_page(source)


def _template_checks(template: SourceConfig) -> Iterator[Check]:
    from inventory.discovery import find_locations

    try:
        locations = find_locations(template)
    except (InventoryError, OSError) as err:
        yield Check(template.name, False, f"listing its regions: {_local(template, err)}")
        return
    if not locations:
        yield Check(template.name, False, "the provider lists no region for this account")
        return
    shown = ", ".join(locations[:8]) + (
        f" and {len(locations) - 8} more" if len(locations) > 8 else ""
    )
    yield Check(template.name, True, f"{len(locations)} regions: {shown}")
    for location in locations:  # as inventory sync names them: <table>-<region>
        name = f"{template.name}-{location}"
        yield first_page(
            replace(template, name=name, location=location, discovered_by=template.name)
        )


def first_page(source: SourceConfig) -> Check:
    """Resolve the credentials and ask for page 1 (two attempts at most); nothing stored."""
    from inventory.providers import PROVIDERS

    started = time.monotonic()
    policy = RetryPolicy(max_attempts=min(2, source.max_attempts))
    one_at_a_time = replace(source, concurrency=1)  # one request, not a window of them
    try:
        collector = PROVIDERS[source.provider].collector(one_at_a_time, policy, None)
    except InventoryError as err:
        return Check(source.name, False, f"credentials: {_local(source, err)}")
    try:
        pages = collector.pages()
        page = next(pages, None)
        getattr(pages, "close", lambda: None)()  # stop the paging: nothing more is asked
    except (InventoryError, OSError) as err:
        return Check(source.name, False, _local(source, err))
    finally:
        collector.close()
    took = time.monotonic() - started
    if page is None:
        return Check(source.name, True, f"answered with no images ({took:.1f}s)")
    items = len(page.items) if page.stream is None else None
    of = f" of {page.total:,}" if page.total is not None else ""
    size = f"{items:,} images{of}" if items is not None else f"a streamed listing{of}"
    return Check(source.name, True, f"credentials resolved; page 1: {size} ({took:.1f}s)")


def _local(source: SourceConfig, err: BaseException) -> str:
    return without_source(source.name, str(err)) if isinstance(err, ProviderError) else str(err)
