"""A large answer is spooled to a file and its listing parsed item by item, exactly as a
whole parse would read it; what is wrong with a body is said with where it is."""

from __future__ import annotations

import io
import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.errors import MalformedResponse
from inventory.jsonstream import ItemStream, read_head, spool
from inventory.storable import loads

BODY = orjson.dumps(
    {"RequestId": "req-1", "ImagesSet": [{"ImageId": f"i-{n}"} for n in range(500)]}
)


def chunks(body: bytes, size: int = 1000) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def test_spool_keeps_a_small_body_in_memory_and_files_a_large_one() -> None:
    assert spool(chunks(BODY), limit=len(BODY)) == BODY
    file = spool(chunks(BODY), limit=len(BODY) - 1)
    assert not isinstance(file, bytes)
    with file:
        assert file.read() == BODY


def test_head_finds_the_array_and_what_comes_before_it() -> None:
    head = read_head(io.BytesIO(BODY), "ImagesSet")
    assert head.found and head.scalars == {"RequestId": "req-1"}
    assert head.keys == ["RequestId", "ImagesSet"]
    for body in (b"[1, 2]", b'{"ImageSet": []}', b'{"ImagesSet": {"a": 1}}', b"<html>", b""):
        assert not read_head(io.BytesIO(body), "ImagesSet").found, body
    error = read_head(io.BytesIO(b'{"Error": {"Code": "X"}, "ImagesSet": []}'), "ImagesSet")
    assert error.found and "Error" in error.keys  # the caller reads such a body whole


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(st.dictionaries(st.text(), json_values, max_size=6), max_size=30))
def test_streamed_items_equal_the_whole_parse(items: list[dict[str, object]]) -> None:
    body = json.dumps({"ImagesSet": items, "RequestId": "r"}).encode()
    stream = ItemStream(io.BytesIO(body), "ImagesSet")
    got = list(stream)
    assert got == loads(body)["ImagesSet"]
    assert json.dumps(got) == json.dumps(items)  # the same types: 1 stays 1, 1.0 stays 1.0
    assert stream.count == len(items)


def test_what_only_the_standard_parser_reads_is_read_whole_after_all() -> None:
    """yajl refuses NaN and integers past 64 bits; the items after the first it refused
    come from a whole parse of the file, so nothing is lost and nothing repeats."""
    items = [f'{{"ImageId": "i-{n}", "Size": {n}}}' for n in range(300)]
    items[150] = '{"ImageId": "i-150", "Size": NaN, "Big": 123456789012345678901234567890}'
    body = ('{"RequestId": "r", "ImagesSet": [' + ", ".join(items) + "]}").encode()
    stream = ItemStream(io.BytesIO(body), "ImagesSet")
    got = list(stream)
    assert [i["ImageId"] for i in got] == [f"i-{n}" for n in range(300)]
    assert got[150]["Big"] == 123456789012345678901234567890 and stream.count == 300


def test_an_item_stream_reads_once_and_closes_its_file() -> None:
    file = io.BytesIO(BODY)
    stream = ItemStream(file, "ImagesSet")
    assert sum(1 for _ in stream) == 500 and file.closed
    with pytest.raises(RuntimeError, match="only once"):
        list(stream)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (BODY[: len(BODY) // 2], "is not valid JSON at its end, byte"),
        (BODY.replace(b'{"ImageId":"i-7"}', b'{"ImageId":"i-7",]'), "is not valid JSON in bytes"),
        (BODY.replace(b'{"ImageId":"i-7"}', b'"i-7"'), "ImagesSet item 8 is not an object"),
    ],
)
def test_a_broken_body_names_the_source_the_page_and_where(body: bytes, says: str) -> None:
    stream = ItemStream(io.BytesIO(body), "ImagesSet", lambda err: err.located("ks-a", 1))
    with pytest.raises(MalformedResponse, match=says) as caught:
        list(stream)
    assert str(caught.value).startswith("source 'ks-a', page 1: the response")
    assert "\n" not in str(caught.value)
