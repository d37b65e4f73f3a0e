"""Making what a provider lists storable, so that one bad image never fails its source.

JSON allows what PostgreSQL refuses or Python cannot hold: NUL characters and lone
surrogates (``\\u0000``, ``\\ud800``) in strings, ``NaN`` and numbers too big for a float
(``1e400``), nesting thousands of levels deep. A provider sending one such image would
otherwise fail the run on every sync, and stored images could never be compared again.

- :func:`loads` decodes a response body; nesting deeper than Python's parser can follow is
  cut at :data:`MAX_DEPTH` levels and replaced by :data:`TOO_DEEP`.
- :class:`Storable` checks each image's raw object before it is normalized (a fast C path
  for the clean majority), replaces NUL and lone surrogates by U+FFFD and non-finite
  numbers by null, and counts each; it then checks the normalized record: an id that is
  too long or had to be changed is unusable, so the image is left out and the listing
  counts as incomplete (nothing is marked gone); a size beyond any real disk is stored as
  null. What it changed becomes the run's warnings, naming source, page, image and field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson

from inventory.providers.fields import image_id_of, shortened
from inventory.records import ImageRecord

#: Deeper levels of a raw object are replaced by :data:`TOO_DEEP`.
MAX_DEPTH = 64
TOO_DEEP = f"<nested deeper than {MAX_DEPTH} levels: not kept>"
#: The longest provider image id kept (real ones are 12 to 64 characters).
MAX_ID_LENGTH = 255
#: The largest size believed, in GB (a petabyte): beyond it the size is stored as null.
MAX_SIZE_GB = Decimal(1_000_000)
REPLACEMENT = "\ufffd"
#: How many problems a run's warning lists before "and N more".
SHOWN = 5
#: 19 digits in a row: maybe an integer orjson cannot hold (see :func:`loads`). A body is
#: looked through as bytes with every digit made "0" and every other byte " ", for a run
#: of 19 "0": 15 times faster than the regular expression on a 45 kB page.
_LONG_TEXT = re.compile(r"\d{19}")
_DIGITS_ONLY = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_RUN = b"0" * 19


def loads(body: str | bytes) -> Any:
    """``json.loads``, except that nesting too deep for the parser is cut (see module).

    orjson parses first (several times faster, and it holds the interpreter lock for less
    time while other pages are in flight); what it refuses (``NaN``, ``1e400``, a lone
    surrogate escape, nesting past its limit, invalid JSON) goes to the standard parser,
    whose answer, or error, is as before. So does a body with a run of 19 digits: orjson
    reads an integer past 64 bits as a float, which would lose its value."""
    if isinstance(body, bytes):
        long_number = _LONG_RUN in body.translate(_DIGITS_ONLY)
    else:
        long_number = _LONG_TEXT.search(body) is not None
    if not long_number:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body, parse_float=_float, parse_constant=NonFinite)
    except RecursionError:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        return json.loads(_cap_depth(text), parse_float=_float, parse_constant=NonFinite)


class NonFinite(float):
    """``NaN``, ``Infinity`` or a number too large for a float, as the standard parser read
    it: marked, so that :meth:`Storable.raw` (whose fast path, orjson, refuses the mark)
    counts it and stores it as null."""


def _float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(value)


def _cap_depth(text: str) -> str:
    """``text`` with every array or object below :data:`MAX_DEPTH` levels replaced by the
    JSON string :data:`TOO_DEEP`; strings are copied as they are."""
    out: list[str] = []
    depth = skip = 0  # skip: levels open inside a part being dropped
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                if not skip:
                    out.append(json.dumps(TOO_DEEP))
                skip += 1
                continue
        elif char in "]}":
            depth -= 1
            if skip:
                skip -= 1
                continue
        elif char == '"':
            in_string = True
        if not skip:
            out.append(char)
    return "".join(out)


def _clean(value: Any, depth: int, counts: dict[str, int], path: str, nulled: list[str]) -> Any:
    if isinstance(value, str):
        if "\x00" in value or _has_surrogate(value):
            fixed = "".join(
                REPLACEMENT if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in value
            )
            counts["characters"] += sum(1 for a, b in zip(value, fixed, strict=True) if a != b)
            return fixed
        return value
    if isinstance(value, float) and not math.isfinite(value):
        counts["numbers"] += 1
        nulled.append(path)
        return None
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        counts["deep"] += 1
        return TOO_DEEP
    if isinstance(value, dict):
        return {
            _clean(k, depth, counts, path, nulled): _clean(
                v, depth + 1, counts, f"{path}.{k}" if path else str(k), nulled
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_clean(v, depth + 1, counts, f"{path}[{i}]", nulled) for i, v in enumerate(value)]
    return value


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _ident(record_or_raw: Any) -> str:
    return repr(shortened(str(record_or_raw)))


class Storable:
    """One run's checks (see the module docstring); ``source`` names it in warnings."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.counts = {"characters": 0, "numbers": 0, "deep": 0}
        self.nulled: list[str] = []  # "page 3, image 'x': field ..." (stored as null)
        self.skipped: list[str] = []  # "page 3: image ... left out: why"

    def raw(self, raw: dict[str, Any], page: int) -> tuple[dict[str, Any], str]:
        """The raw object as it can be stored, and its JSON text (for staging). ``raw`` is
        as :func:`loads` (or the stream parser) read it: a non-finite number is marked.

        orjson writes the clean majority; it refuses what needs cleaning (a lone surrogate,
        a :class:`NonFinite` number, an integer past 64 bits, nesting past 254 levels), and
        NUL comes out escaped, so those go the careful way."""
        try:
            blob = orjson.dumps(raw).decode()
        except TypeError:  # orjson.JSONEncodeError is one
            blob = ""
        if blob and "\\u0000" not in blob and TOO_DEEP not in blob:
            return raw, blob
        if TOO_DEEP in blob:
            self.counts["deep"] += 1
        nulled: list[str] = []
        cleaned = _clean(raw, 0, self.counts, "", nulled)
        if nulled:
            fields = ", ".join(nulled[:SHOWN])
            self.nulled.append(
                f"page {page}, image {_ident(image_id_of(raw))}: {fields} not a finite number"
            )
        return cleaned, json.dumps(cleaned, ensure_ascii=False, allow_nan=False)

    def record(self, record: ImageRecord, page: int, notes: list[str]) -> ImageRecord | None:
        """The record to stage, None when its id is unusable; ``notes`` are the fields the
        normalizer stored as null (out of range), for the warning."""
        image_id = record.provider_image_id
        if len(image_id) > MAX_ID_LENGTH or REPLACEMENT in image_id:
            why = (
                f"its id is {len(image_id):,} characters long (at most {MAX_ID_LENGTH})"
                if len(image_id) > MAX_ID_LENGTH
                else "its id holds characters that cannot be stored (NUL or a lone surrogate)"
            )
            self.skip(page, image_id, why)
            return None
        if record.size_gb is not None and record.size_gb > MAX_SIZE_GB:
            notes = [*notes, f"size {record.size_gb} GB is beyond {MAX_SIZE_GB:,} GB"]
            record = replace(record, size_gb=None)
        if record.min_disk_gb is not None and record.min_disk_gb > MAX_SIZE_GB:
            notes = [*notes, f"minimum disk {record.min_disk_gb} GB is beyond {MAX_SIZE_GB:,} GB"]
            record = replace(record, min_disk_gb=None)
        self.nulled += [f"page {page}, image {_ident(image_id)}: {note}" for note in notes]
        return record

    def absorb(self, other: Storable) -> None:
        """Add what ``other`` (the checks of a batch of the same run) found."""
        for kind, n in other.counts.items():
            self.counts[kind] += n
        self.nulled += other.nulled
        self.skipped += other.skipped

    def skip(self, page: int, image: object, why: str) -> None:
        self.skipped.append(f"page {page}: image {_ident(image)} left out: {why}")

    def incomplete_reason(self) -> str | None:
        if not self.skipped:
            return None
        return (
            f"{len(self.skipped)} image(s) could not be stored ({_listed(self.skipped)}), so "
            "the listing is not whole and nothing is marked gone"
        )

    def warnings(self) -> list[str]:
        out = []
        changed = {k: n for k, n in self.counts.items() if n}
        if changed:
            words = {
                "characters": "NUL or lone-surrogate character(s) replaced by U+FFFD",
                "numbers": "NaN or infinite number(s) stored as null",
                "deep": f"part(s) nested deeper than {MAX_DEPTH} levels not kept",
            }
            what = ", ".join(f"{n:,} {words[k]}" for k, n in changed.items())
            out.append(f"the raw records held what PostgreSQL cannot store: {what}")
        if self.nulled:
            out.append(f"values out of range stored as null: {_listed(self.nulled)}")
        if self.skipped:
            out.append(f"images left out: {_listed(self.skipped)}")
        return out


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:SHOWN])
    return shown + (f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
