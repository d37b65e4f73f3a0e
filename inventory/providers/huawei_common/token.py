"""Keystone v3 / Huawei IAM password tokens, as an httpx.Auth with a process-wide cache.

``POST <iam>/v3/auth/tokens`` with the password method answers 201 with the token in the
``X-Subject-Token`` *header* (not the body) and ``token.expires_at`` in the body. A token
lives 24 h on Huawei (deployment-defined, often 1 h, on plain Keystone), and issuing one is
slow and rate-limited, so:

- tokens live in :data:`TOKEN_CACHE`, a module-level cache shared by every collector of the
  process: one token serves every page of a run and every later run of the same identity.
  The cache key is (IAM endpoint, user, domain, scope) and never holds the password. So that
  a changed or wrong password is not hidden behind a token another source obtained, an entry
  also keeps a salted HMAC of the password (the salt is random per process, never stored)
  and a lookup with a different password misses;
- a token is used until shortly before ``expires_at`` (:data:`REFRESH_MARGIN_S`, or a
  quarter of its lifetime when that is shorter), then a new one is issued;
- a 401 from the API (a token revoked after a password or permission change, or expired
  early by clock skew) drops the token, issues a new one and repeats the request once. A
  second 401 raises :class:`~inventory.errors.AuthenticationError` saying so.

The token request is yielded from the auth flow, so it goes through the collector's own
client (same timeouts, same transport). Tokens are held as
:class:`~inventory.secrets.Secret`, which also registers them for log scrubbing; log lines
name the user, domain and scope only.

One leak the Secret registry cannot stop: at DEBUG, httpcore logs every response's headers,
``X-Subject-Token`` included, before this code has read (and registered) the token. The
header filter of :mod:`inventory.logs`, installed by every client that
:func:`~inventory.http.make_client` builds, masks those values.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from inventory.errors import AuthenticationError, MalformedResponse
from inventory.providers.fields import parse_time
from inventory.providers.huawei_common.errors import parse_error, raise_for_response
from inventory.secrets import Secret

log = logging.getLogger(__name__)

TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 - a URL path, not a secret
SUBJECT_TOKEN_HEADER = "X-Subject-Token"  # noqa: S105 - a header name
AUTH_TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 - a header name
#: Refresh this long before expires_at (capped at a quarter of the token's lifetime).
REFRESH_MARGIN_S = 300.0

# Random per process: the password HMAC in the cache is useless outside this process.
_SALT = os.urandom(32)


@dataclass(frozen=True, slots=True)
class TokenScope:
    """What the token is scoped to: ``project_id``, ``project_name`` or ``domain``."""

    kind: str
    value: str

    def body(self, domain_name: str) -> dict[str, Any]:
        if self.kind == "project_id":
            return {"project": {"id": self.value}}
        if self.kind == "project_name":
            # Huawei IAM finds a project by name alone (name = region id); plain Keystone
            # wants the project's domain beside it, which is harmless for Huawei.
            return {"project": {"name": self.value, "domain": {"name": domain_name}}}
        return {"domain": {"name": self.value}}

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


@dataclass(frozen=True, slots=True)
class TokenKey:
    """Whose token it is. Deliberately without the password."""

    iam_endpoint: str
    user: str
    domain: str
    scope: TokenScope

    def __str__(self) -> str:
        return f"user {self.user!r} of domain {self.domain!r}, {self.scope}, at {self.iam_endpoint}"


@dataclass(slots=True)
class _Entry:
    token: Secret
    expires_at: datetime
    refresh_at: datetime
    verifier: bytes


def password_verifier(password: Secret) -> bytes:
    """A salted HMAC of the password: tells two passwords apart, reveals neither."""
    return hmac.new(_SALT, password.reveal().encode(), hashlib.sha256).digest()


class TokenCache:
    """Thread-safe token store; ``clock`` is replaceable so tests can move time."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._entries: dict[TokenKey, _Entry] = {}

    def get(self, key: TokenKey, verifier: bytes) -> Secret | None:
        """The cached token if it is for this password and not about to expire."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not hmac.compare_digest(entry.verifier, verifier):
                return None
            if self.clock() >= entry.refresh_at:
                return None
            return entry.token

    def put(self, key: TokenKey, token: Secret, expires_at: datetime, verifier: bytes) -> None:
        now = self.clock()
        lifetime = max((expires_at - now).total_seconds(), 0.0)
        margin = min(REFRESH_MARGIN_S, lifetime / 4)
        with self._lock:
            self._entries[key] = _Entry(
                token, expires_at, expires_at - timedelta(seconds=margin), verifier
            )

    def invalidate(self, key: TokenKey, token: Secret) -> None:
        """Drop ``token`` if it is still the cached one (another thread may have renewed)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.token == token:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


