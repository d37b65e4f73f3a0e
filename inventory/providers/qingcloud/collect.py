"""QingCloud DescribeImages: requests, the ret_code envelope, offset paging.

Errors arrive with HTTP 200 and ``{"ret_code": n, "message": ...}``; ``ret_code`` 0 is
success. Retried (transient): 2500 (quota, also used for request-rate limits), 5000
(internal error), 5100 (server busy), HTTP 5xx and transport errors. Everything else is
terminal and names what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from inventory.errors import (
    AuthenticationError,
    MalformedResponse,
    ProviderTerminalError,
    ProviderTransientError,
    Throttled,
)
from inventory.paging import OffsetPaging, Page, PagingStrategy
from inventory.providers.base import PagedCollector
from inventory.providers.qingcloud.auth import QingCloudAuth
from inventory.source import SourceConfig

DEFAULT_ENDPOINT = "https://api.qingcloud.com/iaas/"
#: The call listing the zones the account may use (``zones = "*"``): it answers
#: ``zone_set`` of ``{zone_id, status}``; only zones in status ``active`` are used
#: (``faulty`` and ``defunct`` ones are not).
DISCOVERY = "DescribeZones"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100
#: Requests in flight: QingCloud publishes no rate limit for DescribeImages, so a modest 4.
DEFAULT_CONCURRENCY = 4
#: Requests per second to one account in one zone. QingCloud publishes no number; 200 is the
#: gateway default the Huawei clouds publish, well above what one source's 4 in flight send
#: at a cloud's latency, and ret_code 2500 (rate or quota) slows it down further.
DEFAULT_RATE_LIMIT_PER_S = 200.0

TRANSIENT_CODES = {2500: "rate or quota limit", 5000: "internal error", 5100: "server busy"}
#: The code QingCloud answers when calls come too fast: the account's rate is lowered.
RATE_CODE = 2500
TERMINAL_HINTS = {
    1100: "a request parameter was refused; check the source's filters and zone",
    1200: (
        "authentication failed; check credentials.access_key_id and "
        "credentials.secret_access_key for this source"
    ),
    1300: "the request time stamp was refused; sync this machine's clock (NTP)",
    1400: "access denied; the key lacks permission to describe images in this zone",
    2100: "a requested image id does not exist; check filters.images",
    2400: "the account balance is insufficient",
}

LIST_FILTERS = ("images", "status", "tags")
STRING_FILTERS = ("processor_type", "os_family", "visibility", "provider", "owner", "search_word")
STATUSES = ("pending", "available", "deprecated", "suspended", "deleted", "ceased")


def validate_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Config ``[sources.filters]`` for QingCloud. Raises ValueError("<field>: <problem>")."""
    out: dict[str, Any] = {}
    for key, value in filters.items():
        if key in LIST_FILTERS:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{key}: must be a list of strings")
            if key == "status":
                bad = [v for v in value if v not in STATUSES]
                if bad:
                    raise ValueError(f"status: {bad[0]!r} is not one of {', '.join(STATUSES)}")
            out[key] = list(value)
        elif key in STRING_FILTERS:
            if not isinstance(value, str) or not value:
                raise ValueError(f"{key}: must be a non-empty string")
            out[key] = value
        else:
            allowed = ", ".join(LIST_FILTERS + STRING_FILTERS)
            raise ValueError(f"{key}: unknown filter (allowed: {allowed})")
    return out


def filter_params(filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Filters as QingCloud query parameters; lists become ``name.1``, ``name.2``, ..."""
    params: list[tuple[str, str]] = []
    for key, value in filters.items():
        if isinstance(value, list):
            params.extend((f"{key}.{i}", v) for i, v in enumerate(value, start=1))
        else:
            params.append((key, str(value)))
    return params


class QingCloudCollector(PagedCollector):
    """Pages through DescribeImages for one source."""

    action = "DescribeImages"
    discovery_action = DISCOVERY
    default_page_size = DEFAULT_PAGE_SIZE
    default_concurrency = DEFAULT_CONCURRENCY
    default_rate_limit_per_s = DEFAULT_RATE_LIMIT_PER_S

    def _prepare(self, source: SourceConfig) -> None:
        self.endpoint = source.endpoint or DEFAULT_ENDPOINT
        zone = ("zone", source.location)
        self._base = [("action", "DescribeImages"), zone, *filter_params(source.filters)]

    def _auth(self, source: SourceConfig) -> httpx.Auth:
        key_id = source.credential("access_key_id").reveal()
        return QingCloudAuth(key_id, source.credential("secret_access_key"))

    def _paging(self) -> PagingStrategy:
        return OffsetPaging(self.page_size)

    def _request(self, paging: dict[str, Any], number: int) -> Page:
        params: list[tuple[str, str | int | float | bool | None]] = [
            *self._base,
            *((k, str(v)) for k, v in paging.items()),
        ]
        return self._parse(self._client.get(self.endpoint, params=params), number)

    def _parse(self, response: httpx.Response, number: int) -> Page:
        body = self._body(response)
        items = self.item_list(body.get("image_set"), "image_set")
        total = self.total_count(body.get("total_count"), "total_count")
        return Page(number=number, items=items, total=total)

    def _discover(self) -> list[str]:
        body = self._body(self._client.get(self.endpoint, params={"action": DISCOVERY}))
        zones = self.item_list(body.get("zone_set"), "zone_set")
        if not all(isinstance(z.get("zone_id"), str) and z["zone_id"] for z in zones):
            raise MalformedResponse("zone_set has an item without a zone_id")
        return [z["zone_id"] for z in zones if z.get("status") == "active"]

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        """The answer's JSON object, raising the error its ``ret_code`` names."""
        self.raise_for_http(response, self.endpoint)
        body = self.json_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("ret_code"), int):
            raise MalformedResponse("response has no integer ret_code")
        code = body["ret_code"]
        if code != 0:
            message = str(body.get("message", ""))[:300]
            if code in TRANSIENT_CODES:
                transient = Throttled if code == RATE_CODE else ProviderTransientError
                raise transient(
                    f"ret_code {code} ({TRANSIENT_CODES[code]}): {message}", code=str(code)
                )
            hint = TERMINAL_HINTS.get(code, "refused by QingCloud")
            error_class = AuthenticationError if code == 1200 else ProviderTerminalError
            raise error_class(f"ret_code {code}: {message} — {hint}", code=str(code))
        return body
