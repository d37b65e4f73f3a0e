"""AWS Signature Version 4, as Kingsoft Cloud (KSyun) OpenAPI uses it, in an httpx.Auth.

KSyun signs its query-protocol APIs with unmodified SigV4: algorithm ``AWS4-HMAC-SHA256``,
key prefix ``AWS4``, terminator ``aws4_request``, ``X-Amz-*`` header names. For KEC the
region is not in the host name (``kec.api.ksyun.com``); it travels only in the credential
scope ``YYYYMMDD/<region>/kec/aws4_request``, so signing with the wrong region is how a
request reaches the wrong region's catalogue (or is refused).

The pieces are separate functions because the emulator verifies requests with the very same
code, and the unit tests check each intermediate (canonical request hash, string to sign)
against AWS's published test-suite vectors, not only the final signature.

What goes into the signature here, and why:

- the query is re-written to exactly the canonical query before sending, so what a server
  re-derives from the URL is byte-for-byte what was signed (httpx's own encoding of ``+``,
  ``*`` or spaces differs from RFC 3986 in corner cases);
- signed headers are ``host`` and ``x-amz-date`` (KSyun's documented recommendation), plus
  ``x-amz-security-token`` when temporary credentials are used;
- the body is hashed (``requires_request_body``), so a form POST is signed as well as a GET.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import httpx

from inventory.secrets import Secret

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "kec"
TERMINATOR = "aws4_request"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
#: hex(sha256(b"")): the payload hash of every GET.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def encode(value: str) -> str:
    """RFC 3986 percent-encoding: only ``A-Z a-z 0-9 - _ . ~`` stay bare, hex upper-case."""
    return quote(value, safe="-_.~")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Encoded ``name=value`` pairs sorted by name then value, ``X-Amz-Signature`` left out."""
    pairs = sorted((encode(k), encode(v)) for k, v in params if k != "X-Amz-Signature")
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_uri(path: str) -> str:
    """The path, each segment encoded once (non-S3 rule); an empty path is ``/``."""
    return quote(unquote(path), safe="/-_.~") or "/"


def _trim(value: str) -> str:
    # SigV4 trims the value and collapses inner runs of whitespace to one space.
    return " ".join(value.split())


def canonical_headers(headers: Mapping[str, str], signed: Sequence[str]) -> str:
    """``name:value\\n`` for each signed header (lower-case names, sorted by the caller)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return "".join(f"{name}:{_trim(lowered[name])}\n" for name in signed)


def canonical_request(
    method: str,
    path: str,
    params: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    signed = sorted(h.lower() for h in signed_headers)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(params),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        )
    )


def credential_scope(date: str, region: str, service: str = SERVICE) -> str:
    return f"{date}/{region}/{service}/{TERMINATOR}"


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    digest = hashlib.sha256(request.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """kDate -> kRegion -> kService -> kSigning, each an HMAC-SHA256 of the next part."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@dataclass(frozen=True, slots=True)
class Signed:
    """Every intermediate of one signature (for tests and for the emulator's messages)."""

    canonical_request: str
    string_to_sign: str
    scope: str
    signature: str

    @property
    def canonical_request_hash(self) -> str:
        return hashlib.sha256(self.canonical_request.encode()).hexdigest()


def sign(
    *,
    method: str,
    path: str,
    params: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
    secret: str,
    amz_date: str,
    region: str,
    service: str = SERVICE,
) -> Signed:
    """Sign one request; ``amz_date`` is ``YYYYMMDDTHHMMSSZ``."""
    request = canonical_request(method, path, params, headers, signed_headers, payload_hash)
    scope = credential_scope(amz_date[:8], region, service)
    to_sign = string_to_sign(amz_date, scope, request)
    key = signing_key(secret, amz_date[:8], region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return Signed(request, to_sign, scope, signature)


def amz_date(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


class KsyunAuth(httpx.Auth):
    """Signs each request with SigV4 in the ``Authorization`` header, as KSyun's SDKs do.

    Secrets are held as :class:`~inventory.secrets.Secret`, so a repr of this object, of the
    client or of a traceback frame never shows them. ``clock`` is for tests.
    """

    requires_request_body = True

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: Secret,
        region: str,
        *,
        service: str = SERVICE,
        security_token: Secret | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.access_key_id = access_key_id
        self._secret = secret_access_key
        self.region = region
        self.service = service
        self._token = security_token
        self._clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return (
            f"KsyunAuth(access_key_id={self.access_key_id!r}, region={self.region!r}, "
            "secret_access_key=***)"
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        params = request.url.params.multi_items()
        query = canonical_query(params)
        request.url = request.url.copy_with(query=query.encode("ascii") if query else None)
        stamp = amz_date(self._clock())
        request.headers["X-Amz-Date"] = stamp
        signed_headers = ["host", "x-amz-date"]
        if self._token is not None:
            request.headers["X-Amz-Security-Token"] = self._token.reveal()
            signed_headers.append("x-amz-security-token")
        signed = sign(
            method=request.method,
            path=request.url.path,
            params=params,
            headers=request.headers,
            signed_headers=signed_headers,
            payload_hash=hashlib.sha256(request.content).hexdigest(),
            secret=self._secret.reveal(),
            amz_date=stamp,
            region=self.region,
            service=self.service,
        )
        request.headers["Authorization"] = (
            f"{ALGORITHM} Credential={self.access_key_id}/{signed.scope}, "
            f"SignedHeaders={';'.join(sorted(signed_headers))}, Signature={signed.signature}"
        )
        yield request
