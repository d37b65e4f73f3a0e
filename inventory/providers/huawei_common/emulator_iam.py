"""Huawei IAM (Keystone v3) token endpoint shared by the Huawei emulators.

``POST /v3/auth/tokens`` with the password method, scoped to a project (by id, or by its
region's name), to the domain, or unscoped; Keystone's answers and errors. Several emulators
may share one :class:`IamService`, as Huawei services share one IAM. Its default identity is
in docs/providers/huawei-iec.md and huawei-ims-v1.md ("Emulator").
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from inventory.emulation import Refusal, Request, Response
from inventory.emulation.traits import utc_text

TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 - a URL path
PROJECTS_PATH = "/v3/auth/projects"
#: The project every Huawei account has for OBS billing: no region.
MOS_PROJECT = ("MOS", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")
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
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # as Huawei IAM writes it: 2024-05-06T07:08:09.000000Z


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a token was issued for."""

    user: str
    domain_id: str
    project_id: str | None
    project_name: str | None
    expires_at: datetime


def keystone_error(status: int, message: str) -> Response:
    """Keystone's error body; the title is the status's reason phrase ("Unauthorized")."""
    error = {"code": status, "title": HTTPStatus(status).phrase, "message": message}
    return Response.json(status, {"error": error})


def _dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


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
        self.refuse_all_tokens = False  # the "second 401" case: even a fresh token fails
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
        fields = f"domain={self.domain_name!r}, user={self.username!r}, issued={self.issued}"
        return f"IamService({fields})"

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

    def check(self, token: str | None) -> TokenInfo | None:
        """The token's info if it is live, else None (an API emulator's token check)."""
        if not token or self.refuse_all_tokens:
            return None
        with self._lock:
            info = self._tokens.get(token)
            if info is not None and datetime.now(UTC) >= info.expires_at:
                del self._tokens[token]
                return None
            return info

    def handles(self, request: Request) -> bool:
        return request.path.rstrip("/") == TOKEN_PATH

    def projects_answer(self, request: Request, regions: Iterable[str]) -> Response:
        """``GET /v3/auth/projects`` (KeystoneListAuthProjects): the projects the token's
        user may use, one per region of ``regions`` (known to this IAM) and ``MOS``."""
        if request.method != "GET":
            return keystone_error(405, "use GET to list the projects")
        if self.check(request.headers.get("x-auth-token")) is None:
            return keystone_error(401, "The request you have made requires authentication.")
        listed = [(name, self.projects[name]) for name in sorted(regions) if name in self.projects]
        projects = [
            {
                "id": project_id,
                "name": name,
                "enabled": True,
                "domain_id": self.domain_id,
                "parent_id": self.domain_id,
                "is_domain": False,
                "description": "",
                "links": {"self": f"{PROJECTS_PATH}/{project_id}"},
            }
            for name, project_id in [*listed, MOS_PROJECT]
        ]
        links = {"self": PROJECTS_PATH, "previous": None, "next": None}
        return Response.json(200, {"projects": projects, "links": links})

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return keystone_error(405, "use POST to issue a token")
        try:
            return self._issue(request)
        except Refusal as refusal:
            return refusal.response

    def _issue(self, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"")
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        identity = _dig(body, "auth", "identity")
        if not isinstance(identity, dict):
            raise Refusal(keystone_error(400, "Expecting to find auth.identity in request body."))
        if "password" not in (identity.get("methods") or []):
            raise Refusal(keystone_error(400, "Only the password method is supported here."))
        user = _dig(identity, "password", "user")
        if not isinstance(user, dict) or not isinstance(user.get("password"), str):
            raise Refusal(keystone_error(400, "Expecting to find user.password in body."))
        domain_name, domain_id = _dig(user, "domain", "name"), _dig(user, "domain", "id")
        known_domain = domain_name == self.domain_name or domain_id == self.domain_id
        password_ok = hmac.compare_digest(user["password"].encode(), self._password.encode())
        if user.get("name") != self.username or not known_domain or not password_ok:
            raise Refusal(keystone_error(401, "The username or password is wrong."))
        domain_body = {"id": self.domain_id, "name": self.domain_name}
        scope = self._scope(_dig(body, "auth", "scope"), domain_body)
        project_id, project_name = _dig(scope, "project", "id"), _dig(scope, "project", "name")
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.token_ttl_s)
        token = "MII" + secrets.token_urlsafe(48)
        info = TokenInfo(self.username, self.domain_id, project_id, project_name, expires)
        with self._lock:
            self._tokens[token] = info
            self.issued += 1
            self._history.append(token)
        user_body = {"id": DEFAULT_USER_ID, "name": self.username, "domain": domain_body}
        payload: dict[str, Any] = {"expires_at": utc_text(expires, _TIME_FORMAT)}
        payload.update(issued_at=utc_text(now, _TIME_FORMAT), methods=["password"], user=user_body)
        payload.update(roles=[{"id": "0", "name": "te_admin"}], catalog=[], **scope)
        return Response.json(201, {"token": payload}, **{"X-Subject-Token": token})

    def _scope(self, scope: Any, domain_body: dict[str, str]) -> dict[str, Any]:
        """The token body's ``project`` or ``domain`` for the request's scope ({} if none)."""
        if scope is None:
            return {}
        project, domain = _dig(scope, "project"), _dig(scope, "domain")
        if isinstance(project, dict):
            for name, project_id in self.projects.items():
                if project.get("id") == project_id or project.get("name") == name:
                    return {"project": {"id": project_id, "name": name, "domain": domain_body}}
            raise Refusal(keystone_error(401, "The project in the scope was not found."))
        if isinstance(domain, dict):
            if domain.get("name") == self.domain_name or domain.get("id") == self.domain_id:
                return {"domain": domain_body}
            raise Refusal(keystone_error(401, "The domain in the scope was not found."))
        raise Refusal(keystone_error(400, "The scope is not understood."))
