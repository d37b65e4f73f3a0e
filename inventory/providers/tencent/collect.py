"""Tencent Cloud CVM DescribeImages: JSON requests, the Response.Error envelope, paging.

Every request is ``POST /`` with a JSON body holding the action's parameters; the action,
version, region and time travel in ``X-TC-*`` headers (see :mod:`.auth`). Paging is
``Offset``/``Limit`` (at most 100) against ``TotalCount`` — in the JSON body, not the query.

Errors arrive with **HTTP 200** as ``{"Response": {"Error": {"Code", "Message"},
"RequestId"}}``, so ``Response.Error`` is checked before any data is read. Retried
(transient): ``RequestLimitExceeded`` and every ``RequestLimitExceeded.*`` variant (the
official SDK's retry set), ``InternalError`` and ``ServiceUnavailable``, plus HTTP 5xx/429
and transport errors (the SDK's network errors). ``AuthFailure.*`` is an
:class:`~inventory.errors.AuthenticationError`; everything else is terminal and says what
to change. Error messages carry the RequestId, which Tencent support asks for.

The API allows 40 DescribeImages calls per second per account; the collector paces itself
below that with a client-side :class:`~inventory.http.RateLimiter` (``[sources.options]
rate_limit_per_s``, default 40) rather than lean on throttling errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from inventory.errors import (
    AuthenticationError,
    MalformedResponse,
    ProviderError,
    ProviderTerminalError,
    ProviderTransientError,
    Throttled,
)
from inventory.http import MAX_RATE_LIMIT_PER_S
from inventory.paging import OffsetPaging, Page, PagingStrategy
from inventory.providers.base import PagedCollector
from inventory.providers.tencent.auth import ACTION, CONTENT_TYPE, REGIONS_ACTION, TencentAuth
from inventory.source import EVERY_LOCATION, SourceConfig

DEFAULT_ENDPOINT = "https://cvm.tencentcloudapi.com/"
#: The call listing the regions CVM offers the account (``regions = "*"``): it takes no
#: region, answers ``RegionSet`` of ``{Region, RegionName, RegionState}``; only regions in
#: state ``AVAILABLE`` are used.
DISCOVERY = REGIONS_ACTION
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100
#: Requests in flight: with ~100 ms a page, 8 keep the 40 calls/s the limiter allows busy.
DEFAULT_CONCURRENCY = 8
DEFAULT_RATE_LIMIT_PER_S = 40.0

#: Filters.N Name values this collector sends; ``tag:<key>`` is matched by prefix.
FILTER_NAMES = ("image-id", "image-type", "image-name", "platform", "tag-key", "tag-value")
TAG_FILTER_PREFIX = "tag:"
IMAGE_TYPES = ("PRIVATE_IMAGE", "PUBLIC_IMAGE", "SHARED_IMAGE")
#: The config key for the ``ImageIds`` parameter (not a filter on Tencent's side).
IMAGE_IDS_KEY = "image_ids"
MAX_FILTERS = 10
MAX_FILTER_VALUES = 5
MAX_IMAGE_IDS = 100

TRANSIENT_CODES = {
    "RequestLimitExceeded": "request rate limit",
    "InternalError": "internal error",
    "ServiceUnavailable": "service unavailable",
}
AUTH_HINTS = {
    "AuthFailure.SecretIdNotFound": "the SecretId does not exist or is disabled",
    "AuthFailure.InvalidSecretId": "the SecretId is not a valid key id",
    "AuthFailure.SignatureFailure": "the signature does not match (wrong SecretKey?)",
    "AuthFailure.SignatureExpire": (
        "the request time was refused (more than 5 minutes off); sync this machine's clock "
        "(NTP) before suspecting the keys"
    ),
    "AuthFailure.TokenFailure": "the temporary-credential token was refused",
    "AuthFailure.UnauthorizedOperation": "the key may not call cvm:DescribeImages",
}
AUTH_ACTION = "check credentials.secret_id and credentials.secret_key for this source"
TERMINAL_HINTS = {
    "InvalidParameter": "a request parameter was refused; check the source's filters",
    "InvalidParameterValue": "a parameter value was refused; check the source's filters",
    "InvalidFilter": "a filter name was refused; check the source's filters",
    "InvalidFilterValue": "a filter value was refused; check the source's filters",
    "InvalidImageId": "an image id is malformed; check filters.image_ids / image-id",
    "InvalidRegion": "the region does not exist; check the source's region",
    "UnsupportedRegion": "DescribeImages is not offered in this region; check the region",
    "UnauthorizedOperation": (
        "access denied; grant cvm:DescribeImages to the CAM user of credentials.secret_id"
    ),
    "MissingParameter": "a required parameter is missing (a bug: please report it)",
    "UnknownParameter": "a parameter is unknown to the API (a bug: please report it)",
}


def _values(key: str, value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise ValueError(f"{key}: must be a non-empty string or a list of non-empty strings")
    return [v.strip() for v in value]


def validate_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Config ``[sources.filters]`` for Tencent. Raises ValueError("<field>: <problem>").

    Keys are Tencent's own filter names (``image-type``, ``image-id``, ``image-name``,
    ``platform``, ``tag-key``, ``tag-value``, ``"tag:<key>"``), each a string or a list of
    at most 5 strings; or ``image_ids``, a list sent as the ``ImageIds`` parameter, which the
    API refuses together with any filter.
    """
    out: dict[str, list[str]] = {}
    for key, value in filters.items():
        values = _values(key, value)
        if key == IMAGE_IDS_KEY:
            if len(values) > MAX_IMAGE_IDS:
                raise ValueError(f"{key}: at most {MAX_IMAGE_IDS} ids per source")
            bad = [v for v in values if not v.startswith("img-")]
            if bad:
                raise ValueError(f"{key}: {bad[0]!r} is not an image id like 'img-gvbnzy6f'")
        elif key in FILTER_NAMES or (
            key.startswith(TAG_FILTER_PREFIX) and len(key) > len(TAG_FILTER_PREFIX)
        ):
            if len(values) > MAX_FILTER_VALUES:
                raise ValueError(
                    f"{key}: at most {MAX_FILTER_VALUES} values per filter (Tencent's limit)"
                )
            if key == "image-type":
                bad = [v for v in values if v not in IMAGE_TYPES]
                if bad:
                    raise ValueError(f"{key}: {bad[0]!r} is not one of {', '.join(IMAGE_TYPES)}")
        else:
            allowed = ", ".join((*FILTER_NAMES, '"tag:<key>"', IMAGE_IDS_KEY))
            raise ValueError(f"{key}: unknown filter (allowed: {allowed})")
        out[key] = values
    named = [k for k in out if k != IMAGE_IDS_KEY]
    if IMAGE_IDS_KEY in out and named:
        # Tencent answers InvalidParameter.InvalidParameterCoexistImageIdsFilters; say so
        # now rather than at the first sync.
        raise ValueError(
            f"{IMAGE_IDS_KEY}: cannot be combined with other filters ({', '.join(named)}); "
            "DescribeImages refuses ImageIds together with Filters — use the image-id "
            "filter instead of image_ids, or drop the other filters"
        )
    if len(named) > MAX_FILTERS:
        raise ValueError(f"{named[MAX_FILTERS]}: at most {MAX_FILTERS} filters (Tencent's limit)")
    return out


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Config ``[sources.options]``: only ``rate_limit_per_s`` (requests per second)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key != "rate_limit_per_s":
            raise ValueError(f"{key}: unknown option (allowed: rate_limit_per_s)")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value <= MAX_RATE_LIMIT_PER_S
        ):
            raise ValueError(
                f"{key}: must be a number above 0 and at most {MAX_RATE_LIMIT_PER_S:g} "
                f"(Tencent allows {DEFAULT_RATE_LIMIT_PER_S:g}/s by default), got {value!r}"
            )
        out[key] = float(value)
    return out


