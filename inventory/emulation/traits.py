"""Realistic, provider-neutral image traits drawn from a seed, fast enough for 100,000 images.

Operating system, name, size, architecture and dates; each provider dialect maps them onto
its own response shape. Every draw is deterministic for the state of the ``random.Random``
it is given, so a seed fixes a catalogue on every machine.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import random
import sys
import time
import uuid
from array import array
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple, TypeVar

T = TypeVar("T")

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True, slots=True)
class OsRelease:
    """One operating-system release as clouds offer it."""

    family: str  # lower-case family as APIs report it: "centos", "ubuntu", "windows"
    distro: str  # display name: "CentOS", "Ubuntu Server", "Windows Server"
    version: str  # "7.9", "22.04 LTS", "2019 Datacenter"
    platform: str  # "linux" / "windows"
    slug: str  # short form used in user-made names: "centos79", "ubuntu2204", "win2019"
    size_gb: int  # system disk size of the platform image
    weight: int  # relative popularity

    @property
    def label(self) -> str:
        return f"{self.distro} {self.version}"


def _linux(family: str, distro: str, slug: str, versions: str, weight: int) -> list[OsRelease]:
    # versions: "ver:slug-suffix,..." keeps the table below to one line per distro.
    return [
        OsRelease(family, distro, version, "linux", slug + suffix, 20, weight)
        for version, suffix in (item.split(":") for item in versions.split(","))
    ]


OS_RELEASES: tuple[OsRelease, ...] = (
    *_linux("centos", "CentOS", "centos", "7.6:76,7.9:79,8.2:82,Stream 9:s9", 9),
    *_linux("ubuntu", "Ubuntu Server", "ubuntu", "18.04 LTS:1804,20.04 LTS:2004", 7),
    *_linux("ubuntu", "Ubuntu Server", "ubuntu", "22.04 LTS:2204,24.04 LTS:2404", 10),
    *_linux("debian", "Debian", "debian", "10:10,11:11,12:12", 5),
    *_linux("rocky", "Rocky Linux", "rocky", "8.8:8,9.3:9", 4),
    *_linux("almalinux", "AlmaLinux", "alma", "8.9:8,9.4:9", 3),
    *_linux("opensuse", "openSUSE Leap", "leap", "15.4:154,15.5:155", 2),
    *_linux("fedora", "Fedora", "fedora", "39:39,40:40", 2),
    *_linux("kylin", "Kylin Server", "kylin", "V10 SP2:v10sp2,V10 SP3:v10sp3", 2),
    *_linux("euleros", "openEuler", "openeuler", "20.03 LTS:2003,22.03 LTS:2203", 2),
    OsRelease("windows", "Windows Server", "2016 Datacenter", "windows", "win2016", 50, 2),
    OsRelease("windows", "Windows Server", "2019 Datacenter", "windows", "win2019", 50, 4),
    OsRelease("windows", "Windows Server", "2022 Datacenter", "windows", "win2022", 50, 4),
)

APP_WORDS = ("web", "api", "worker", "db", "cache", "gateway", "batch", "ml", "ci", "bastion")
ROLE_WORDS = ("frontend", "backend", "node", "base", "runner", "proxy", "primary", "replica")
ENV_WORDS = ("prod", "staging", "dev", "test")
#: The tags an account uses, reused across its images as in a real account (so a tag filter
#: matches several images).
TAG_PAIRS = (
    ("env", "prod"), ("env", "staging"), ("env", "dev"), ("team", "platform"), ("team", "data"),
    ("app", "web"), ("cost-center", "finance"), ("owner", "ops"),
)  # fmt: skip


def draw_tag_picks(rng: random.Random, count: int) -> list[tuple[int, ...]]:
    """For each of ``count`` images, the indexes into :data:`TAG_PAIRS` of its tags: about
    30% of images carry one tag, 8% two different ones."""
    rolls = draw_fractions(rng, count)
    first = draw_choices(rng, range(len(TAG_PAIRS)), count)
    second = draw_choices(rng, range(len(TAG_PAIRS)), count)
    return [
        ((a, b) if roll < 0.08 and a != b else (a,)) if roll < 0.3 else ()
        for roll, a, b in zip(rolls, first, second, strict=True)
    ]


#: Catalogue dates run from here ...
CATALOGUE_START = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp())
#: ... to here (fixed, so a seed gives the same catalogue whenever it is generated).
CATALOGUE_END = int(datetime(2026, 6, 30, tzinfo=UTC).timestamp())


class ImageTraits(NamedTuple):
    """The provider-neutral facts of one generated image; providers map them to fields.

    A NamedTuple rather than a frozen dataclass: building 100,000 of them is three times
    faster, and they are just as immutable."""

    os: OsRelease
    system: bool  # a platform image (True) or one the account captured itself
    name: str  # platform: the OS label ("CentOS 7.9"); own: "web-frontend-2024-05"
    description: str | None
    architecture: str  # "x86_64", "arm64" or "i386"
    size_gb: int
    created: int  # Unix seconds


# Formatting timestamps is most of the cost of a big catalogue; tables make it a few
# lookups instead of a strftime.
_HOURS = tuple(f"{h:02d}" for h in range(24))
_MINUTE_SECONDS = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))


@lru_cache(maxsize=8192)
def _day(days: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(days * 86400))


def iso_z(seconds: int) -> str:
    """Unix seconds as ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``; cheap for bulk generation."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{_day(days)}T{_HOURS[hours]}:{_MINUTE_SECONDS[rest]}Z"


