"""Kingsoft Cloud KEC DescribeImages (2016-03-04): the request, the Error envelope, one page.

KEC documents no paging for this action (no MaxResults, NextToken, Marker or Offset): one
call returns the whole ``ImagesSet``, with no total count. The collector therefore makes one
request, driven by :class:`~inventory.paging.SinglePage`. The answer may still be cut by the
backend (see :data:`DEFAULT_LISTING_CAP`): one that reaches the cap is incomplete. A
``page_size`` in the config cannot change anything; the spec caps it at 1 (see
:data:`MAX_PAGE_SIZE`) and the collector never sends it. An answer too large to hold is
spooled to a file and its items parsed as the sync reads them (:mod:`inventory.jsonstream`).

Errors come with HTTP 4xx/5xx and ``{"RequestId": ..., "Error": {"Code", "Message"}}``.
KSyun's business errors use HTTP 400 even for server-side trouble, so the class of an error
is decided by its code first and its status second. Retried (transient), following the
retry table of the official ``ksc-sdk-python``: transport errors, HTTP 429, 502, 503, 509,
``Throttling`` / ``ThrottlingException`` and KEC's ``RequestLimitExceeded``. Also retried,
beyond that table: HTTP 500 and 504 without a recognised code (gateway trouble), and the
codes ``InternalError`` and ``ServiceUnavailable``, which DescribeImages documents with
HTTP 400 but whose meaning (a backend I/O timeout, in KSyun's own example) is transient.
Everything else is terminal and names what to change; signature and key errors raise
:class:`~inventory.errors.AuthenticationError` naming ``credentials.access_key_id`` /
``credentials.secret_access_key``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from inventory import jsonstream
from inventory.errors import (
    AuthenticationError,
    ConfigError,
    MalformedResponse,
    ProviderError,
    ProviderTerminalError,
    ProviderTransientError,
    Throttled,
)
from inventory.jsonstream import ItemStream, read_head, spool
from inventory.paging import Page, PagingStrategy, SinglePage
from inventory.providers.base import PagedCollector
from inventory.providers.ksyun.auth import SERVICE, KsyunAuth
from inventory.source import EVERY_LOCATION, SourceConfig
from inventory.storable import loads

DEFAULT_ENDPOINT = "https://kec.api.ksyun.com/"
#: The call listing the regions KEC offers (``regions = "*"``): ``RegionSet`` of
#: ``{Region, RegionName}``. Signed for :data:`DISCOVERY_REGION`, as KSyun's SDK does.
DISCOVERY = "DescribeRegions"
DISCOVERY_REGION = "cn-beijing-6"
ACTION = "DescribeImages"
API_VERSION = "2016-03-04"
#: Not a page size: DescribeImages has none. The config's ``page_size`` is validated
#: against ``1..MAX_PAGE_SIZE``, so 1 is the only value it accepts, and it has no effect.
DEFAULT_PAGE_SIZE = 1
MAX_PAGE_SIZE = 1

#: The region check of KSyun's SDK (``^[a-z]{2,5}-\w+-\d+$``), so a typo such as
#: "cn-beijing6" is a config error before any request is signed for it.
REGION_PATTERN = re.compile(r"^[a-z]{2,5}-\w+-\d+$")

#: HTTP statuses the SDK retries whatever the body says.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 509})
#: Statuses retried here beyond the SDK table when no known code says otherwise.
EXTRA_TRANSIENT_STATUSES = frozenset({500, 504})
TRANSIENT_CODES: dict[str, str] = {
    "Throttling": "request rate limited",
    "ThrottlingException": "request rate limited",
    "RequestLimitExceeded": "request rate limited",
    "InternalError": "internal error on KSyun's side",
    "ServiceUnavailable": "KSyun's backend is unavailable",
}
#: Answers that mean "too many calls": retried, and the account's rate is lowered.
THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})
THROTTLE_STATUSES = frozenset({429, 509})
_CREDENTIALS = "credentials.access_key_id and credentials.secret_access_key"
AUTH_HINTS: dict[str, str] = {
    "SignatureDoesNotMatch": (
        f"the signature was refused; check credentials.secret_access_key (and {_CREDENTIALS} "
        "belong together) for this source"
    ),
    "IncompleteSignature": f"the signature was incomplete; check {_CREDENTIALS}",
    "InvalidClientTokenId": (
        "the access key is unknown; check credentials.access_key_id for this source"
    ),
    "InvalidAccessKeyId": (
        "the access key is unknown; check credentials.access_key_id for this source"
    ),
    "AuthFailure": f"authentication failed; check {_CREDENTIALS} for this source",
    "MissingAuthenticationToken": f"the request was not signed; check {_CREDENTIALS}",
}
TERMINAL_HINTS: dict[str, str] = {
    "RequestExpired": "the request time was refused; sync this machine's clock (NTP)",
    "SignatureExpired": "the request time was refused; sync this machine's clock (NTP)",
    "ImageIdInvalidParameterValue": "check filters.ImageId (an existing image id)",
    "InvalidParameterValue": "a request parameter was refused; check the source's filters",
    "MissingParameter": "a required parameter is missing",
    "InvalidAction": "the endpoint does not serve KEC DescribeImages; check endpoint",
    "AccessDenied": "access denied; the key lacks permission for kec:DescribeImages",
    "UnauthorizedOperation": "access denied; the key lacks permission for kec:DescribeImages",
    "InvalidRegion": "check region (e.g. 'cn-beijing-6')",
}

#: The most images one DescribeImages answer is trusted to hold: KSyun's own
#: ServiceUnavailable message shows its backend asking the image service with
#: ``limit=1000``, so an answer of 1,000 images may be that page alone. A listing that
#: reaches it is incomplete (nothing is marked gone); ``options.listing_cap`` changes it.
DEFAULT_LISTING_CAP = 1000
_NARROW = (
    "split the source by filters.ImageType (e.g. 'system' and the others) so each holds "
    "fewer, or raise options.listing_cap if KSyun confirms a larger answer"
)

FILTERS = ("ImageId", "ImageType")
#: KSyun image ids are UUIDs in practice, but the doc's own samples are truncated; accept
#: the UUID alphabet without insisting on the 8-4-4-4-12 shape.
_IMAGE_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
#: ImageType has no published enumeration (sample "system"); accept one lower-case word.
_IMAGE_TYPE = re.compile(r"^[a-z][a-z_]{0,31}$")


def validate_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Config ``[sources.filters]`` for KSyun. Raises ValueError("<field>: <problem>").

    The keys are the API's own parameter names. Both take one string: DescribeImages has
    no list form (no ``ImageId.N``).
    """
    out: dict[str, Any] = {}
    for key, value in filters.items():
        if key == "ImageId":
            if not isinstance(value, str) or not _IMAGE_ID.match(value):
                raise ValueError(
                    "ImageId: must be one image id such as "
                    "'b1e3731b-c200-4499-be42-f6bfbbda990e' (DescribeImages takes a single id)"
                )
        elif key == "ImageType":
            if not isinstance(value, str) or not _IMAGE_TYPE.match(value):
                raise ValueError("ImageType: must be one lower-case word such as 'system'")
        else:
            raise ValueError(f"{key}: unknown filter (allowed: {', '.join(FILTERS)})")
        out[key] = value
    return out


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Config ``[sources.options]``: only ``listing_cap`` (see :data:`DEFAULT_LISTING_CAP`)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key != "listing_cap":
            raise ValueError(f"{key}: unknown option (allowed: listing_cap)")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key}: must be a whole number of images, 1 or more, got {value!r}")
        out[key] = value
    return out