#: The process-wide cache every Huawei collector uses.
TOKEN_CACHE = TokenCache()


def normalize_iam_endpoint(url: str) -> str:
    """``https://iam.example.com``, ``.../`` and ``.../v3`` all mean the same endpoint."""
    url = url.rstrip("/")
    return url[: -len("/v3")] if url.endswith("/v3") else url


class KeystonePasswordAuth(httpx.Auth):
    """Adds ``X-Auth-Token`` to each request, issuing and caching tokens as needed."""

    requires_response_body = True  # the token request's body carries expires_at

    def __init__(
        self,
        iam_endpoint: str,
        username: str,
        password: Secret,
        domain_name: str,
        scope: TokenScope,
        *,
        cache: TokenCache | None = None,
    ) -> None:
        self.key = TokenKey(normalize_iam_endpoint(iam_endpoint), username, domain_name, scope)
        self._password = password
        self._verifier = password_verifier(password)
        self._cache = cache if cache is not None else TOKEN_CACHE

    def __repr__(self) -> str:
        return f"KeystonePasswordAuth({self.key}, password=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._cache.get(self.key, self._verifier)
        if token is None:
            token = yield from self._issue(request)
        else:
            log.debug("reusing the cached IAM token for %s", self.key)
        request.headers[AUTH_TOKEN_HEADER] = token.reveal()
        response = yield request
        if response.status_code != 401:
            return
        # A token can be revoked before expires_at (password or permission change) or be
        # expired early by clock skew: renew once, and only once.
        log.info(
            "%s %s answered 401 to the IAM token of %s; issuing a new token and retrying once",
            request.method,
            request.url.path,
            self.key,
        )
        self._cache.invalidate(self.key, token)
        token = yield from self._issue(request)
        request.headers[AUTH_TOKEN_HEADER] = token.reveal()
        response = yield request
        if response.status_code == 401:
            code, message = parse_error(response)
            shown = f"{code}: {message}" if code else message or "(empty body)"
            self._cache.invalidate(self.key, token)
            raise AuthenticationError(
                f"{request.method} {request.url.path}: HTTP 401 {shown} — refused a freshly "
                f"issued IAM token too (after one refresh); check that IAM user "
                f"{self.key.user!r} may call this API in {self.key.scope} (options.project_id / "
                "options.project_name / options.domain_name) and that the endpoint belongs "
                "to the same cloud as options.iam_endpoint",
                code=code or "401",
            )

    def _issue(
        self, api_request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, Secret]:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.key.user,
                            "password": self._password.reveal(),
                            "domain": {"name": self.key.domain},
                        }
                    },
                },
                "scope": self.key.scope.body(self.key.domain),
            }
        }
        headers = {"Content-Type": "application/json;charset=utf8"}
        agent = api_request.headers.get("User-Agent")
        if agent:
            headers["User-Agent"] = agent
        token_request = httpx.Request(
            "POST",
            f"{self.key.iam_endpoint}{TOKEN_PATH}",
            # ?nocatalog=true: the service catalogue is large and unused here.
            params={"nocatalog": "true"},
            content=json.dumps(body).encode(),
            headers=headers,
            # Same timeouts as the API call; a bare Request would otherwise have none.
            extensions={k: v for k, v in api_request.extensions.items() if k == "timeout"},
        )
        response = yield token_request
        raise_for_response(
            response,
            what=f"IAM token request for {self.key}",
            auth_hint=(
                "IAM refused the user name or password; check credentials.username, "
                "credentials.password and options.domain_name (the account name) for this "
                "source"
            ),
            hints={
                400: "the token request was refused; check options.domain_name and the "
                "project or domain scope options",
                403: "the IAM user is locked, or may not use the requested scope; check "
                "options.project_id / options.project_name / options.domain_name",
                404: "no IAM token endpoint there; check options.iam_endpoint",
            },
        )
        value = response.headers.get(SUBJECT_TOKEN_HEADER)
        if not value:
            raise MalformedResponse(
                f"IAM token response has no {SUBJECT_TOKEN_HEADER} header (HTTP "
                f"{response.status_code}); check options.iam_endpoint"
            )
        token = Secret(value)  # registered for log scrubbing from here on
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        token_body = payload.get("token") if isinstance(payload, dict) else None
        expires_at = (
            parse_time(token_body.get("expires_at")) if isinstance(token_body, dict) else None
        )
        if expires_at is None:
            raise MalformedResponse(
                "IAM token response: required field 'token.expires_at' is missing or not a time"
            )
        self._cache.put(self.key, token, expires_at, self._verifier)
        log.debug("issued an IAM token for %s, expires %s", self.key, expires_at.isoformat())
        return token