# Bulk draws. rng.choices() costs a Python-level call per item; these draw all the random
# bytes at once (rng.randbytes) and map them in C (bytes.translate, array), about ten times
# faster. They consume the generator deterministically, so a seed still fixes the result.


def _uint64s(rng: random.Random, count: int) -> list[int]:
    values = array("Q", rng.randbytes(8 * count))
    if sys.byteorder == "big":  # the same seed gives the same catalogue on every machine
        values.byteswap()
    return values.tolist()


@lru_cache(maxsize=256)
def _slot_table(n: int, weights: tuple[float, ...] | None) -> bytes:
    """256 byte slots, each naming an index below ``n``, shared out by weight."""
    shares = [1.0] * n if weights is None else [float(w) for w in weights]
    if len(shares) != n or n == 0 or n > 256 or min(shares) < 0 or sum(shares) <= 0:
        raise ValueError("draw_choices takes 1 to 256 values with as many weights >= 0")
    bounds = [total / sum(shares) for total in itertools.accumulate(shares)]
    # Slot s goes to the first value whose cumulative share passes the middle of s.
    return bytes(min(n - 1, bisect.bisect_right(bounds, (s + 0.5) / 256)) for s in range(256))


def draw_choices(
    rng: random.Random, population: Sequence[T], count: int, weights: Sequence[float] | None = None
) -> list[T]:
    """Like ``rng.choices(population, weights, k=count)``, but fast; shares are exact to
    1/256 (a weight below 1/512 of the total may never be drawn). At most 256 values."""
    table = _slot_table(len(population), tuple(weights) if weights is not None else None)
    return [population[i] for i in rng.randbytes(count).translate(table)]


def draw_ints(rng: random.Random, low: int, high: int, count: int) -> list[int]:
    """``count`` integers uniform in ``[low, high)`` (64 random bits each, so the modulo
    bias is negligible for any span a catalogue uses)."""
    span = high - low
    if span <= 0:
        raise ValueError(f"empty range [{low}, {high})")
    return [low + v % span for v in _uint64s(rng, count)]


def draw_fractions(rng: random.Random, count: int) -> list[float]:
    """``count`` floats uniform in [0, 1), with 53 bits like ``rng.random()``."""
    return [(v >> 11) * 2.0**-53 for v in _uint64s(rng, count)]


_ID_TABLE = bytes(ord(ID_ALPHABET[i % len(ID_ALPHABET)]) for i in range(256))


