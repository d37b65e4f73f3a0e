"""Secret values that cannot leak by accident.

A :class:`Secret` prints as ``***`` in every repr, str and f-string; the value comes out
only through :meth:`Secret.reveal`, which the signers call at the moment they sign. Every
secret is also registered with :func:`known_secrets`, which the log redaction filter in
:mod:`inventory.http` scrubs from any text before it is written.
"""

from __future__ import annotations

import threading

_registry: set[str] = set()
_lock = threading.Lock()


class Secret:
    """A credential. Compares by value, never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= 4:
            with _lock:
                _registry.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not serialisable")


def known_secrets() -> frozenset[str]:
    """Every secret value created in this process, for scrubbing text."""
    with _lock:
        return frozenset(_registry)


def scrub(text: str) -> str:
    """Replace every known secret value in ``text`` by ``***``."""
    for value in sorted(known_secrets(), key=len, reverse=True):
        if value in text:
            text = text.replace(value, "***")
    return text
