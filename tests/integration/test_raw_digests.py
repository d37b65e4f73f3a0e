"""Images listed exactly as stored are known by their raw records' digests, and staged
without being normalized, only while the code that checked them is the code that runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory import staging
from inventory.config import Settings, SyncSettings
from inventory.providers import PROVIDERS, Assembled
from inventory.records import ImageRecord

from .helpers import Emulator, fetch_all, row_versions
from .test_sync import sync


class Normalizer:
    """The QingCloud normalizer under a chosen code version, counting the images it is
    called on, and optionally normalizing otherwise (``rename``: a suffix on each name,
    but on those ``keep`` spares)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.called: list[str] = []
        self.rename = ""
        self.keep: Callable[[dict[str, Any]], bool] = lambda _raw: False  # not renamed
        provider = PROVIDERS["qingcloud"]
        assert isinstance(provider, Assembled)
        real = provider.normalizer

        def normalize(raw: dict[str, Any]) -> ImageRecord:
            self.called.append(raw["image_id"])
            record = real(raw)
            if not self.rename or self.keep(raw):
                return record
            return replace(record, name=f"{record.name}{self.rename}")

        monkeypatch.setitem(PROVIDERS._loaded, "qingcloud", replace(provider, normalizer=normalize))
        self.version("v1")

    def version(self, name: str) -> None:
        self.monkeypatch.setattr(staging, "normalized_by", lambda _provider: name)

    def take(self) -> list[str]:
        called, self.called = self.called, []
        return called


def _stamp(engine: Engine) -> str:
    return str(fetch_all(engine, "SELECT normalized_by FROM sources")[0][0])


def test_other_normalizing_code_checks_every_image_once_and_writes_only_what_differs(
    engine: Engine, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator.reset(images=120, page_size=40)
    code = Normalizer(monkeypatch)
    assert sync(engine, emu).inserted == 120 and len(code.take()) == 120
    assert _stamp(engine) == "v1"
    assert sync(engine, emu).unchanged == 120 and code.take() == []  # known by digest

    # New code that normalizes the same: every image is checked, nothing is written.
    code.version("v2")
    before = row_versions(engine)
    assert sync(engine, emu).unchanged == 120 and len(code.take()) == 120
    assert row_versions(engine) == before and _stamp(engine) == "v2"
    assert sync(engine, emu).unchanged == 120 and code.take() == []

    # New code that normalizes otherwise: every image is checked and rewritten, once.
    code.version("v3")
    code.rename = " (v3)"
    assert sync(engine, emu).changed == 120 and len(code.take()) == 120
    names = fetch_all(engine, "SELECT DISTINCT right(name, 4) AS tail FROM images")
    assert [r.tail for r in names] == ["(v3)"]
    assert sync(engine, emu).unchanged == 120 and code.take() == []


def test_an_incomplete_listing_under_new_code_keeps_every_image_checked_by_it(
    engine: Engine, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New code whose first listing breaks off records nothing: its next (complete) run
    checks every image again, the ones it did not list included."""
    emu = emulator.reset(images=120, page_size=40)
    code = Normalizer(monkeypatch)
    sync(engine, emu)
    code.version("v2")
    emu.remove_after_page(page=1, count=1)  # the total changes: not complete
    cut = sync(engine, emu)
    assert not cut.listing_complete and _stamp(engine) == "v1"
    code.take()
    assert sync(engine, emu).listing_complete and len(code.take()) == 119
    assert _stamp(engine) == "v2"


def test_an_image_missing_when_the_code_changed_is_checked_when_it_returns(
    engine: Engine, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Absent from the listing that checked the others under new code, an image is not
    known by its digest (which older code checked) until it has been listed again."""
    emu = emulator.reset(images=60, page_size=30)
    code = Normalizer(monkeypatch)
    twice = Settings(path=None, sync=SyncSettings(confirm_gone_runs=2))
    sync(engine, emu, settings=twice)
    code.take()
    away = sorted(emu.visible_ids())[7]
    emu.catalogue.remove(away)
    code.version("v2")
    assert sync(engine, emu, settings=twice).missing == 1 and away not in code.take()
    emu.catalogue.restore(away)
    back = sync(engine, emu, settings=twice)
    assert (back.unchanged, back.missing, back.reappeared) == (60, 0, 0)
    assert code.take() == [away]  # normalized, the others known
    assert sync(engine, emu, settings=twice).unchanged == 60 and code.take() == []


def test_a_field_outside_the_fingerprint_writes_nothing_until_other_code_checks_it(
    engine: Engine, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raw field that no stored field reads changes (on every listing, say): the image
    is stored the same, and nothing is written; it is normalized on each run (its digest
    is of the record listed before), until other code checks it and records the digest of
    what it checked."""
    emu = emulator.reset(images=40, page_size=40)
    code = Normalizer(monkeypatch)
    sync(engine, emu)
    image = sorted(emu.visible_ids())[3]
    code.take()
    before = row_versions(engine)
    for tick in range(1, 4):
        emu.edit(image, sync_counter=tick)
        assert sync(engine, emu).unchanged == 40 and code.take() == [image]
        assert row_versions(engine) == before

    code.version("v2")
    assert sync(engine, emu).unchanged == 40 and len(code.take()) == 40
    written = {r for r in row_versions(engine)["images"] if r not in before["images"]}
    assert [r[0] for r in written] == [
        fetch_all(engine, "SELECT id FROM images WHERE provider_image_id = :i", i=image)[0].id
    ]
    assert sync(engine, emu).unchanged == 40 and code.take() == []


def test_a_digest_older_code_checked_is_not_trusted_after_the_image_was_missing(
    engine: Engine, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing when new code checked the others, an image comes back listed otherwise but
    normalized the same; its record then returns to the one older code checked, which the
    new code normalizes otherwise: it is normalized again, not known by that digest."""
    emu = emulator.reset(images=30, page_size=30)
    code = Normalizer(monkeypatch)
    twice = Settings(path=None, sync=SyncSettings(confirm_gone_runs=2))
    image = sorted(emu.visible_ids())[5]
    emu.edit(image, sync_counter=0)
    sync(engine, emu, settings=twice)
    emu.catalogue.remove(image)
    code.version("v2")  # names the images otherwise, but those with sync_counter 1
    code.rename = " (v2)"
    code.keep = lambda raw: raw.get("sync_counter") == 1
    assert sync(engine, emu, settings=twice).changed == 29
    emu.catalogue.restore(image, sync_counter=1)
    assert sync(engine, emu, settings=twice).unchanged == 30
    emu.edit(image, sync_counter=0)  # the record v1 stored the image from
    again = sync(engine, emu, settings=twice)
    assert again.changed == 1 and code.take()[-1] == image
    name = fetch_all(engine, "SELECT name FROM images WHERE provider_image_id = :i", i=image)
    assert name[0].name.endswith(" (v2)")


def test_what_a_run_reports_of_an_image_it_reports_on_every_run(
    engine: Engine, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown status and a value stored as null are found by normalizing: those images
    get no digest, so each run normalizes and reports them again; the others are known."""
    emu = emulator.reset(images=30, page_size=30)
    code = Normalizer(monkeypatch)
    odd, huge = sorted(emu.visible_ids())[2:4]
    emu.edit(odd, status="quarantined")
    emu.edit(huge, size=1e12)
    for _ in range(3):
        result = sync(engine, emu)
        assert result.unknown_statuses == {"quarantined": 1}
        assert "size 1000000000000" in (result.warning or "")
    code.take()
    assert sync(engine, emu).unchanged == 30 and sorted(code.take()) == sorted([odd, huge])