def random_ids(
    rng: random.Random, prefix: str, count: int, length: int = 8, taken: Container[str] = ()
) -> list[str]:
    """``count`` distinct ids of ``prefix`` and ``length`` random characters, none in ``taken``."""
    found: dict[str, None] = {}  # an ordered set
    while len(found) < count:
        need = count - len(found)
        chars = rng.randbytes(need * length).translate(_ID_TABLE).decode("ascii")
        for start in range(0, need * length, length):
            ident = prefix + chars[start : start + length]
            if ident not in found and ident not in taken:
                found[ident] = None
    return list(found)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a big catalogue: 100,000 fresh
    dicts and lists trigger a collection every few hundred allocations, each scanning every
    object made so far; none of them is garbage, so pausing it halves a generation's time.
    The previous state is restored, so nesting is harmless."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@paused_gc()
def draw_traits(
    rng: random.Random, count: int, system_share: float = 0.15, created_at: int | None = None
) -> list[ImageTraits]:
    """``count`` images' traits, deterministic for the state of ``rng``; ``created_at``
    (Unix seconds) dates them all, else creation dates spread over the catalogue years.

    Each field is drawn for all images at once, which keeps 100,000 images well under a
    second; the draws are ordered field by field, so changing one field's distribution
    changes only that field's values.
    """
    if count < 0:
        raise ValueError(f"image count must be 0 or more, not {count}")
    releases = draw_choices(rng, OS_RELEASES, count, [r.weight for r in OS_RELEASES])
    system = [r < system_share for r in draw_fractions(rng, count)]
    dates = draw_ints(rng, CATALOGUE_START, CATALOGUE_END, count)  # drawn either way
    created = dates if created_at is None else [created_at] * count
    # Windows Server 2016+ is 64-bit x86 only; a few Linux images are ARM or 32-bit.
    arches = draw_choices(rng, ("x86_64", "arm64", "i386"), count, (95, 3.5, 1.5))
    apps = draw_choices(rng, APP_WORDS, count)
    roles = draw_choices(rng, ROLE_WORDS, count)
    envs = draw_choices(rng, ENV_WORDS, count)
    styles = draw_choices(rng, range(4), count, (5, 3, 2, 2))
    extra_gb = draw_choices(rng, (0, 0, 0, 20, 30, 80), count)
    described = draw_fractions(rng, count)
    versions = draw_choices(rng, range(2, 10), count)

    out: list[ImageTraits] = []
    for i, release in enumerate(releases):
        arch = "x86_64" if release.platform == "windows" else arches[i]
        if system[i]:
            name = release.label
            description = None if described[i] < 0.3 else f"{release.label} (official image)"
            size = release.size_gb
        else:
            app, role, style = apps[i], roles[i], styles[i]
            if style == 0:
                name = f"{app}-{role}-{_day(created[i] // 86400)[:7]}"  # web-frontend-2024-05
            elif style == 1:
                stamp = _day(created[i] // 86400).replace("-", "")
                name = f"{app}-{envs[i]}-{stamp}"  # api-prod-20240512
            elif style == 2:
                name = f"{release.slug}-{app}-golden"  # ubuntu2204-web-golden
            else:
                name = f"{app}-{role}-v{versions[i]}"  # cache-proxy-v3
            description = None if described[i] < 0.4 else f"{app} {role} image on {release.label}"
            size = release.size_gb + extra_gb[i]
        out.append(ImageTraits(release, system[i], name, description, arch, size, created[i]))
    return out


# One value at a time: an id, a time stamp, a new name.


def uuid4(rng: random.Random) -> str:
    """A random (version 4) UUID drawn from ``rng``: the id style of several providers."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def utc_text(moment: datetime, fmt: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    """``moment`` in UTC, formatted (default ISO 8601 with ``Z``)."""
    return moment.astimezone(UTC).strftime(fmt)


def renamed(name: str, rng: random.Random) -> str:
    """``name`` with a new ``-vN`` suffix (replacing an earlier one), never the same name."""
    stem, dash_v, number = name.rpartition("-v")
    if not (dash_v and number.isdigit()):
        stem, number = name, ""
    return f"{stem}-v{rng.choice([n for n in range(2, 10) if str(n) != number])}"
