"""What the Huawei emulators share: the API gateway in front of the API, and the IAM token
endpoint (:mod:`.emulator_iam`) served on the same port, as one IAM backs every service."""

from __future__ import annotations

import uuid
from typing import Any

from inventory.emulation import Catalogue, EmulatorApp, Request, Response
from inventory.providers.huawei_common.emulator_iam import IamService


class GatewayApp(EmulatorApp):
    """A Huawei API behind its API gateway: the gateway's error envelope and throttling."""

    answers = {
        "throttle": (
            429,
            "APIGW.0308",
            "The throttling threshold has been reached: policy user over ratelimit,limit:200,"
            "time:1 second",
        ),
        # The gateway's answer when it cannot reach the service; error_200 sends it with 200.
        "error": (502, "APIGW.0202", "Backend unavailable"),
    }

    def __init__(self, catalogue: Catalogue, *, iam: IamService | None = None, **engine: Any):
        super().__init__(catalogue, **engine)
        self.iam = iam or IamService()

    def route(self, request: Request) -> Response | None:
        return self.iam.handle(request) if self.iam.handles(request) else None

    def state(self) -> dict[str, Any]:
        return {**super().state(), **self.iam.state()}

    def request_id(self) -> str:
        return uuid.uuid4().hex

    def envelope(self, status: int, code: Any, message: str) -> Response:
        rid = self.request_id()
        body = {"error_code": code, "error_msg": message, "request_id": rid}
        return Response.json(status, body, **{"X-Request-Id": rid})
