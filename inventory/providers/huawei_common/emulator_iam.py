"""Huawei IAM (Keystone v3) token endpoint shared by the Huawei emulators.

``POST /v3/auth/tokens`` with the password method, as Huawei IAM and Keystone answer it:

- 201 Created, the token in the ``X-Subject-Token`` header, ``{"token": {"expires_at",
  "issued_at", "methods", "user", "project" | "domain", "roles", "catalog"}}`` in the body
  (``?nocatalog=true`` leaves the catalogue empty, which is all this emulator has anyway);
- a wrong user, password or scope: 401 ``{"error": {"code": 401, "title": "Unauthorized",
  "message": ...}}``; a body that is not a password auth request: 400 in the same shape.

Scopes: ``{"project": {"id"}}``, ``{"project": {"name"}}`` (a region id, e.g.
``cn-north-4``) or ``{"domain": {"name"|"id"}}``.

For tests, :class:`IamService` counts the tokens it issued (:attr:`IamService.issued`),
issues them with a configurable lifetime (:attr:`IamService.token_ttl_s`), can revoke every
token at once (:meth:`IamService.revoke_all`, so the next API call gets a 401) and can be
told to refuse every token, even fresh ones (:attr:`IamService.refuse_all_tokens`, the
"second 401" case). One service may back several emulators, as one IAM backs every Huawei
service.

Default identity (documented for ``inventory emulate huawei-iec`` / ``huawei-ims-v1``):
account (domain) ``emulator-account`` with id :data:`DEFAULT_DOMAIN_ID`, IAM user
``emulator-user`` with password ``emulator-password``, projects named after the regions in
:data:`DEFAULT_PROJECTS`.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from inventory.emulation import Request, Response

TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 - a URL path
DEFAULT_DOMAIN_NAME = "emulator-account"
DEFAULT_DOMAIN_ID = "d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f"
DEFAULT_USERNAME = "emulator-user"
DEFAULT_USER_ID = "a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c"
DEFAULT_PASSWORD = "emulator-password"  # noqa: S105 - a documented test password
DEFAULT_PROJECTS: dict[str, str] = {
    "cn-north-4": "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
    "cn-east-3": "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f",
    "ap-southeast-1": "2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a",
}
DEFAULT_TTL_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a token was issued for."""

    user: str
    domain_id: str
    project_id: str | None
    project_name: str | None
    expires_at: datetime


def keystone_error(status: int, title: str, message: str) -> Response:
    return Response.json(status, {"error": {"code": status, "title": title, "message": message}})


def _fmt(moment: datetime) -> str:
    # Huawei IAM writes microseconds and Z: 2024-05-06T07:08:09.000000Z.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


