"""QingCloud API signature version 1, as an httpx.Auth.

The signature covers the verb, the path and every query parameter but ``signature``:
parameters sorted by name (byte order), names and values percent-encoded with only the
RFC 3986 unreserved characters left bare, joined as ``name=value`` with ``&``; then
``Base64(HMAC-SHA256(secret, "VERB\\npath\\ncanonical"))``. The request URL carries exactly
the canonical query plus ``&signature=<encoded signature>``, so what the server re-derives
from the URL is byte-for-byte what was signed.

:func:`sign` is shared with the emulator, which verifies requests with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Generator, Iterable
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from inventory.secrets import Secret

SIGNATURE_METHOD = "HmacSHA256"
SIGNATURE_VERSION = "1"
API_VERSION = "1"


def encode(value: str) -> str:
    """Percent-encode like the official SDK: only ``A-Z a-z 0-9 - _ . ~`` stay bare."""
    return quote(value, safe="-_.~")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """The sorted, encoded ``name=value&...`` string; ``signature`` itself is left out."""
    pairs = sorted((encode(k), encode(v)) for k, v in params if k != "signature")
    return "&".join(f"{k}={v}" for k, v in pairs)


def sign(params: Iterable[tuple[str, str]], secret: str, verb: str, path: str) -> tuple[str, str]:
    """Return ``(canonical_query, base64_signature)`` for the given request parts."""
    query = canonical_query(params)
    string_to_sign = f"{verb.upper()}\n{path}\n{query}"
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    return query, base64.b64encode(digest).decode()


def timestamp(now: datetime | None = None) -> str:
    """QingCloud's ``time_stamp`` format: ISO 8601 UTC to the second, ``Z`` suffix."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class QingCloudAuth(httpx.Auth):
    """Adds the common parameters and the v1 signature to each request's query string.

    The secret is held as a :class:`~inventory.secrets.Secret`, so a repr of this object,
    of the client or of a traceback frame never shows it.
    """

    def __init__(self, access_key_id: str, secret_access_key: Secret) -> None:
        self.access_key_id = access_key_id
        self._secret = secret_access_key

    def __repr__(self) -> str:
        return f"QingCloudAuth(access_key_id={self.access_key_id!r}, secret_access_key=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        params = [(k, v) for k, v in request.url.params.multi_items() if k != "signature"]
        present = {k for k, _ in params}
        for key, value in (
            ("access_key_id", self.access_key_id),
            ("signature_method", SIGNATURE_METHOD),
            ("signature_version", SIGNATURE_VERSION),
            ("version", API_VERSION),
            ("time_stamp", timestamp()),
        ):
            if key not in present:
                params.append((key, value))
        query, signature = sign(params, self._secret.reveal(), request.method, request.url.path)
        full = f"{query}&signature={encode(signature)}"
        request.url = request.url.copy_with(query=full.encode("ascii"))
        yield request
