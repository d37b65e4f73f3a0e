"""The version of the normalizing code that raw digests are trusted under."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory import staging
from inventory.providers import PROVIDERS


def test_the_normalizer_and_the_modules_it_uses_are_its_files() -> None:
    files = {
        Path(f).relative_to(Path(staging.__file__).parent).as_posix()
        for f in PROVIDERS["huawei-iec"].normalizer_files()
    }
    assert {
        "providers/huawei_iec/normalize.py",
        "providers/huawei_common/registration.py",
        "providers/fields.py",
        "records.py",
    } <= files


def test_a_change_to_any_of_that_code_is_another_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "_versions", {})
    first = {name: staging.normalized_by(name) for name in PROVIDERS}
    assert len(set(first.values())) == len(first)  # one per provider
    assert staging.normalized_by("tencent") == first["tencent"]  # and stable

    real = Path.read_bytes
    for changed in ("registration.py", "storable.py", "staging.py"):

        def read(path: Path, changed: str = changed) -> bytes:
            return real(path) + (b"\n# changed" if path.name == changed else b"")

        monkeypatch.setattr(staging, "_versions", {})
        monkeypatch.setattr(Path, "read_bytes", read)
        assert staging.normalized_by("huawei-iec") != first["huawei-iec"], changed
        if changed == "registration.py":  # not QingCloud's
            assert staging.normalized_by("qingcloud") == first["qingcloud"]
