"""The common image schema every provider normalizes into. Pure: no I/O.

An :class:`ImageRecord` is one image as one listing saw it. Its :attr:`fingerprint` hashes
the *durable* fields only, so a field that moves on its own between two listings of an
unchanged image (a QingCloud ``status_time`` or ``transition_status``, a request id) never
makes the image look changed; the store writes a row only when the fingerprint differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson


class ImageStatus(StrEnum):
    """The normalized status vocabulary shared by all providers (docs/normalization.md)."""

    PENDING = "pending"
    AVAILABLE = "available"
    DEPRECATED = "deprecated"
    SUSPENDED = "suspended"
    DELETED = "deleted"
    CEASED = "ceased"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @classmethod
    def mapped(cls, table: Mapping[str, ImageStatus], raw_status: str) -> ImageStatus:
        """What a provider's vocabulary ``table`` (in whatever case it documents) maps
        ``raw_status`` to; an unknown value is UNKNOWN (the caller keeps the raw one)."""
        for spelling in (raw_status, raw_status.lower(), raw_status.upper()):
            if spelling in table:
                return table[spelling]
        return cls.UNKNOWN


#: Not a provider status: the history state of an image that left a complete listing.
GONE = "gone"

#: Statuses worth flagging to a person: the image should no longer be launched from.
FLAGGED_STATUSES = frozenset(
    {
        ImageStatus.DEPRECATED,
        ImageStatus.SUSPENDED,
        ImageStatus.DELETED,
        ImageStatus.CEASED,
        ImageStatus.FAILED,
    }
)

#: The fields that make up the fingerprint, in a fixed order. ``raw`` is deliberately not
#: one of them: it carries volatile values; it is stored whenever a durable field changes.
DURABLE_FIELDS: tuple[str, ...] = (
    "name",
    "description",
    "status",
    "raw_status",
    "os_family",
    "os_name",
    "platform",
    "architecture",
    "word_size",
    "size_gb",
    "min_disk_gb",
    "visibility",
    "owner",
    "image_type",
    "provider_created_at",
    "tags",
)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image, normalized. ``provider_image_id`` and ``status`` are always set.

    ``size_gb`` is the image's own size and ``min_disk_gb`` the smallest system disk it
    boots from, both in GB of 2**30 bytes (providers that give bytes are converted), each
    null where the provider does not say; ``word_size`` (32 or 64) is the OS's word size,
    which some providers give instead of, or beside, the ``architecture``."""

    provider_image_id: str
    status: ImageStatus
    raw_status: str | None
    name: str | None = None
    description: str | None = None
    os_family: str | None = None
    os_name: str | None = None
    platform: str | None = None
    architecture: str | None = None
    word_size: int | None = None
    size_gb: Decimal | None = None
    min_disk_gb: Decimal | None = None
    visibility: str | None = None
    owner: str | None = None
    image_type: str | None = None
    provider_created_at: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.provider_image_id:
            raise ValueError("provider_image_id must not be empty")
        if self.provider_created_at is not None and self.provider_created_at.tzinfo is None:
            raise ValueError("provider_created_at must be timezone-aware")

    @property
    def fingerprint(self) -> str:
        """Hex SHA-256 over the durable fields, stable across processes and versions:
        exactly :func:`fingerprint` of them, with the canonical forms written out for the
        four fields that need one instead of tried on every field (it runs per image)."""
        created = self.provider_created_at
        canonical = {name: getattr(self, name) for name in _PLAIN_FIELDS}
        canonical["status"] = self.status.value
        canonical["size_gb"] = _decimal(self.size_gb)
        canonical["min_disk_gb"] = _decimal(self.min_disk_gb)
        canonical["provider_created_at"] = (
            created.astimezone(UTC).isoformat() if created is not None else None
        )
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


#: The durable fields whose value is hashed as it is (text, an int, the tags, or null).
_TYPED_FIELDS = frozenset({"status", "size_gb", "min_disk_gb", "provider_created_at"})
_PLAIN_FIELDS = tuple(f for f in DURABLE_FIELDS if f not in _TYPED_FIELDS)


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        # normalize() so 10, 10.0 and 10.00 hash alike; format 'f' avoids 1E+1.
        return format(value.normalize(), "f")
    if isinstance(value, StrEnum):
        return value.value
    return value


def fingerprint(values: Mapping[str, Any], fields: Sequence[str] = DURABLE_FIELDS) -> str:
    """Hash a mapping of durable field values canonically (sorted keys, UTC times).

    ``fields`` is :data:`DURABLE_FIELDS` but for a migration, which recomputes stored
    fingerprints with the fields as they were at its own revision."""
    canonical = {key: _canonical(values[key]) for key in fields}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
