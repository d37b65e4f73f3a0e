"""Readers for raw provider fields, shared by every normalizer.

Required fields are read strictly: a missing or mistyped one raises
:class:`~inventory.errors.MalformedResponse` naming the field and the image. Optional fields
are read leniently: missing, null, empty or of the wrong type all become ``None`` (the raw
payload is stored alongside, so nothing is lost). Times come out timezone-aware in UTC; a
time written without a zone is taken as UTC, which is what every provider here means. A
value no column can hold (a time past year 9999 in UTC, a number that is not finite) is
read as ``None`` and noted, so the run can warn about it naming the field (:func:`noting`).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from inventory.errors import MalformedResponse

_NOTES: ContextVar[list[str] | None] = ContextVar("field_notes", default=None)


class noting:  # lower case: used as a function, ``with noting() as notes``
    """Collect, while one image is normalized, the fields read as None because their value
    could not be stored (each note: ``field value why``). A class rather than a generator
    context manager: it is entered once per image."""

    __slots__ = ("_notes", "_token")

    def __enter__(self) -> list[str]:
        self._notes: list[str] = []
        self._token = _NOTES.set(self._notes)
        return self._notes

    def __exit__(self, *exc: object) -> None:
        _NOTES.reset(self._token)


def shortened(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, with "..." where it was cut (for messages)."""
    return text[:limit] + "..." if len(text) > limit else text


def _note(key: str, value: object, why: str) -> None:
    notes = _NOTES.get()
    if notes is not None:
        notes.append(f"{key} {shortened(repr(value))} {why}")


def image_id_of(raw: dict[str, Any]) -> object:
    """The image's id as the provider names it, for messages ("?" if none)."""
    return raw.get("image_id") or raw.get("ImageId") or raw.get("id") or "?"


def required_str(raw: dict[str, Any], key: str, what: str = "image") -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedResponse(
            f"{what} {image_id_of(raw)!s}: required field {key!r} is missing or not a "
            f"non-empty string (got {type(value).__name__})"
        )
    return value


def optional_str(raw: dict[str, Any], key: str, *, lower: bool = False) -> str | None:
    """The stripped string (a number as text), None when absent or empty; ``lower`` for
    vocabularies whose case varies by provider."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip().lower() if lower else value.strip()
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def optional_decimal(raw: dict[str, Any], key: str) -> Decimal | None:
    value = raw.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite():
        _note(key, value, "is not a finite number, stored as null")
        return None
    return number if number >= 0 else None


#: Bytes in the GB of every size column (GiB: Tencent's unit, and the one OpenStack means).
BYTES_PER_GB = 1 << 30


def optional_gb_from_bytes(raw: dict[str, Any], key: str) -> Decimal | None:
    """A size the provider gives in bytes, in GB of 2**30 bytes, exactly: a whole number
    of bytes has at most 30 decimals in GB, and nothing is rounded (migration 0006
    backfills the same value in SQL)."""
    size = optional_decimal(raw, key)
    if size is None:
        return None
    with localcontext(prec=80):  # exact for any size a column would keep
        return size / BYTES_PER_GB


def optional_word_size(raw: dict[str, Any], key: str) -> int | None:
    """A word size written ``64bit``, ``32bit``, ``64`` or ``32`` (any case, a number as
    well); anything else is None."""
    text = optional_str(raw, key, lower=True)
    if text is None:
        return None
    bits = text.removesuffix("bit").removesuffix("-").strip()
    return int(bits) if bits in ("32", "64") else None


def optional_time(raw: dict[str, Any], key: str) -> datetime | None:
    """:func:`parse_time` of a field; a time out of range is noted and read as None."""
    value = raw.get(key)
    try:
        return _parse_time(value)
    except OverflowError:
        _note(key, value, "is out of range, stored as null")
        return None


def parse_time(value: object) -> datetime | None:
    """ISO 8601 (``Z``, offset or no zone = UTC) to an aware UTC datetime, else None."""
    try:
        return _parse_time(value)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is in year 10000 in UTC
        return None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
