"""Fuzzing each provider's normalizer through the storable checks and staging.

Hypothesis takes real images from each emulator's generator and puts hostile JSON values
into their fields: NUL characters, lone surrogates, NaN and infinities, huge integers,
times out of range, ids of kilobytes, deep nesting. For every image the pipeline the sync
runs (:class:`~inventory.storable.Storable`, the normalizer, the record checks) must
either produce a record or leave the image out with a reason, never raise; and whatever it
produced must come back from PostgreSQL's staging table exactly as the normalizer gave it.

``INVENTORY_FUZZ_EXAMPLES`` sets the examples per provider (default 200; the issue's
acceptance run used 2,000).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from inventory import store
from inventory.errors import ProviderError
from inventory.providers import PROVIDERS
from inventory.providers.fields import noting
from inventory.storable import Storable

EXAMPLES = int(os.environ.get("INVENTORY_FUZZ_EXAMPLES", "200"))
PROVIDER_NAMES = sorted(PROVIDERS)
COLUMNS = [c for c in store.STAGE_COLUMNS if c not in ("seq", "raw")]

_nasty_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\ud800",
            "x\udfff",
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+14:00",
        ]
    ),
    st.text(min_size=300, max_size=400),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e400, -1e400, 1e12, 0.0004, 10**400]),
    _nasty_text,
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_nasty_text, inner, max_size=3),
    max_leaves=8,
)


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


@st.composite
def _images(draw: st.DrawFn, base: list[dict[str, Any]]) -> dict[str, Any]:
    image = dict(draw(st.sampled_from(base)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        key = draw(st.sampled_from(sorted(image)) | _nasty_text)
        image[key] = draw(_values | st.builds(_deep, st.integers(min_value=60, max_value=200)))
    return image


def _stored(engine: Engine, records: list[Any], blobs: list[str]) -> list[Any]:
    with engine.connect() as conn, conn.begin():
        store.create_stage(conn)
        with store.Stager(conn) as stager:  # as a run stages its pages
            stager.write(records, blobs)
        rows = conn.execute(text(f"SELECT * FROM {store.STAGE} ORDER BY seq")).all()
        store.drop_stage(conn)
    return list(rows)


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_no_hostile_value_escapes_and_what_is_stored_is_what_was_normalized(
    engine: Engine, provider: str
) -> None:
    spec = PROVIDERS[provider]
    catalogue = PROVIDERS.emulated(provider).app.catalogue_class.generate(25, 3)
    base = [image for image in map(catalogue.get, catalogue.ids()) if image is not None]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(_images(base), min_size=1, max_size=4))
    def check(page: list[dict[str, Any]]) -> None:
        checks = Storable("fuzz")
        records, blobs, seen = [], [], set()
        for item in page:
            raw, blob = checks.raw(item, 1)
            json.loads(blob)  # the staged raw text is always JSON
            try:
                with noting() as notes:
                    normalized = spec.normalize(raw)
            except (ProviderError, ValueError) as err:  # what the sync leaves out, with a reason
                checks.skip(1, item, str(err))
                continue
            record = checks.record(normalized, 1, notes)
            if record is None or record.provider_image_id in seen:
                continue
            seen.add(record.provider_image_id)
            records.append(record)
            blobs.append(blob)
        rows = _stored(engine, records, blobs)
        for record, blob, row in zip(records, blobs, rows, strict=True):
            for column in COLUMNS:
                if column == "raw_digest":
                    expected = store.raw_digest(blob)
                elif column == "status":
                    expected = record.status.value
                else:
                    expected = getattr(record, column)
                assert getattr(row, column) == expected, (column, expected)

    check()
