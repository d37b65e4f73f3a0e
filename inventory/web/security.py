"""Who may see the dashboard: loopback by default, credentials on any other address.

The inventory tells anyone who can read it which images an organisation runs and which
of them are out of support, so the dashboard does not serve it to a network unasked: on an
address that is not loopback it refuses to start unless a token or a user and password are
configured (``[web]`` in the config, else ``$INVENTORY_WEB_TOKEN``, or
``$INVENTORY_WEB_USER`` and ``$INVENTORY_WEB_PASSWORD``). Once configured they are asked
for on every address, loopback included, on every page but ``/healthz``.

Without credentials (loopback only), a request must also name a loopback host in its
``Host`` header, or one of ``[web] allowed_hosts``: a page on another site cannot read the
dashboard by pointing a DNS name of its own at 127.0.0.1 (DNS rebinding).

A browser sends them by HTTP basic authentication (its own login prompt); scripts may send
``Authorization: Bearer <token>``. With a token, a browser logs in with any user name and
the token as password. Comparisons take constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from inventory.config import WebSettings
from inventory.errors import ConfigError
from inventory.secrets import Secret

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_ENV = "INVENTORY_WEB_TOKEN"  # noqa: S105 - the variable's name, not a token
USER_ENV, PASSWORD_ENV = "INVENTORY_WEB_USER", "INVENTORY_WEB_PASSWORD"
#: Open without credentials: it says only whether the database answers (for probes).
OPEN_PATHS = frozenset({"/healthz"})


@dataclass(frozen=True)
class Credentials:
    token: Secret | None = None
    user: str | None = None
    password: Secret | None = None

    @property
    def configured(self) -> bool:
        return self.token is not None or self.password is not None

    def accepts(self, authorization: bytes | None) -> bool:
        """Whether an ``Authorization`` header (its raw bytes) carries these credentials.
        Bytes are compared as sent: a browser encodes basic credentials in UTF-8 (the
        challenge asks it to), and so do scripts sending a bearer token."""
        if not authorization:
            return False
        scheme, _, value = authorization.partition(b" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == b"bearer":
            return self.token is not None and _same(value, self.token)
        if scheme != b"basic":
            return False
        try:
            user, colon, password = base64.b64decode(value, validate=True).partition(b":")
        except binascii.Error:
            return False
        if not colon:
            return False
        if self.token is not None and _same(password, self.token):
            return True
        return (
            self.password is not None
            and self.user is not None
            and hmac.compare_digest(user, self.user.encode())
            and _same(password, self.password)
        )


def _same(given: bytes, secret: Secret) -> bool:
    return hmac.compare_digest(given, secret.reveal().encode())


#: Shorter ones are refused: a token is guessed at network speed, so it must be long.
MIN_TOKEN, MIN_PASSWORD = 16, 10


def credentials(web: WebSettings) -> Credentials:
    """The dashboard's credentials: ``[web]`` token, user and password, else the
    environment. A user without a password (or the reverse) is refused."""
    token = web.token.resolve() if web.token is not None else _env_secret(TOKEN_ENV)
    user = web.user if web.user is not None else os.environ.get(USER_ENV) or None
    password = web.password.resolve() if web.password is not None else _env_secret(PASSWORD_ENV)
    if (user is None) != (password is None):
        raise ConfigError(
            f"web: {USER_ENV} and {PASSWORD_ENV} go together; set both, or neither "
            f"(or a token in {TOKEN_ENV})"
        )
    if user is not None and ":" in user:
        raise ConfigError(f"web: {USER_ENV}: a user name cannot contain ':' (basic auth)")
    for secret, name, least in ((token, "token", MIN_TOKEN), (password, "password", MIN_PASSWORD)):
        if secret is not None and len(secret.reveal()) < least:
            raise ConfigError(
                f"web: the {name} has {len(secret.reveal())} characters; give at least "
                f"{least} (for instance `openssl rand -hex 24`)"
            )
    return Credentials(token, user, password)


def _env_secret(name: str) -> Secret | None:
    value = os.environ.get(name)
    return Secret(value) if value else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, treat it as a network address


def check_address(host: str, creds: Credentials, option: str = "--host") -> None:
    """Refuse to serve a non-loopback address without credentials."""
    if is_loopback(host) or creds.configured:
        return
    raise ConfigError(
        f"web: {option} {host} is not a loopback address, and the dashboard shows the whole "
        f"inventory to whoever reaches it; set {TOKEN_ENV} (or {USER_ENV} and "
        f"{PASSWORD_ENV}), or [web] token in the config, or serve 127.0.0.1 behind a proxy "
        "that authenticates"
    )


def _host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port (``[::1]:8080`` -> ``::1``); ""
    for one that is not a host with an optional port (``[::1]evil.example``)."""
    if header.startswith("["):
        host, _, rest = header[1:].partition("]")
        return host if rest == "" or (rest[:1] == ":" and rest[1:].isdecimal()) else ""
    name, colon, port = header.rpartition(":") if header.count(":") == 1 else ("", "", header)
    if colon:
        return name if port.isdecimal() else ""
    return header


class RequireLocalHost:
    """ASGI middleware for the dashboard without credentials: 403 unless the ``Host``
    header names a loopback host or one of ``allowed`` (every path but /healthz)."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str] = ()) -> None:
        self.app, self.allowed = app, {a.lower() for a in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        name = _host_name(given).lower()
        if is_loopback(name) or name in self.allowed:
            await self.app(scope, receive, send)
            return
        body = (
            f"host {given!r} is not served: without credentials the dashboard answers only "
            "requests to a loopback address; add the name to [web] allowed_hosts (a proxy "
            "that keeps the Host header), or configure credentials\n"
        ).encode()
        await _plain(send, 403, body)


class RequireCredentials:
    """ASGI middleware: 401 with a basic-auth challenge unless the request carries the
    credentials (every path but :data:`OPEN_PATHS`)."""

    def __init__(self, app: ASGIApp, creds: Credentials) -> None:
        self.app, self.creds = app, creds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.creds.accepts(dict(scope["headers"]).get(b"authorization")):
            await self.app(scope, receive, send)
            return
        body = b"authentication required: log in with the dashboard's user and password\n"
        challenge = (b"www-authenticate", b'Basic realm="inventory", charset="UTF-8"')
        await _plain(send, 401, body, challenge)


async def _plain(send: Send, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
