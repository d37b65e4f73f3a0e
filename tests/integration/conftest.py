"""Fixtures for integration tests: the QingCloud emulator on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator()
    yield emu
    emu.stop()
