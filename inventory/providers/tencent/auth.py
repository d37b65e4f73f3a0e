"""Tencent Cloud API 3.0 signature (TC3-HMAC-SHA256), as an httpx.Auth.

The chain, in the order the server re-derives it:

1. the canonical request: method, ``/``, the query (empty for POST), one
   ``name:value\\n`` line per signed header (names and values lower-cased, values trimmed,
   sorted by name), the signed header names joined by ``;``, and the hex SHA-256 of the
   exact body bytes. The header block ends with its own newline and the join adds another,
   so a blank line sits before the signed-header names;
2. the credential scope ``<UTC date of X-TC-Timestamp>/<service>/tc3_request`` — the date
   is the *UTC* date; using local time breaks signing around midnight;
3. the string to sign: algorithm, timestamp, scope and the hex SHA-256 of step 1;
4. a signing key chained from ``"TC3" + SecretKey`` through the date, the service and
   ``tc3_request`` (binary HMAC-SHA256 at each step);
5. the hex HMAC-SHA256 of step 3 under that key, sent in ``Authorization``.

Because the body is hashed, :class:`TencentAuth` sets ``requires_request_body`` and signs
the bytes httpx is about to send; the ``Content-Type`` it signs is the one on the request,
byte for byte. :func:`sign` and :func:`parse_authorization` are shared with the emulator,
which verifies requests with them.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from inventory.secrets import Secret

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "cvm"
ACTION = "DescribeImages"
#: The call listing the regions CVM offers (it takes no ``X-TC-Region``).
REGIONS_ACTION = "DescribeRegions"
API_VERSION = "2017-03-12"
CONTENT_TYPE = "application/json"
#: The current documentation signs the action header as well as the SDK's minimum
#: (``content-type;host``); the server accepts both. Signing more cannot hurt.
DEFAULT_SIGNED_HEADERS: tuple[str, ...] = ("content-type", "host", "x-tc-action")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    """The credential-scope date: the UTC calendar day of a Unix timestamp."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def signing_key(secret_key: str, date: str, service: str = SERVICE) -> bytes:
    """kSigning = HMAC(HMAC(HMAC("TC3" + key, date), service), "tc3_request")."""
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_service = _hmac(k_date, service)
    return _hmac(k_service, "tc3_request")


def canonical_request(
    method: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
    query: str = "",
) -> str:
    """The canonical request over ``signed_headers`` (lower-case names) of ``headers``.

    ``headers`` maps lower-case names to the values as sent. A signed header that is
    missing raises KeyError: the caller decides what that means.
    """
    names = sorted(name.lower() for name in signed_headers)
    block = "".join(f"{name}:{headers[name].strip().lower()}\n" for name in names)
    return "\n".join(
        [method.upper(), "/", query, block, ";".join(names), sha256_hex(body)],
    )


@dataclass(frozen=True, slots=True)
class Signature:
    """Every intermediate of one signing, so tests can check each published value."""

    canonical_request: str
    hashed_canonical_request: str
    credential_scope: str
    string_to_sign: str
    signature: str
    signed_headers: str

    def authorization(self, secret_id: str) -> str:
        return (
            f"{ALGORITHM} Credential={secret_id}/{self.credential_scope}, "
            f"SignedHeaders={self.signed_headers}, Signature={self.signature}"
        )


def sign(
    *,
    secret_key: str,
    method: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
    timestamp: int,
    service: str = SERVICE,
    query: str = "",
) -> Signature:
    """Sign one request. ``headers`` maps lower-case header names to values as sent."""
    names = sorted(name.lower() for name in signed_headers)
    canonical = canonical_request(method, headers, names, body, query)
    hashed = sha256_hex(canonical.encode("utf-8"))
    date = utc_date(timestamp)
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{hashed}"
    digest = hmac.new(
        signing_key(secret_key, date, service), to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    return Signature(canonical, hashed, scope, to_sign, digest, ";".join(names))


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of an ``Authorization: TC3-HMAC-SHA256 ...`` header."""

    secret_id: str
    date: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    """Split an Authorization header; None when it is not a well-formed TC3 header."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            return None
        parts[key] = val
    credential = parts.get("Credential", "").split("/")
    if len(credential) != 4 or not all(credential) or "SignedHeaders" not in parts:
        return None
    signature = parts.get("Signature", "")
    if not signature:
        return None
    return Authorization(
        secret_id=credential[0],
        date=credential[1],
        service=credential[2],
        terminator=credential[3],
        signed_headers=tuple(h for h in parts["SignedHeaders"].split(";") if h),
        signature=signature,
    )


class TencentAuth(httpx.Auth):
    """Adds the X-TC-* headers and the TC3 ``Authorization`` header to each request.

    The secret key is held as a :class:`~inventory.secrets.Secret`, so a repr of this
    object, of the client or of a traceback frame never shows it. ``clock`` returns Unix
    seconds (tests pin it).
    """

    requires_request_body = True

    def __init__(
        self,
        secret_id: str,
        secret_key: Secret,
        *,
        region: str | None,
        action: str = ACTION,
        version: str = API_VERSION,
        service: str = SERVICE,
        signed_headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret_id = secret_id
        self._secret = secret_key
        self.region = region
        self.action = action
        self.version = version
        self.service = service
        self.signed_headers = tuple(signed_headers)
        self._clock = clock

    def __repr__(self) -> str:
        return f"TencentAuth(secret_id={self.secret_id!r}, secret_key=***, region={self.region!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = int(self._clock())
        if "content-type" not in request.headers:
            request.headers["Content-Type"] = CONTENT_TYPE
        # A request may name another action of the same API version (DescribeRegions);
        # one without a region (None) is for an action that takes none.
        request.headers.setdefault("X-TC-Action", self.action)
        request.headers["X-TC-Version"] = self.version
        if self.region is not None:
            request.headers["X-TC-Region"] = self.region
        request.headers["X-TC-Timestamp"] = str(timestamp)
        # httpx sets Host from the URL (with the port when it is not the default one);
        # that exact value goes on the wire, so that is what gets signed.
        headers = {name.lower(): value for name, value in request.headers.items()}
        signed = sign(
            secret_key=self._secret.reveal(),
            method=request.method,
            headers=headers,
            signed_headers=self.signed_headers,
            body=request.content,
            timestamp=timestamp,
            service=self.service,
            query=request.url.query.decode("ascii"),
        )
        request.headers["Authorization"] = signed.authorization(self.secret_id)
        yield request
