"""Huawei Cloud IEC ListImages (``GET /v1/images``): requests, errors, offset paging.

- Paging: ``offset`` (a row offset, not a page number) and ``limit`` (default and maximum
  500) against ``total``, with :class:`~inventory.paging.OffsetPaging`. The collector asks
  for ``sort_key=created_at&sort_dir=asc``: the default order is newest first, in which an
  image created during the listing pushes every later row one offset down; oldest first puts
  it at the end instead. (A changed ``total`` still makes the run incomplete either way.)
- Errors: HTTP 4xx/5xx with ``{"error_code", "error_msg"}``. Retried: 429 and the gateway's
  throttling code ``APIGW.0308``, 5xx, transport errors. A 401 with a token has already been
  renewed once by the auth (see huawei_common.token); with AK/SK it is final.
- The endpoint is the service's base URL (default ``https://iecs.myhuaweicloud.com``); the
  collector appends ``/v1/images``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from inventory.errors import MalformedResponse
from inventory.paging import OffsetPaging, Page, PagingStrategy
from inventory.providers.base import PagedCollector
from inventory.providers.huawei_common.errors import raise_for_response
from inventory.providers.huawei_common.options import options_validator
from inventory.providers.huawei_iec.auth import make_auth, uses_token
from inventory.source import SourceConfig

DEFAULT_ENDPOINT = "https://iecs.myhuaweicloud.com"
#: Why ``regions = "*"`` is refused (inventory/discovery.py).
NO_DISCOVERY = "IEC is one global endpoint: one source (region = 'cn-north-4') covers the account"
PATH = "/v1/images"
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 500
#: Requests in flight: pages of 500, far below the gateway's 200 calls/s per API.
DEFAULT_CONCURRENCY = 4
#: Requests per second: the API gateway's published default for a cloud-service API.
DEFAULT_RATE_LIMIT_PER_S = 200.0

STATUSES = ("queued", "saving", "active", "killed", "deleted")
#: Filters with a closed set of values (the API compares exactly, case included).
ENUM_FILTERS: dict[str, tuple[str, ...]] = {
    "status": STATUSES,
    "__imagetype": ("gold", "private"),
    "__os_type": ("Linux", "Windows", "Other"),
    "visibility": ("public", "private"),
    "virtual_env_type": ("FusionCompute",),
    "__support_kvm_gpu_type": ("V100_vGPU", "RTX5000"),
}
#: "true"/"false" filters; a TOML boolean is accepted and sent as the string.
BOOL_FILTERS = ("__isregistered", "protected")
#: Capability filters: the attribute exists only when true, so only "true" can be asked for.
TRUE_FILTERS = (
    "__support_kvm",
    "__support_kvm_ascend_310",
    "__support_kvm_hi1822_hiovs",
    "__support_arm",
    "__support_gpu_t4",
    "__support_amd",
)
STRING_FILTERS = ("id", "name")
ALL_FILTERS = (*ENUM_FILTERS, *BOOL_FILTERS, *TRUE_FILTERS, *STRING_FILTERS)


def _bool_text(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower()
    raise ValueError(f"{key}: must be true or false")


#: The non-secret ``[sources.options]`` this provider takes.
validate_options = options_validator(
    ("iam_endpoint", "domain_name", "domain_id", "project_id", "project_name")
)


def validate_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Config ``[sources.filters]`` for IEC. Raises ValueError("<field>: <problem>")."""
    out: dict[str, Any] = {}
    for key, value in filters.items():
        if key in ENUM_FILTERS:
            allowed = ENUM_FILTERS[key]
            if value not in allowed:
                raise ValueError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
            out[key] = value
        elif key in BOOL_FILTERS:
            out[key] = _bool_text(key, value)
        elif key in TRUE_FILTERS:
            if _bool_text(key, value) != "true":
                raise ValueError(f"{key}: only true can be asked for (the API has no false)")
            out[key] = "true"
        elif key in STRING_FILTERS:
            if not isinstance(value, str) or not value:
                raise ValueError(f"{key}: must be a non-empty string")
            out[key] = value
        else:
            raise ValueError(f"{key}: unknown filter (allowed: {', '.join(ALL_FILTERS)})")
    return out


class IecCollector(PagedCollector):
    """Pages through IEC ListImages for one source."""

    action = "ListImages"

    default_page_size = DEFAULT_PAGE_SIZE
    default_concurrency = DEFAULT_CONCURRENCY
    default_rate_limit_per_s = DEFAULT_RATE_LIMIT_PER_S

    def _prepare(self, source: SourceConfig) -> None:
        self.url = (source.endpoint or DEFAULT_ENDPOINT).rstrip("/") + PATH
        self._token = uses_token(source)
        # Oldest first, so images created while paging land at the end.
        order = [("sort_key", "created_at"), ("sort_dir", "asc")]
        self._base = [*((k, str(v)) for k, v in source.filters.items()), *order]

    def _auth(self, source: SourceConfig) -> httpx.Auth:
        return make_auth(source)

    def _paging(self) -> PagingStrategy:
        return OffsetPaging(self.page_size)

    def _request(self, paging: dict[str, Any], number: int) -> Page:
        params: list[tuple[str, str | int | float | bool | None]] = [
            *self._base,
            *((k, str(v)) for k, v in paging.items()),
        ]
        return self._parse(self._client.get(self.url, params=params), number)

    def _parse(self, response: httpx.Response, number: int) -> Page:
        auth_hint = (
            "check credentials.username and credentials.password, and that the IAM user may "
            "list IEC images"
            if self._token
            else "check credentials.access_key_id, credentials.secret_access_key and "
            "options.domain_id for this source, and this machine's clock (X-Sdk-Date must be "
            "within 15 minutes of the server's)"
        )
        raise_for_response(
            response,
            what="ListImages",
            auth_hint=auth_hint,
            hints={
                400: "a request parameter was refused; check the source's filters",
                403: "access denied; the credentials may not list IEC images",
                404: "no IEC ListImages API there; check the source's endpoint",
            },
        )
        body = self.json_body(response, "ListImages response")
        if not isinstance(body, dict):
            raise MalformedResponse("ListImages response is not a JSON object")
        items = self.item_list(body.get("images"), "'images'")
        return Page(
            number=number, items=items, total=self.total_count(body.get("total"), "'total'")
        )