def classify(status: int, code: str | None, message: str) -> ProviderError:
    """The error for a non-200 answer: transient, authentication or terminal."""
    label = f"HTTP {status}" + (f" {code}" if code else "")
    text = f"{label}: {message}" if message else label
    if code in THROTTLE_CODES or (code is None and status in THROTTLE_STATUSES):
        return Throttled(f"{text} (request rate limited)", code=code or str(status))
    if code in TRANSIENT_CODES:
        return ProviderTransientError(f"{text} ({TRANSIENT_CODES[code]})", code=code)
    if code in AUTH_HINTS:
        return AuthenticationError(f"{text} — {AUTH_HINTS[code]}", code=code)
    if status in TRANSIENT_STATUSES or (code is None and status in EXTRA_TRANSIENT_STATUSES):
        return ProviderTransientError(text, code=code or str(status))
    hint = TERMINAL_HINTS.get(code or "", "refused by KSyun")
    return ProviderTerminalError(f"{text} — {hint}", code=code or str(status))


class KsyunCollector(PagedCollector):
    """Lists KEC DescribeImages for one source in one request."""

    action = "DescribeImages"
    discovery_action = DISCOVERY
    #: KSyun publishes no limit; one listing is one request, so sources of one account share
    #: a modest 20 per second, slowed down further by its throttling answers.
    default_rate_limit_per_s = 20.0

    def _prepare(self, source: SourceConfig) -> None:
        if source.location != EVERY_LOCATION and not REGION_PATTERN.match(source.location):
            raise ConfigError(
                f"source {source.name!r}: field region: {source.location!r} is not a KSyun "
                "region id (e.g. 'cn-beijing-6')"
            )
        self.endpoint = source.endpoint or DEFAULT_ENDPOINT
        self._params: list[tuple[str, str | int | float | bool | None]] = [
            ("Action", ACTION),
            ("Version", API_VERSION),
            *((k, str(v)) for k, v in source.filters.items()),
        ]

    def _auth(self, source: SourceConfig) -> httpx.Auth:
        key_id, secret = source.credential("access_key_id").reveal(), "secret_access_key"
        region = DISCOVERY_REGION if source.location == EVERY_LOCATION else source.location
        return KsyunAuth(key_id, source.credential(secret), region, service=SERVICE)

    def _discover(self) -> list[str]:
        params = {"Action": DISCOVERY, "Version": API_VERSION}
        response = self._client.get(self.endpoint, params=params)
        body = self._body(response.status_code, response.content)
        regions = self.item_list(body.get("RegionSet"), "RegionSet")
        if not all(isinstance(r.get("Region"), str) and r["Region"] for r in regions):
            raise MalformedResponse("RegionSet has an item without a Region name")
        return [r["Region"] for r in regions]

    def _paging(self) -> PagingStrategy:
        return SinglePage(self.source.options.get("listing_cap", DEFAULT_LISTING_CAP), _NARROW)

    def _request(self, paging: dict[str, Any], number: int) -> Page:
        # SinglePage asks for no paging parameters; anything else would be a bug here.
        assert not paging, paging
        with self._client.stream("GET", self.endpoint, params=self._params) as response:
            length = response.headers.get("Content-Length", "")
            if response.status_code != 200 or (
                length.isdigit() and int(length) <= jsonstream.SPOOL_ABOVE
            ):
                return self._parse(response.status_code, response.read(), number)
            body = spool(response.iter_bytes())
        if isinstance(body, bytes):
            return self._parse(200, body, number)
        # Too large to hold: the items are parsed from the spooled file as the sync reads
        # them (inventory.jsonstream); only an answer that is not a plain listing is read
        # whole, to say what it is.
        head = read_head(body, "ImagesSet")
        if not head.found or "Error" in head.keys:
            with body:
                return self._parse(200, body.read(), number)
        request_id = head.scalars.get("RequestId")
        return Page(
            number=number,
            items=[],
            meta={"request_id": request_id} if request_id else {},
            stream=ItemStream(body, "ImagesSet", lambda err: err.located(self.source.name, number)),
        )

    def _parse(self, status: int, content: bytes, number: int) -> Page:
        body = self._body(status, content)
        # Note the key: "ImagesSet", not "ImageSet".
        items = self.item_list(body.get("ImagesSet"), "ImagesSet")
        request_id = body.get("RequestId")
        # The one response is the whole listing, so its length is the total.
        return Page(
            number=number,
            items=items,
            total=len(items),
            meta={"request_id": request_id} if isinstance(request_id, str) else {},
        )

    @staticmethod
    def _body(status: int, content: bytes) -> dict[str, Any]:
        """An answer's JSON object, raising the error its status or ``Error`` says."""
        body = _json(content)
        if status != 200 or (isinstance(body, dict) and "Error" in body):
            code, message = _error_of(body)
            if code is None and not message:
                message = f"{_text(content, 120)!r}"  # a gateway page, not KSyun's envelope
            raise classify(status, code, message)
        if body is None:
            raise MalformedResponse(
                f"response is not JSON (starts with {_text(content, 80)!r})", code="200"
            )
        if not isinstance(body, dict):
            raise MalformedResponse("response is not a JSON object")
        return body


def _json(content: bytes) -> Any:
    try:
        return loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _text(content: bytes, length: int) -> str:
    return content[: length * 4].decode("utf-8", errors="replace")[:length]


def _error_of(body: Any) -> tuple[str | None, str]:
    """(code, message) from the Error envelope; (None, "") when the body has none."""
    if not isinstance(body, dict) or not isinstance(body.get("Error"), dict):
        return None, ""
    error = body["Error"]
    code = error.get("Code")
    message = error.get("Message")
    return (
        code if isinstance(code, str) and code else None,
        str(message)[:300] if message is not None else "",
    )
