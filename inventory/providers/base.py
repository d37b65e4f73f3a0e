"""What every provider's collector shares: one listing driven page by page, with retries.

A collector subclass says how its requests are signed (:meth:`PagedCollector._auth`), how
its listing pages (:meth:`PagedCollector._paging`) and what its source asks for
(:meth:`PagedCollector._prepare`), then implements :meth:`PagedCollector._request`: send
ONE request for one page and parse it, raising on any failure. This class drives the
strategy (:func:`inventory.paging.drive`), retries each page through
:func:`inventory.http.call_with_retries` (counting retries for the run record), and stamps
every error with the source and the page number. The static methods at the end read a response
the same way for every provider.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import httpx

from inventory.errors import (
    MalformedResponse,
    PagingError,
    ProviderError,
    ProviderTerminalError,
    ProviderTransientError,
    Throttled,
)
from inventory.http import (
    RateLimiter,
    RetryPolicy,
    call_with_retries,
    make_client,
    retry_after_s,
    shared_limiter,
)
from inventory.paging import Fetch, Page, PagingStrategy, drive
from inventory.source import SourceConfig
from inventory.storable import loads

#: Credentials that name an account (ids, not secrets), in the providers' spellings.
ACCOUNT_IDS = ("access_key_id", "secret_id", "access_key", "username")
#: Answered pages a listing with pages in flight may hold beyond its requests in flight,
#: waiting for the sync to take them: the requests go on while it stages the pages before
#: (a QingCloud page of 100 images is about 0.3 MB parsed, so at most a few MB).
PAGES_WAITING = 16

T = TypeVar("T")


class PagedCollector:
    """Base of the provider collectors (see the module docstring)."""

    #: The API call's name, for messages ("DescribeImages page 3").
    action: ClassVar[str]

    #: The page size when the source sets none.
    default_page_size: ClassVar[int] = 1
    #: Requests in flight when the source sets no ``concurrency`` (offset listings only).
    default_concurrency: ClassVar[int] = 1
    #: Requests per second when the source sets no ``rate_limit_per_s``: the provider's
    #: documented limit, or a conservative one where it publishes none
    #: (docs/operations.md, "Rate limits").
    default_rate_limit_per_s: ClassVar[float] = 20.0

    def __init__(
        self,
        source: SourceConfig,
        policy: RetryPolicy,
        on_retry: Callable[[int, BaseException], None] | None = None,
        client: httpx.Client | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.source = source
        self.policy = policy
        self.on_retry = on_retry
        self.page_size = source.page_size or self.default_page_size
        self.in_flight = source.concurrency or self.default_concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._prepare(source)
        # One budget per account and region in this process, whichever sources use it.
        # (``options.rate_limit_per_s`` is Tencent's older spelling of the setting.)
        rate = (
            source.rate_limit_per_s
            or source.options.get("rate_limit_per_s")
            or self.default_rate_limit_per_s
        )
        self.limiter = limiter or shared_limiter(self._account_key(source), float(rate))
        # A test may hand in its own client; otherwise one signed with the source's keys.
        self._client = client or make_client(self._auth(source), source.timeout_s)
        self._strategy = self._paging()

    def _prepare(self, source: SourceConfig) -> None:
        """Read what the requests need from the source (endpoint, filters), before signing."""

    def _auth(self, source: SourceConfig) -> httpx.Auth:
        """The request signing (or token) for this source's credentials."""
        raise NotImplementedError

    @staticmethod
    def _account_key(source: SourceConfig) -> tuple[str, ...]:
        """Whose rate limit a source's calls count against: the provider, the endpoint, the
        account (its key id or user name, never a secret) and the region or zone. Kept in
        this process only, as the key of :func:`inventory.http.shared_limiter`."""
        account = next(
            (source.credential(c).reveal() for c in ACCOUNT_IDS if source.has_credential(c)),
            source.account or "",
        )
        endpoint = source.endpoint or ""
        return (source.provider, endpoint, account, source.location)

    def _paging(self) -> PagingStrategy:
        raise NotImplementedError

    @property
    def complete(self) -> bool:
        return self._strategy.complete

    @property
    def incomplete_reason(self) -> str | None:
        return self._strategy.incomplete_reason

    def pages(self) -> Iterator[Page]:
        submit = self._submit if self.in_flight > 1 else None
        try:
            yield from drive(
                self._strategy,
                self._fetch,
                submit=submit,
                in_flight=self.in_flight,
                window=self.in_flight + PAGES_WAITING,
            )
        except PagingError as err:  # the strategy's refusal: name the source too
            raise err.located(self.source.name, None) from None

    def _submit(self, fetch: Fetch, params: dict[str, Any], number: int) -> Future[Page]:
        if self._pool is None:  # the client is thread-safe: the threads share its pool
            self._pool = ThreadPoolExecutor(self.in_flight, f"fetch-{self.source.name}")
        return self._pool.submit(fetch, params, number)

    def close(self) -> None:
        if self._pool is not None:  # requests still in flight end before the client closes
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def _request(self, paging: dict[str, Any], number: int) -> Page:
        """Send one request for page ``number`` with the strategy's ``paging`` parameters."""
        raise NotImplementedError

    def _fetch(self, paging: dict[str, Any], number: int) -> Page:
        on_retry = self.on_retry

        def retried(attempt: int, err: BaseException) -> None:
            if on_retry is not None:
                on_retry(attempt, err)

        try:
            return call_with_retries(
                lambda: self._attempt(paging, number),
                self.policy,
                what=f"{self.action} page {number}",
                on_retry=retried,
            )
        except ProviderError as err:
            raise err.located(self.source.name, number) from err.__cause__

    def _attempt(self, paging: dict[str, Any], number: int) -> Page:
        return self._paced(lambda: self._request(paging, number))

    def _paced(self, request: Callable[[], T]) -> T:
        """One request, paced by the account's limiter, which hears how it went: every
        attempt, retries included, counts against the limit."""
        self.limiter.acquire()
        try:
            answer = request()
        except ProviderTransientError as err:
            err.retry_after_s = err.retry_after_s or retry_after_s()
            if isinstance(err, Throttled):
                self.limiter.throttled(err.retry_after_s)
            raise
        self.limiter.answered()
        return answer

    # -- region discovery (a source with ``regions = "*"``: inventory/discovery.py) ----------

    #: The call that lists the account's zones or regions (the spec's ``discovery``).
    discovery_action: ClassVar[str | None] = None

    def discover(self) -> list[str]:
        """The zones or regions the account may use, as the provider lists them: sorted,
        each once. Retried as a page is; a listing of none is an error, never "no regions"
        (which would retire every source of the account)."""
        what = self.discovery_action
        if what is None:
            raise NotImplementedError(f"{self.source.provider} has no region discovery")
        try:
            found = call_with_retries(lambda: self._paced(self._discover), self.policy, what=what)
            if not found:
                raise MalformedResponse(f"{what} listed none; an account has at least one")
        except ProviderError as err:
            raise err.located(self.source.name, None) from err.__cause__
        return sorted(set(found))

    def _discover(self) -> list[str]:
        """Send the discovery call once and read the locations it lists as usable."""
        raise NotImplementedError

    # -- reading a response: the same checks for every provider -----------------------------

    @staticmethod
    def raise_for_http(response: httpx.Response, endpoint: str) -> None:
        """For APIs whose errors travel in an HTTP 200 body: any other status is a gateway's
        (5xx and 429 transient, the rest terminal)."""
        status = response.status_code
        if status == 429:
            raise Throttled(f"HTTP 429 from {endpoint}", code="429")
        if status >= 500:
            raise ProviderTransientError(f"HTTP {status} from {endpoint}", code=str(status))
        if status != 200:
            raise ProviderTerminalError(
                f"HTTP {status} from {endpoint}: {response.text[:200]!r}", code=str(status)
            )

    @staticmethod
    def json_body(response: httpx.Response, what: str = "response", **kw: Any) -> Any:
        """The decoded body; MalformedResponse naming ``what`` when it is not JSON."""
        try:
            return loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MalformedResponse(
                f"{what} is not JSON (starts with {response.text[:80]!r})", **kw
            ) from None

    @staticmethod
    def item_list(value: object, name: str) -> list[dict[str, Any]]:
        """``value`` as the page's list of item objects, else MalformedResponse naming ``name``."""
        if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
            raise MalformedResponse(f"{name} is missing or is not a list of objects")
        return value

    @staticmethod
    def total_count(value: object, name: str) -> int:
        """``value`` as the listing's total, else MalformedResponse naming ``name``."""
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MalformedResponse(f"{name} is missing or not a non-negative integer")
        return value
