"""One JSON answer too large to hold: spooled to disk, its listing parsed item by item.

Kingsoft KEC DescribeImages answers the whole listing in one response. Parsed at once, the
body and its objects take about 4 KB per image (1.2 GB at 300,000 images). Instead
:func:`spool` writes a large body to a temporary file as it arrives (so a broken transfer is
retried as a whole, like any page), and :class:`ItemStream` parses the array's items one by
one from that file with ijson's C parser (yajl), so a sync holds one batch of items at a
time whatever the listing's size.

Bodies up to :data:`SPOOL_ABOVE` bytes stay in memory and are parsed at once, as before.
What the stream parser refuses but the standard one reads (``NaN``, an integer past 64
bits) is parsed whole after all, from the file, so a streamed body stores exactly what a
whole parse would; a body that is not JSON at all is refused naming the bytes where parsing
stopped.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import ijson

from inventory.errors import MalformedResponse, ProviderError
from inventory.storable import loads

#: Bodies larger than this go to a temporary file and are parsed as a stream (8 MiB,
#: about 10,000 KSyun images).
SPOOL_ABOVE = 8 * 1024 * 1024
#: Bytes read from the file per step of the parser.
READ_SIZE = 256 * 1024
#: How far into a spooled body the listing's array is looked for before giving up.
HEAD_EVENTS = 2_000


def spool(chunks: Iterable[bytes], limit: int | None = None) -> bytes | IO[bytes]:
    """The body as bytes when it is at most ``limit`` (:data:`SPOOL_ABOVE`) long, else as
    a temporary file (deleted when closed) positioned at its start."""
    limit = SPOOL_ABOVE if limit is None else limit
    held: list[bytes] = []
    size = 0
    chunks = iter(chunks)
    for chunk in chunks:
        held.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    else:
        return b"".join(held)
    file = tempfile.TemporaryFile(prefix="inventory-body-")  # noqa: SIM115 - returned open
    try:
        file.writelines(held)
        held.clear()
        for chunk in chunks:
            file.write(chunk)
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return file


@dataclass
class Head:
    """What comes before the listing's array in a spooled object body."""

    #: The array was found at the top level (its items can be streamed).
    found: bool = False
    #: Top-level string values seen before it (a request id, say).
    scalars: dict[str, str] = field(default_factory=dict)
    #: Top-level keys seen before it.
    keys: list[str] = field(default_factory=list)


def read_head(file: IO[bytes], key: str) -> Head:
    """Look for the top-level ``key`` holding an array, from the file's start, reading at
    most :data:`HEAD_EVENTS` parser events; the file is put back at its start. A body that
    is not an object, or whose ``key`` is not found in time or holds no array, gives
    ``found`` false: the caller parses it whole and says what is wrong with it."""
    head = Head()
    try:
        events = ijson.parse(file)
        first = next(events, None)
        if first is None or first[1] != "start_map":
            return head
        for count, (prefix, event, value) in enumerate(events):
            if count >= HEAD_EVENTS or (prefix == "" and event == "end_map"):
                break
            if prefix == "" and event == "map_key":
                head.keys.append(value)
                continue
            if prefix == key:
                head.found = event == "start_array"
                break
            if "." not in prefix and prefix and event == "string":
                head.scalars[prefix] = value
    except ijson.JSONError:
        pass
    finally:
        file.seek(0)
    return head


class ItemStream:
    """The objects of the top-level array ``key`` of a spooled body, parsed as they are
    read; iterable once. ``count`` is how many were read so far (all of them once the
    iteration has ended). A parse error, or an item that is not an object, raises
    :class:`MalformedResponse` through ``locate`` (which names the source and the page);
    the file is closed when the iteration ends, however it ends."""

    def __init__(
        self,
        file: IO[bytes],
        key: str,
        locate: Callable[[ProviderError], ProviderError] = lambda err: err,
    ) -> None:
        self._file: IO[bytes] | None = file
        self._key, self._locate = key, locate
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        file, self._file = self._file, None
        if file is None:
            raise RuntimeError("the items of a streamed answer can be read only once")
        parsed: list[Any] = ijson.sendable_list()
        parser = ijson.items_coro(parsed, f"{self._key}.item", use_float=True)
        read = 0
        with file:
            try:
                while chunk := file.read(READ_SIZE):
                    at = f"in bytes {read:,} to {read + len(chunk):,}"
                    parser.send(chunk)
                    read += len(chunk)
                    yield from self._checked(parsed)
                at = f"at its end, byte {read:,}"
                parser.close()  # the end of the input: a body cut short is found here
                yield from self._checked(parsed)
            except ijson.JSONError as err:
                # yajl is stricter than the standard parser (NaN, integers past 64 bits):
                # what it refuses is parsed whole, and the items not yet read come from that.
                yield from self._rest(file, f"{at} ({_reason(err)})")

    def _checked(self, parsed: list[Any]) -> Iterator[dict[str, Any]]:
        for item in parsed:
            if not isinstance(item, dict):
                raise self._malformed(f"'s {self._key} item {self.count + 1} is not an object")
            self.count += 1
            yield item
        if isinstance(parsed, ijson.sendable_list):
            parsed.clear()

    def _rest(self, file: IO[bytes], where: str) -> Iterator[dict[str, Any]]:
        file.seek(0)
        try:
            body = loads(file.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._malformed(f"is not valid JSON {where}") from None
        items = body.get(self._key) if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) < self.count:
            raise self._malformed(f"is not valid JSON {where}")
        yield from self._checked(items[self.count :])

    def _malformed(self, problem: str) -> ProviderError:
        space = "" if problem.startswith("'") else " "
        return self._locate(MalformedResponse(f"the response{space}{problem}"))

    def close(self) -> None:
        """Drop the file when the items are not read after all."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _reason(err: Exception) -> str:
    """yajl's message on one line: the reason, and the text where it stopped."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    context = [line for line in lines[1:] if "(right here)" not in line]
    return lines[0] + (f", at {context[0][:60]!r}" if context else "") if lines else repr(err)
