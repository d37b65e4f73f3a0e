"""Readers for raw provider fields, shared by every normalizer.

Required fields are read strictly: a missing or mistyped one raises
:class:`~inventory.errors.MalformedResponse` naming the field and the image. Optional fields
are read leniently: missing, null, empty or of the wrong type all become ``None`` (the raw
payload is stored alongside, so nothing is lost). Times come out timezone-aware in UTC; a
time written without a zone is taken as UTC, which is what every provider here means.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from inventory.errors import MalformedResponse


def required_str(raw: dict[str, Any], key: str, what: str = "image") -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        ident = raw.get("image_id") or raw.get("ImageId") or raw.get("id") or "?"
        raise MalformedResponse(
            f"{what} {ident!s}: required field {key!r} is missing or not a non-empty string "
            f"(got {type(value).__name__})"
        )
    return value


def optional_str(raw: dict[str, Any], key: str, *, lower: bool = False) -> str | None:
    """The stripped string (a number as text), None when absent or empty; ``lower`` for
    vocabularies whose case varies by provider."""
    value = raw.get(key)
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
    return number if number.is_finite() and number >= 0 else None


def parse_time(value: object) -> datetime | None:
    """ISO 8601 (``Z``, offset or no zone = UTC) to an aware UTC datetime, else None."""
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
