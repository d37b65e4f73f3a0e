"""What a provider may send and PostgreSQL may not store, made storable one value at a time."""

from __future__ import annotations

import json

import pytest

from inventory.storable import MAX_DEPTH, TOO_DEEP, Storable, _cap_depth, loads


def _depth(value: object) -> int:
    depth = 0
    while isinstance(value, list | dict):
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
        depth += 1
    return depth


@pytest.mark.parametrize("number", [2**63, 2**64, -(2**63) - 1, 10**30, -(10**40)])
def test_integers_past_64_bits_keep_their_value(number: int) -> None:
    body = f'{{"Id": "a", "Size": {number}, "Ok": 12}}'
    assert loads(body) == loads(body.encode()) == {"Id": "a", "Size": number, "Ok": 12}
    assert type(loads(body)["Size"]) is int


def test_nesting_deeper_than_the_parser_follows_is_cut_not_fatal() -> None:
    body = '{"images": [{"id": "a", "deep": ' + "[" * 5000 + "]" * 5000 + '}, {"id": "b"}]}'
    page = loads(body)
    assert [image["id"] for image in page["images"]] == ["a", "b"]  # the page still reads
    assert TOO_DEEP in json.dumps(page)
    assert _depth(page) <= MAX_DEPTH + 1


def test_brackets_and_quotes_inside_strings_are_not_nesting() -> None:
    deep = "[" * (MAX_DEPTH + 5) + '"]]]"' + "]" * (MAX_DEPTH + 5)
    body = '{"s": "[[[{\\"x\\": 1}", "deep": ' + deep + ', "after": "\\\\"}'
    page = json.loads(_cap_depth(body))
    assert page["s"] == '[[[{"x": 1}' and page["after"] == "\\"
    assert TOO_DEEP in json.dumps(page["deep"]) and _depth(page["deep"]) == MAX_DEPTH - 1


def test_raw_is_cleaned_and_every_change_counted() -> None:
    checks = Storable("src")
    # As loads reads a body: the standard parser marks NaN (orjson refuses it).
    raw = {"id": "img-1", "n\x00ame": "a\x00b", "odd": "x\ud800", **loads('{"size": NaN}')}
    cleaned, blob = checks.raw(raw, page=3)
    assert cleaned == {"id": "img-1", "n\ufffdame": "a\ufffdb", "odd": "x\ufffd", "size": None}
    assert json.loads(blob) == cleaned and "\\u0000" not in blob
    assert checks.counts == {"characters": 3, "numbers": 1, "deep": 0}
    assert checks.nulled == ["page 3, image 'img-1': size not a finite number"]
    clean = {"id": "img-2", "name": "fine", "n": [1, 2.5, None, {"k": "é"}]}
    kept, text = checks.raw(clean, page=3)
    assert kept is clean and json.loads(text) == clean
    assert checks.counts == {"characters": 3, "numbers": 1, "deep": 0}  # nothing more


@pytest.mark.parametrize("body", ['{"a": NaN}', '{"a": [Infinity]}', '{"a": {"b": -1e400}}'])
def test_non_finite_numbers_from_any_body_are_counted_and_nulled(body: str) -> None:
    checks = Storable("src")
    cleaned, blob = checks.raw(loads(body), page=1)
    assert "a" in cleaned and checks.counts["numbers"] == 1 and "NaN" not in blob
