"""The one exception tree of the inventory.

Every error the product raises on purpose derives from :class:`InventoryError`, and every
message says where the problem is (a file, a source, a page) and what to change. Whether a
failed call is worth repeating is decided in one place, here, by the two markers
:class:`Transient` and :class:`Terminal`; the retry loop in :mod:`inventory.http` only asks
``isinstance(err, Transient)``.

::

    InventoryError
    ├── ConfigError                 bad or missing configuration (file, source, field)
    ├── UsageError                  a command asked for something that does not exist
    ├── DatabaseUnavailable         no usable database URL and no embedded server
    ├── DatabaseLost                the database connection broke during a run
    ├── DatabaseRefused             the database refused a run's statement (page or merge)
    ├── AlreadyRunning              another process holds the source's sync lock
    ├── RunAborted                  a run stopped on request (shutdown) before applying
    └── ProviderError               a provider call failed (source, page, cause)
        ├── ProviderTransientError  (Transient)  5xx, throttling, transport errors
        ├── ProviderTerminalError   (Terminal)   refused for good: bad parameter, denied
        │   ├── AuthenticationError              wrong credentials or signature
        │   ├── MalformedResponse                a response that does not parse as documented
        │   └── PagingError                      paging would skip or loop
        └── RetriesExhausted        (Terminal)   a transient error that outlived its retries

Secrets never go into these messages: callers pass identifiers (source name, page, code),
never credentials, and :func:`inventory.http.redact` scrubs URLs before they are quoted.
"""

from __future__ import annotations


class InventoryError(Exception):
    """Root of every error the inventory raises on purpose."""


class Transient:
    """Marker: the same call may succeed if repeated after a pause."""


class Terminal:
    """Marker: repeating the call will not help; a person has to change something."""


class ConfigError(InventoryError):
    """The configuration file or environment is invalid."""


class UsageError(InventoryError):
    """A command line names what does not exist (a source, a status...): exit 2, one line
    with the values that would do."""


class DatabaseUnavailable(InventoryError):
    """No database could be reached or started."""


class DatabaseLost(InventoryError):
    """The database connection broke during a run (a restart, a failover, a killed backend);
    the run's transaction was never committed, so nothing of it was applied."""


class DatabaseRefused(InventoryError):
    """The database answered a run's statement with an error (a full disk, a permission, a
    timeout, a value it will not take) while staging a page or merging; the run's
    transaction rolled back, so nothing of it was applied."""


class AlreadyRunning(InventoryError):
    """Another process is syncing the same source right now."""


class RunAborted(InventoryError):
    """A run was asked to stop (scheduler shutdown) and stopped before applying anything."""


class ProviderError(InventoryError):
    """A provider API call failed.

    ``source`` is the configured source name, ``page`` the 1-based page number (None when
    the failure is not tied to one page) and ``code`` the provider's own error code.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        page: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.page = page
        self.code = code

    def located(self, source: str | None, page: int | None) -> ProviderError:
        """Fill in where the error happened, keeping anything already set."""
        if self.source is None:
            self.source = source
        if self.page is None:
            self.page = page
        return self

    def __str__(self) -> str:
        where = []
        if self.source is not None:
            where.append(f"source {self.source!r}")
        # "DescribeImages page 3: ..." names its page already: said once.
        if self.page is not None and f"page {self.page}" not in self.message.split(":", 1)[0]:
            where.append(f"page {self.page}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


def without_source(source: str, message: str) -> str:
    """``message`` without the ``source 'x': `` (or ``source 'x', ``) that
    :class:`ProviderError` puts in front, for a line that names the source already."""
    for prefix in (f"source {source!r}: ", f"source {source!r}, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


class ProviderTransientError(ProviderError, Transient):
    """A failure that is worth retrying: 5xx, throttling, a dropped connection.

    ``retry_after_s``: how long the provider asked to be left alone (``Retry-After``), if
    it said; the retry waits at least that long."""

    retry_after_s: float | None = None


class Throttled(ProviderTransientError):
    """The provider refused the call as over its rate limit (HTTP 429, a throttling code):
    retried, and the account's request rate is lowered (:class:`inventory.http.RateLimiter`)."""


class ProviderTerminalError(ProviderError, Terminal):
    """A refusal that retrying will not change."""


class AuthenticationError(ProviderTerminalError):
    """The provider rejected the credentials or the request signature."""


class MalformedResponse(ProviderTerminalError):
    """A response that does not have the documented shape."""


class PagingError(ProviderTerminalError):
    """Paging cannot go on safely (a marker that does not advance, a page past the end)."""


class RetriesExhausted(ProviderError, Terminal):
    """A transient error that persisted through every retry."""
