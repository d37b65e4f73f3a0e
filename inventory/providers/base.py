"""What every provider's collector shares: one listing driven page by page, with retries.

A collector subclass builds its signed client and its paging strategy, then implements
:meth:`PagedCollector._request`: send ONE request for one page and parse it, raising on any
failure. This class drives the strategy (:func:`inventory.paging.drive`), retries each page
through :func:`inventory.http.call_with_retries` (counting retries for the run record), and
stamps every error with the source and the page number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx

from inventory.config import SourceConfig
from inventory.errors import ProviderError
from inventory.http import RetryPolicy, call_with_retries
from inventory.paging import Page, PagingStrategy, drive


class PagedCollector:
    """Base of the provider collectors (see the module docstring)."""

    #: The API call's name, for messages ("DescribeImages page 3").
    action: ClassVar[str]

    _client: httpx.Client
    _strategy: PagingStrategy

    def __init__(
        self,
        source: SourceConfig,
        policy: RetryPolicy,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.policy = policy
        self.on_retry = on_retry

    @property
    def complete(self) -> bool:
        return self._strategy.complete

    @property
    def incomplete_reason(self) -> str | None:
        return self._strategy.incomplete_reason

    def pages(self) -> Iterator[Page]:
        return drive(self._strategy, self._fetch)

    def close(self) -> None:
        self._client.close()

    def _request(self, paging: dict[str, Any], number: int) -> Page:
        """Send one request for page ``number`` with the strategy's ``paging`` parameters."""
        raise NotImplementedError

    def _fetch(self, paging: dict[str, Any], number: int) -> Page:
        on_retry = self.on_retry

        def retried(_attempt: int, _err: BaseException) -> None:
            if on_retry is not None:
                on_retry()

        try:
            return call_with_retries(
                lambda: self._request(paging, number),
                self.policy,
                what=f"{self.action} page {number}",
                on_retry=retried,
            )
        except ProviderError as err:
            raise err.located(self.source.name, number) from err.__cause__
