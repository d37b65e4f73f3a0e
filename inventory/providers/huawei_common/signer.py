"""Huawei Cloud AK/SK signature ``SDK-HMAC-SHA256``, as an httpx.Auth.

The algorithm (docs/providers/huawei-iec.md; checked against the three published
known-answer vectors in tests/unit/test_huawei_signature.py):

1. canonical request = method, canonical URI, canonical query, canonical headers, signed
   header names and the hex SHA-256 of the body, joined by newlines. The canonical URI
   encodes each path segment and always ends in ``/`` even though the request itself is
   sent without it (a Huawei quirk that trips most hand-written signers);
2. string to sign = ``SDK-HMAC-SHA256``, the ``X-Sdk-Date`` value and the hex SHA-256 of
   the canonical request; there is no credential scope;
3. signature = hex HMAC-SHA256 keyed with the secret key itself: no key derivation.

Which headers are signed: the official SDK signs every header it sends. httpx adds transport
headers (Accept-Encoding, Connection, User-Agent) that a proxy may rewrite, so this signer
signs a fixed, meaningful set instead: ``content-type``, ``host``, ``x-sdk-date`` and, when
present, ``x-domain-id``, ``x-project-id`` and ``x-security-token``. The gateway verifies
over the ``SignedHeaders`` list the request carries, so any such subset is valid.

:func:`signature` and :func:`canonical_request` are shared with the emulator, which verifies
requests with them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from inventory.secrets import Secret

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: Headers signed when the request carries them (lower case), besides host and x-sdk-date.
OPTIONAL_SIGNED = ("content-type", "x-domain-id", "x-project-id", "x-security-token")


def encode(value: str) -> str:
    """Percent-encode with only RFC 3986 unreserved characters bare; space is ``%20``."""
    return quote(value, safe="-_.~")


def canonical_uri(path: str) -> str:
    """Each (decoded) path segment encoded, and always a trailing ``/``."""
    encoded = "/".join(encode(segment) for segment in path.split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Parameters sorted by name, then value (repeated names), encoded, ``k=v&...``."""
    return "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(params))


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """``(canonical header block, signed header list)`` for the headers given."""
    items = sorted((name.lower(), value.strip()) for name, value in headers.items())
    block = "".join(f"{name}:{value}\n" for name, value in items)
    return block, ";".join(name for name, _ in items)


def canonical_request(
    method: str,
    path: str,
    params: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body_sha256: str,
) -> tuple[str, str]:
    """``(canonical request, signed header list)``; ``headers`` are exactly those signed."""
    block, signed = canonical_headers(headers)
    text = "\n".join(
        [method.upper(), canonical_uri(path), canonical_query(params), block, signed, body_sha256]
    )
    return text, signed


def string_to_sign(sdk_date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(secret: str, to_sign: str) -> str:
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def authorization(access_key: str, signed_headers: str, sig: str) -> str:
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature={sig}"


def parse_authorization(value: str) -> dict[str, str] | None:
    """``{"Access", "SignedHeaders", "Signature"}`` from an Authorization header, or None."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        return None
    parts: dict[str, str] = {}
    for piece in rest.split(","):
        name, eq, val = piece.strip().partition("=")
        if eq:
            parts[name] = val
    if not {"Access", "SignedHeaders", "Signature"} <= parts.keys():
        return None
    return parts


def sdk_date(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(DATE_FORMAT)


class SdkHmacAuth(httpx.Auth):
    """Signs each request with ``SDK-HMAC-SHA256``.

    ``extra_headers`` are added and signed (IEC: ``X-Domain-Id``, the account id; a
    project-scoped service: ``X-Project-Id``). The secret is a
    :class:`~inventory.secrets.Secret`, revealed only while computing the HMAC.
    """

    requires_request_body = True  # the payload hash covers the body

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: Secret,
        *,
        extra_headers: Mapping[str, str] | None = None,
        security_token: Secret | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.access_key_id = access_key_id
        self._secret = secret_access_key
        self._security_token = security_token
        self.extra_headers = dict(extra_headers or {})
        self._clock = clock

    def __repr__(self) -> str:
        return f"SdkHmacAuth(access_key_id={self.access_key_id!r}, secret_access_key=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for name, value in self.extra_headers.items():
            request.headers[name] = value
        if self._security_token is not None:
            request.headers["X-Security-Token"] = self._security_token.reveal()
        # The SDK sends a JSON content type even on GET; it is signed, so it must be present.
        request.headers.setdefault("Content-Type", "application/json")
        request.headers[DATE_HEADER] = sdk_date(self._clock())
        # The wire query is the canonical one, byte for byte: httpx would write a space as
        # '+', which a gateway reading the query literally takes for a plus sign.
        params = request.url.params.multi_items()
        request.url = request.url.copy_with(query=canonical_query(params).encode() or None)
        signed = {
            name: request.headers[name]
            for name in ("host", DATE_HEADER.lower(), *OPTIONAL_SIGNED)
            if name in request.headers
        }
        canonical, signed_names = canonical_request(
            request.method,
            request.url.path,
            params,
            signed,
            body_hash(request.content),
        )
        sig = signature(
            self._secret.reveal(), string_to_sign(signed[DATE_HEADER.lower()], canonical)
        )
        request.headers["Authorization"] = authorization(self.access_key_id, signed_names, sig)
        yield request