def request_parameters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Validated filters as DescribeImages body parameters (``ImageIds`` or ``Filters``)."""
    if IMAGE_IDS_KEY in filters:
        return {"ImageIds": list(filters[IMAGE_IDS_KEY])}
    if not filters:
        return {}
    return {"Filters": [{"Name": name, "Values": list(vals)} for name, vals in filters.items()]}


def _error_class_and_hint(code: str) -> tuple[type[ProviderError], str]:
    family = code.split(".", 1)[0]
    if family == "RequestLimitExceeded":
        return Throttled, TRANSIENT_CODES[family]
    if family in TRANSIENT_CODES:
        return ProviderTransientError, TRANSIENT_CODES[family]
    if family == "AuthFailure":
        hint = AUTH_HINTS.get(code, "authentication failed")
        return AuthenticationError, f"{hint}; {AUTH_ACTION}"
    return ProviderTerminalError, TERMINAL_HINTS.get(family, "refused by Tencent Cloud")


class TencentCollector(PagedCollector):
    """Pages through DescribeImages for one source."""

    action = ACTION
    discovery_action = DISCOVERY

    default_page_size = DEFAULT_PAGE_SIZE
    default_concurrency = DEFAULT_CONCURRENCY

    default_rate_limit_per_s = DEFAULT_RATE_LIMIT_PER_S

    def _prepare(self, source: SourceConfig) -> None:
        self.endpoint = source.endpoint or DEFAULT_ENDPOINT
        self._secret_id = source.credential("secret_id").reveal()  # an id, not the key
        self._base = request_parameters(source.filters)

    def _auth(self, source: SourceConfig) -> httpx.Auth:
        region = None if source.location == EVERY_LOCATION else source.location
        return TencentAuth(self._secret_id, source.credential("secret_key"), region=region)

    def _paging(self) -> PagingStrategy:
        return OffsetPaging(self.page_size, offset_param="Offset", limit_param="Limit")

    def _request(self, paging: dict[str, Any], number: int) -> Page:
        # Offset/Limit are body parameters on Tencent (the query string stays empty).
        body = json.dumps({**self._base, **paging}, separators=(",", ":")).encode()
        response = self._client.post(
            self.endpoint, content=body, headers={"Content-Type": CONTENT_TYPE}
        )
        return self._parse(response, number)

    def _parse(self, response: httpx.Response, number: int) -> Page:
        envelope, request_id = self._envelope(response)
        items = self.item_list(envelope.get("ImageSet"), "Response.ImageSet")
        total = self.total_count(envelope.get("TotalCount"), "Response.TotalCount")
        return Page(number=number, items=items, total=total, meta={"request_id": request_id})

    def _discover(self) -> list[str]:
        response = self._client.post(
            self.endpoint,
            content=b"{}",
            headers={"Content-Type": CONTENT_TYPE, "X-TC-Action": DISCOVERY},
        )
        envelope, _ = self._envelope(response)
        regions = self.item_list(envelope.get("RegionSet"), "Response.RegionSet")
        if not all(isinstance(r.get("Region"), str) and r["Region"] for r in regions):
            raise MalformedResponse("Response.RegionSet has an item without a Region name")
        return [r["Region"] for r in regions if r.get("RegionState") == "AVAILABLE"]

    def _envelope(self, response: httpx.Response) -> tuple[dict[str, Any], str | None]:
        """The ``Response`` object of an answer and its RequestId; raises its ``Error``."""
        self.raise_for_http(response, self.endpoint)
        body = self.json_body(response)
        envelope = body.get("Response") if isinstance(body, dict) else None
        if not isinstance(envelope, dict):
            raise MalformedResponse("response has no Response object")
        request_id = envelope.get("RequestId")
        request_id = request_id if isinstance(request_id, str) else None
        error = envelope.get("Error")
        if error is not None:
            raise self._error(error, request_id)
        return envelope, request_id

    @staticmethod
    def _error(error: object, request_id: str | None) -> ProviderError:
        if not isinstance(error, dict) or not isinstance(error.get("Code"), str):
            return MalformedResponse("Response.Error has no string Code")
        code: str = error["Code"]
        message = str(error.get("Message", ""))[:300]
        error_class, hint = _error_class_and_hint(code)
        rid = f" (RequestId {request_id})" if request_id else ""
        return error_class(f"{code}: {message} — {hint}{rid}", code=code)