class IamService:
    """The token store and the ``/v3/auth/tokens`` handler; thread-safe."""

    def __init__(
        self,
        *,
        domain_name: str = DEFAULT_DOMAIN_NAME,
        domain_id: str = DEFAULT_DOMAIN_ID,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        projects: dict[str, str] | None = None,
        token_ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        self.domain_name = domain_name
        self.domain_id = domain_id
        self.username = username
        self._password = password
        self.projects = dict(projects or DEFAULT_PROJECTS)
        self.token_ttl_s = token_ttl_s
        self.refuse_all_tokens = False
        self.issued = 0
        self._history: list[str] = []
        self._tokens: dict[str, TokenInfo] = {}
        self._lock = threading.Lock()

    def accept(self, username: str | None, password: str | None) -> None:
        """Accept another user name or password than the documented ones (None keeps it)."""
        self.username = username or self.username
        self._password = password or self._password

    @property
    def password(self) -> str:
        """The password it accepts (a documented test password, not a user's)."""
        return self._password

    def __repr__(self) -> str:
        return (
            f"IamService(domain={self.domain_name!r}, user={self.username!r}, issued={self.issued})"
        )

    # -- test controls ---------------------------------------------------------------------

    def revoke_all(self) -> int:
        """Invalidate every token issued so far (the next API call with one gets a 401)."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    def issued_tokens(self) -> list[str]:
        """Every token issued so far, revoked ones included (tests search logs for them)."""
        with self._lock:
            return list(self._history)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"tokens_issued": self.issued, "tokens_live": len(self._tokens)}

    # -- used by the API emulators ---------------------------------------------------------

    def check(self, token: str | None) -> TokenInfo | None:
        """The token's info if it is live, else None."""
        if not token or self.refuse_all_tokens:
            return None
        with self._lock:
            info = self._tokens.get(token)
            if info is None:
                return None
            if datetime.now(UTC) >= info.expires_at:
                del self._tokens[token]
                return None
            return info

    def handles(self, request: Request) -> bool:
        return request.path.rstrip("/") == TOKEN_PATH

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return keystone_error(405, "Method Not Allowed", "use POST to issue a token")
        try:
            return self._issue(request)
        except _Refused as refused:
            return refused.response

    # -- internals -------------------------------------------------------------------------

    def _issue(self, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"")
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        auth = body.get("auth") if isinstance(body, dict) else None
        identity = auth.get("identity") if isinstance(auth, dict) else None
        if not isinstance(auth, dict) or not isinstance(identity, dict):
            raise _Refused(
                keystone_error(
                    400, "Bad Request", "Expecting to find auth.identity in request body."
                )
            )
        if "password" not in (identity.get("methods") or []):
            raise _Refused(
                keystone_error(400, "Bad Request", "Only the password method is supported here.")
            )
        user = _dig(identity, "password", "user")
        if not isinstance(user, dict) or not isinstance(user.get("password"), str):
            raise _Refused(
                keystone_error(400, "Bad Request", "Expecting to find user.password in body.")
            )
        raw_domain = user.get("domain")
        domain: dict[str, Any] = raw_domain if isinstance(raw_domain, dict) else {}
        known_domain = domain.get("name") == self.domain_name or domain.get("id") == self.domain_id
        password_ok = hmac.compare_digest(user["password"].encode(), self._password.encode())
        if user.get("name") != self.username or not known_domain or not password_ok:
            raise _Refused(
                keystone_error(401, "Unauthorized", "The username or password is wrong.")
            )
        project_id, project_name, scope_body = self._scope(auth.get("scope"))
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.token_ttl_s)
        token = "MII" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = TokenInfo(
                self.username, self.domain_id, project_id, project_name, expires
            )
            self.issued += 1
            self._history.append(token)
        payload = {
            "token": {
                "expires_at": _fmt(expires),
                "issued_at": _fmt(now),
                "methods": ["password"],
                "user": {
                    "id": DEFAULT_USER_ID,
                    "name": self.username,
                    "domain": {"id": self.domain_id, "name": self.domain_name},
                },
                "roles": [{"id": "0", "name": "te_admin"}],
                "catalog": [],
                **scope_body,
            }
        }
        return Response.json(201, payload, **{"X-Subject-Token": token})

    def _scope(self, scope: object) -> tuple[str | None, str | None, dict[str, Any]]:
        domain_ref = {"id": self.domain_id, "name": self.domain_name}
        if scope is None:
            return None, None, {}
        if isinstance(scope, dict) and isinstance(scope.get("project"), dict):
            project = scope["project"]
            for name, pid in self.projects.items():
                if project.get("id") == pid or project.get("name") == name:
                    body = {"project": {"id": pid, "name": name, "domain": domain_ref}}
                    return pid, name, body
            raise _Refused(
                keystone_error(401, "Unauthorized", "The project in the scope was not found.")
            )
        if isinstance(scope, dict) and isinstance(scope.get("domain"), dict):
            domain = scope["domain"]
            if domain.get("name") == self.domain_name or domain.get("id") == self.domain_id:
                return None, None, {"domain": domain_ref}
            raise _Refused(
                keystone_error(401, "Unauthorized", "The domain in the scope was not found.")
            )
        raise _Refused(keystone_error(400, "Bad Request", "The scope is not understood."))


def _dig(data: dict[str, Any], *keys: str) -> Any:
    value: Any = data
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
