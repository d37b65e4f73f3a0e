"""What the Huawei emulators share: the API gateway in front of the API (its refusals and IAM
token check), the IAM token endpoint (:mod:`.emulator_iam`) served on the same port, as one
IAM backs every service, and how an account's catalogue grows and renames."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from inventory.emulation import Call, Catalogue, EmulatorApp, Request, Response, refusal_table
from inventory.providers.huawei_common.emulator_iam import (
    DEFAULT_PROJECTS,
    PROJECTS_PATH,
    TOKEN_PATH,
    IamService,
)

#: How the gateway's 401 for a credential it does not accept begins.
IAM_REFUSED = "Incorrect IAM authentication information: "
_NO_API = "The API does not exist or has not been published"

Image = dict[str, Any]


class GatewayCatalogue(Catalogue):
    """An account's images in a Huawei service: ``id`` and ``name``, times as :attr:`stamp`
    writes them, and :meth:`listing` by the filters and order the dialect reads."""

    id_key = "id"
    name_field = "name"
    #: The project the default IAM identity scopes to in the emulators' default region.
    default_owner = DEFAULT_PROJECTS["cn-north-4"]
    #: The dialect's generator: ``make(rng, count, owner, public_share, now)``.
    make: ClassVar[Callable[..., list[Image]]]
    #: A time as the service writes it.
    stamp: ClassVar[Callable[..., str]]

    def renamed(self, image: Image, rng: random.Random, now: datetime) -> Image:
        return {**super().renamed(image, rng, now), "updated_at": self.stamp(now)}

    def new_images(
        self, rng: random.Random, count: int, now: datetime, taken: Iterable[str]
    ) -> list[Image]:
        used = set(taken)
        images: list[Image] = []
        while len(images) < count:  # the same seed draws the same ids: skip those taken
            fresh = self.make(rng, count - len(images), self.owner, 0.0, now)
            # Only ones mutations could change again: IMS never lists Windows images.
            images += [image for image in fresh if self.owned(image) and image["id"] not in used]
        return images


class GatewayApp(EmulatorApp):
    """A Huawei API behind its API gateway: the gateway's error envelope, throttling and
    refusals, and its IAM token check."""

    answers = refusal_table("""
throttle 429 APIGW.0308 The throttling threshold has been reached: policy user over ratelimit,limit:200,time:1 second
error    502 APIGW.0202 Backend unavailable
""")  # noqa: E501 - a table; "error" is the answer when the service is unreachable
    #: The gateway's refusals; a dialect adds its service's own.
    refusals = {
        "path": (404, "APIGW.0101", _NO_API),
        "verb": (405, "APIGW.0101", _NO_API),
        "no_token": (401, "APIGW.0301", IAM_REFUSED + "x-auth-token not found"),
        "token": (401, "APIGW.0301", IAM_REFUSED + "decrypt token fail"),
        "scope": (401, "APIGW.0301", IAM_REFUSED + "the token is not scoped to project {}"),
    }
    #: The region served by default, whose project a token must be scoped to (None: any
    #: token of the account); :attr:`locations` are the regions served (their projects).
    region: str | None = None
    #: The header of the request id in the service's own answers.
    id_header = "X-Request-Id"
    catalogue: GatewayCatalogue

    def __init__(self, catalogue: Catalogue, *, iam: IamService | None = None, **engine: Any):
        super().__init__(catalogue, **engine)
        self.iam = iam or IamService()
        if self.region is not None and not self.locations:
            self.locations = frozenset({self.region})

    def route(self, request: Request) -> Response | None:
        if request.path.rstrip("/") == PROJECTS_PATH:  # the regions = "*" listing
            early = self._answer(self.faults.take_all(1))
            if early is not None:
                return early
            self._admit()
            return self.iam.projects_answer(request, self.locations)
        return self.iam.handle(request) if self.iam.handles(request) else None

    def state(self) -> dict[str, Any]:
        return {**super().state(), **self.iam.state()}

    def banner(self) -> str:
        return f"IAM tokens at {TOKEN_PATH} for user {self.iam.username} of {self.iam.domain_name}"

    def request_id(self) -> str:
        return uuid.uuid4().hex

    def envelope(self, status: int, code: Any, message: str) -> Response:
        rid = self.request_id()
        body = {"error_code": code, "error_msg": message, "request_id": rid}
        return Response.json(status, body, **{"X-Request-Id": rid})

    def reply(self, status: int, body: dict[str, Any]) -> Response:
        """The service's own answer, with a fresh request id."""
        return Response.json(status, body, **{self.id_header: self.request_id()})

    def authenticate(self, request: Request, call: Call) -> None:
        """The gateway's IAM token check."""
        token = request.headers.get("x-auth-token")
        self.check(token, "no_token")
        info = self.iam.check(token)
        if info is None:
            raise self.fail("token")
        if self.region is not None:
            served = {self.iam.projects.get(region) for region in self.locations}
            self.check(info.project_id in served, "scope", " or ".join(sorted(self.locations)))

    def listing(self, call: Call) -> Sequence[Image]:
        # The selection is the listing's arguments: (filters, sort key, sort direction).
        return self.catalogue.listing(*call.selection)
