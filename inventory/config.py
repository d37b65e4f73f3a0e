"""TOML configuration -> validated, frozen settings.

Where the file is found: ``--config PATH``, else ``$INVENTORY_CONFIG``, else
``./inventory.toml`` (optional: with none, there are no sources and the defaults apply).

Secrets are never written into the file. A credential is a *reference*: ``"${ENV_VAR}"``
reads an environment variable, ``"file:/run/secrets/qy_sk"`` reads a file (trailing
newline stripped). References are checked for form when the file loads and resolved only
when a source is synced, so ``inventory status`` works on a machine without credentials.

Every problem is reported as one :class:`~inventory.errors.ConfigError` that names the file,
the source and the field, and says what is expected. See docs/configuration.md.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from inventory import cron
from inventory.errors import ConfigError
from inventory.http import MAX_RATE_LIMIT_PER_S
from inventory.providers import PROVIDERS, ProviderSpec
from inventory.source import EVERY_LOCATION

# SecretRef and SourceConfig live below the providers; tests and callers import them here.
from inventory.source import SecretRef as SecretRef
from inventory.source import SourceConfig as SourceConfig

DEFAULT_PATH = Path("inventory.toml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
#: The most requests one source may have in flight (``concurrency``).
MAX_CONCURRENCY = 32
#: The most sources synced at once (``[sync] jobs``, ``--jobs``).
MAX_JOBS = 64
#: The most worker processes that stage a large listing (``[sync] workers``).
MAX_WORKERS = 32
#: One per core, up to 4; none on one core, where they would only take turns with the sync.
DEFAULT_WORKERS = 0 if (os.cpu_count() or 1) < 2 else min(os.cpu_count() or 1, 4)


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Run-wide behaviour of the sync and its deletion guard."""

    max_disappearance_share: float = 0.5
    guard_min_images: int = 20
    #: An image is marked gone once missing from this many consecutive complete listings
    #: (1: at once); until then it is "missing" (images.missing_runs, missing_since).
    confirm_gone_runs: int = 2
    #: Sources synced at once by `inventory sync` and the scheduler (each on its own
    #: database connection: the pool holds jobs + 2).
    jobs: int = 4
    #: Worker processes that normalize and encode a large listing's pages
    #: (:mod:`inventory.staging`); 0 does it all in the sync's own process.
    workers: int = DEFAULT_WORKERS


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """The ``inventory scheduler`` daemon (docs/operations.md)."""

    #: How often a standby replica tries to become active, and the active one checks that
    #: it still is: the bound on how long a takeover takes after the active one dies.
    leader_poll_s: float = 5.0
    #: A run that could not start on time (busy, paused) still starts within this window.
    misfire_grace_s: float = 300.0
    #: Random delay added to each scheduled start, to spread sources over the minute.
    jitter_s: float = 0.0
    #: After SIGTERM, how long runs in flight may go on before they are aborted.
    stop_grace_s: float = 60.0
    #: A source whose last success is older than this many schedule intervals is stale.
    stale_after_intervals: float = 3.0
    #: How often the active scheduler asks the providers again for the regions of the
    #: ``regions = "*"`` sources (inventory/discovery.py); it also asks on becoming active.
    discover_every_s: float = 3600.0
    #: "process": the active scheduler runs each scheduled sync itself; "queue": it queues
    #: each one for ``inventory worker`` processes (inventory/queue.py).
    mode: str = "process"


SCHEDULER_MODES = ("process", "queue")


@dataclass(frozen=True, slots=True)
class WebSettings:
    """``inventory web`` and ``inventory scheduler --web-port`` (docs/dashboard.md)."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: The role the dashboard's connections take (``SET ROLE``), such as the one
    #: ``inventory grant-readonly`` creates; the connecting user must be a member of it.
    role: str | None = None
    #: Connect as another login role (a member of the read-only role) instead of the
    #: inventory's own database URL.
    database_url: SecretRef | None = None
    #: Credentials for a non-loopback address; else $INVENTORY_WEB_TOKEN, or
    #: $INVENTORY_WEB_USER and $INVENTORY_WEB_PASSWORD.
    token: SecretRef | None = None
    user: str | None = None
    password: SecretRef | None = None
    #: Rows per page of the flagged images and the changes feed.
    page_size: int = 50
    #: Host names the dashboard answers without credentials besides loopback ones (a
    #: reverse proxy on the same host that passes the original Host header on).
    allowed_hosts: tuple[str, ...] = ()


#: Plain identifiers only: a role name goes into DDL and connection options, which cannot
#: take bound parameters.
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_role_name(role: str, where: str) -> str:
    if not ROLE_NAME.match(role):
        raise ConfigError(
            f"{where}: role name {role!r}: use lower-case letters, digits and underscores "
            "(at most 63, not starting with a digit)"
        )
    return role


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Queue mode: ``inventory worker`` and the jobs it runs (docs/operations.md)."""

    #: Sync jobs one worker runs at once.
    concurrency: int = 4
    #: Runs of one job in all: a failed sync is retried (after a backoff) until then.
    max_attempts: int = 3
    #: The wait before the first retry, doubled for each one after, at most ``retry_max_s``.
    retry_base_s: float = 30.0
    retry_max_s: float = 900.0
    #: How often a worker says it is alive, and after how long without a word its
    #: running jobs are put back in the queue for another worker.
    heartbeat_s: float = 10.0
    stalled_after_s: float = 30.0
    #: Finished jobs are deleted from the queue this many days after they ended (their
    #: runs stay in ``sync_runs``); 0 keeps them.
    keep_jobs_days: int = 7


#: Statuses an image may change to that alert by default (docs/alerts.md).
DEFAULT_ALERT_STATUSES = ("deprecated", "suspended", "deleted", "ceased", "failed")
DEFAULT_ALERT_EVENTS = ("status_changed", "disappeared")
ALERT_EVENT_KINDS = ("status_changed", "disappeared", "reappeared", "changed", "appeared")
SEVERITIES = ("info", "warning", "critical")
CHANNEL_TYPES = ("webhook", "slack", "email", "log")


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """One alert destination. Which fields apply depends on ``type``."""

    name: str
    type: str  # webhook, slack, email, log
    url: SecretRef | None = None  # webhook (may be literal) and slack (always a reference)
    secret: SecretRef | None = None  # webhook HMAC key
    timeout_s: float = 10.0
    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    password: SecretRef | None = None
    sender: str = "inventory@localhost"
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Which events alert, how loudly, and where. An empty filter matches everything."""

    name: str
    events: tuple[str, ...] = DEFAULT_ALERT_EVENTS
    statuses: tuple[str, ...] = DEFAULT_ALERT_STATUSES
    sources: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # shell globs on the image name
    visibility: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    severity: str = "warning"
    channels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The ``[alerts]`` section: channels, rules, delivery and source-health knobs."""

    channels: Mapping[str, ChannelConfig] = field(default_factory=lambda: MappingProxyType({}))
    rules: tuple[AlertRule, ...] = ()
    #: More matching events than this in one run, for one channel, become one digest.
    digest_threshold: int = 20
    max_attempts: int = 8
    backoff_base_s: float = 30.0
    backoff_max_s: float = 3600.0
    #: A source alerts after this many failed runs in a row ...
    health_failures: int = 3
    #: ... or when its last success is older than this many schedule intervals.
    health_stale_intervals: float = 3.0
    health_channels: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.channels)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One provider account (``[accounts.<name>]``): what its sources share. The options
    are kept as written and validated with each source's own (which override them)."""

    name: str
    provider: str
    credentials: Mapping[str, SecretRef]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    endpoint: str | None = None
    rate_limit_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    path: Path | None
    database_url: SecretRef | None = None
    sync: SyncSettings = field(default_factory=SyncSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    web: WebSettings = field(default_factory=WebSettings)
    sources: tuple[SourceConfig, ...] = ()
    alerts: AlertSettings = field(default_factory=AlertSettings)
    accounts: Mapping[str, AccountConfig] = field(default_factory=lambda: MappingProxyType({}))
    #: ``[[sources]]`` tables asking for every region (location ``"*"``): the sources they
    #: stand for are found by :func:`inventory.discovery.expand`, which adds them to
    #: :attr:`sources`.
    templates: tuple[SourceConfig, ...] = ()

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        where = self.path or "the configuration"
        raise ConfigError(f"{where}: no source named {name!r} (configured: {known})")


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to read, or None when none is given and ./inventory.toml is absent."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("INVENTORY_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_PATH if DEFAULT_PATH.exists() else None


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    path = find_config_path(explicit)
    if path is None:
        return Settings(path=None)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read configuration: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_settings(data, path)


def parse_settings(data: Mapping[str, Any], path: Path | None) -> Settings:
    """Validate a parsed TOML document. ``path`` is only used in messages."""
    label = str(path) if path else "<config>"
    _only(
        data,
        {"database", "sync", "scheduler", "queue", "web", "accounts", "sources", "alerts"},
        label,
    )

    database_url = None
    db = _table(data.get("database", {}), f"{label}: [database]")
    _only(db, {"url"}, f"{label}: [database]")
    if "url" in db:
        database_url = _database_url(db["url"], f"{label}: [database] url")

    sync_table = _table(data.get("sync", {}), f"{label}: [sync]")
    sync_keys = {
        "max_disappearance_share",
        "guard_min_images",
        "confirm_gone_runs",
        "jobs",
        "workers",
    }
    _only(sync_table, sync_keys, f"{label}: [sync]")
    sync = SyncSettings(
        max_disappearance_share=_number(
            sync_table, "max_disappearance_share", 0.5, 0.0, 1.0, f"{label}: [sync]"
        ),
        guard_min_images=int(
            _number(sync_table, "guard_min_images", 20, 0, 10**9, f"{label}: [sync]", integer=True)
        ),
        confirm_gone_runs=int(
            _number(sync_table, "confirm_gone_runs", 2, 1, 100, f"{label}: [sync]", integer=True)
        ),
        jobs=int(_number(sync_table, "jobs", 4, 1, MAX_JOBS, f"{label}: [sync]", integer=True)),
        workers=int(
            _number(
                sync_table,
                "workers",
                DEFAULT_WORKERS,
                0,
                MAX_WORKERS,
                f"{label}: [sync]",
                integer=True,
            )
        ),
    )

    sched_table = _table(data.get("scheduler", {}), f"{label}: [scheduler]")
    where_sched = f"{label}: [scheduler]"
    _only(
        sched_table,
        {
            "leader_poll_s",
            "misfire_grace_s",
            "jitter_s",
            "stop_grace_s",
            "stale_after_intervals",
            "discover_every_s",
            "mode",
        },
        where_sched,
    )
    mode = sched_table.get("mode", "process")
    if mode not in SCHEDULER_MODES:
        raise ConfigError(
            f"{where_sched}: field mode: {mode!r} is not one of {', '.join(SCHEDULER_MODES)} "
            '("queue" needs `inventory worker` processes)'
        )
    scheduler = SchedulerSettings(
        leader_poll_s=_number(sched_table, "leader_poll_s", 5.0, 0.1, 3600.0, where_sched),
        misfire_grace_s=_number(sched_table, "misfire_grace_s", 300.0, 1.0, 86400.0, where_sched),
        jitter_s=_number(sched_table, "jitter_s", 0.0, 0.0, 3600.0, where_sched),
        stop_grace_s=_number(sched_table, "stop_grace_s", 60.0, 0.0, 86400.0, where_sched),
        stale_after_intervals=_number(
            sched_table, "stale_after_intervals", 3.0, 1.0, 1000.0, where_sched
        ),
        discover_every_s=_number(
            sched_table, "discover_every_s", 3600.0, 1.0, 604800.0, where_sched
        ),
        mode=mode,
    )
    queue = _parse_queue(_table(data.get("queue", {}), f"{label}: [queue]"), f"{label}: [queue]")
    web = _parse_web(_table(data.get("web", {}), f"{label}: [web]"), f"{label}: [web]")

    accounts = {
        name: _parse_account(name, body, label)
        for name, body in _table(data.get("accounts", {}), f"{label}: [accounts]").items()
    }
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list):
        raise ConfigError(f"{label}: sources must be an array of tables ([[sources]])")
    sources: list[SourceConfig] = []
    templates: list[SourceConfig] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_sources):
        for source in _parse_source(raw, index, label, accounts):
            if source.name in seen:
                raise ConfigError(f'{label}: source "{source.name}": name is used twice')
            seen.add(source.name)
            (templates if source.location == EVERY_LOCATION else sources).append(source)
    alerts = parse_alerts(data.get("alerts", {}), label)
    return Settings(
        path=path,
        database_url=database_url,
        sync=sync,
        scheduler=scheduler,
        queue=queue,
        web=web,
        sources=tuple(sources),
        alerts=alerts,
        accounts=MappingProxyType(accounts),
        templates=tuple(templates),
    )


_ALERT_KEYS = {
    "channels",
    "rules",
    "digest_threshold",
    "max_attempts",
    "backoff_base_s",
    "backoff_max_s",
    "health_failures",
    "health_stale_intervals",
    "health_channels",
}
_CHANNEL_KEYS: dict[str, set[str]] = {
    "webhook": {"type", "url", "secret", "timeout_s"},
    "slack": {"type", "url", "timeout_s"},
    "email": {
        "type",
        "host",
        "port",
        "starttls",
        "username",
        "password",
        "from",
        "to",
        "timeout_s",
    },
    "log": {"type"},
}
_RULE_KEYS = {
    "name",
    "events",
    "statuses",
    "sources",
    "providers",
    "names",
    "visibility",
    "owners",
    "severity",
    "channels",
}


def parse_alerts(raw: object, label: str) -> AlertSettings:
    """Validate ``[alerts]``; every problem names the channel or rule and the field."""
    where = f"{label}: [alerts]"
    table = _table(raw, where)
    _only(table, _ALERT_KEYS, where)
    channels: dict[str, ChannelConfig] = {}
    for name, body in _table(table.get("channels", {}), f"{where} channels").items():
        channels[name] = _parse_channel(name, body, f'{where} channel "{name}"')
    known = tuple(channels)

    def channel_list(value: object, at: str) -> tuple[str, ...]:
        names = _strings(value, at)
        for name in names:
            if name not in channels:
                raise ConfigError(
                    f"{at}: no channel named {name!r} (configured: {', '.join(known) or 'none'})"
                )
        return names

    raw_rules = table.get("rules")
    rules: list[AlertRule] = []
    if raw_rules is None:
        # With channels but no rules, the default rule sends to every channel.
        if channels:
            rules.append(AlertRule(name="default", channels=known))
    else:
        if not isinstance(raw_rules, list):
            raise ConfigError(f"{where}: rules must be an array of tables ([[alerts.rules]])")
        for index, body in enumerate(raw_rules):
            rule_table = _table(body, f"{where} rules[{index}]")
            name = rule_table.get("name", f"rule{index + 1}")
            at = f'{where} rule "{name}"'
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where} rules[{index}]: field name: must be a string")
            _only(rule_table, _RULE_KEYS, at)
            events = _strings(rule_table.get("events", list(DEFAULT_ALERT_EVENTS)), f"{at}: events")
            _check_vocabulary(events, ALERT_EVENT_KINDS, f"{at}: field events")
            statuses = _strings(
                rule_table.get("statuses", list(DEFAULT_ALERT_STATUSES)), f"{at}: statuses"
            )
            severity = rule_table.get("severity", "warning")
            if severity not in SEVERITIES:
                raise ConfigError(
                    f"{at}: field severity: must be one of {', '.join(SEVERITIES)}, "
                    f"got {severity!r}"
                )
            rule_channels = channel_list(rule_table.get("channels", list(known)), f"{at}: channels")
            if not rule_channels:
                raise ConfigError(f"{at}: field channels: name at least one channel")
            rules.append(
                AlertRule(
                    name=name,
                    events=events,
                    statuses=statuses,
                    sources=_strings(rule_table.get("sources", []), f"{at}: sources"),
                    providers=_strings(rule_table.get("providers", []), f"{at}: providers"),
                    names=_strings(rule_table.get("names", []), f"{at}: names"),
                    visibility=_strings(rule_table.get("visibility", []), f"{at}: visibility"),
                    owners=_strings(rule_table.get("owners", []), f"{at}: owners"),
                    severity=severity,
                    channels=rule_channels,
                )
            )
    return AlertSettings(
        channels=MappingProxyType(channels),
        rules=tuple(rules),
        digest_threshold=int(_number(table, "digest_threshold", 20, 0, 10**6, where, integer=True)),
        max_attempts=int(_number(table, "max_attempts", 8, 1, 100, where, integer=True)),
        backoff_base_s=_number(table, "backoff_base_s", 30.0, 0.0, 86400.0, where),
        backoff_max_s=_number(table, "backoff_max_s", 3600.0, 0.0, 7 * 86400.0, where),
        health_failures=int(_number(table, "health_failures", 3, 1, 1000, where, integer=True)),
        health_stale_intervals=_number(table, "health_stale_intervals", 3.0, 1.0, 1000.0, where),
        health_channels=channel_list(
            table.get("health_channels", list(known)), f"{where}: health_channels"
        ),
    )


def _parse_channel(name: str, raw: object, where: str) -> ChannelConfig:
    if not _NAME.match(name):
        raise ConfigError(f"{where}: channel names use letters, digits, '.', '_' or '-'")
    table = _table(raw, where)
    kind = table.get("type")
    if kind not in _CHANNEL_KEYS:
        raise ConfigError(
            f"{where}: field type: must be one of {', '.join(CHANNEL_TYPES)}, got {kind!r}"
        )
    _only(table, _CHANNEL_KEYS[kind], where)
    timeout = _number(table, "timeout_s", 10.0, 0.1, 300.0, where)
    if kind == "log":
        return ChannelConfig(name=name, type=kind)
    if kind in ("webhook", "slack"):
        url = table.get("url")
        at = f"{where}: url"
        if kind == "webhook" and isinstance(url, str) and url.startswith(("http://", "https://")):
            ref = SecretRef("literal", url, at)  # a plain URL is not a secret
        elif kind == "slack" and isinstance(url, str) and url.startswith("http"):
            raise ConfigError(
                f'{at}: a Slack webhook URL is a secret; write "${{SLACK_WEBHOOK_URL}}" '
                'or "file:/path"'
            )
        else:
            ref = SecretRef.parse(url, at)
        secret = None
        if "secret" in table:
            secret = SecretRef.parse(table["secret"], f"{where}: secret")
        return ChannelConfig(name=name, type=kind, url=ref, secret=secret, timeout_s=timeout)
    # email
    host = table.get("host", "localhost")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"{where}: field host: must be a host name")
    starttls = table.get("starttls", False)
    if not isinstance(starttls, bool):
        raise ConfigError(f"{where}: field starttls: must be true or false")
    username = table.get("username")
    if username is not None and not isinstance(username, str):
        raise ConfigError(f"{where}: field username: must be a string")
    password = None
    if "password" in table:
        password = SecretRef.parse(table["password"], f"{where}: password")
    if (username is None) != (password is None):
        raise ConfigError(f"{where}: give both username and password, or neither")
    sender = table.get("from", "inventory@localhost")
    if not isinstance(sender, str) or "@" not in sender:
        raise ConfigError(f"{where}: field from: must be an email address")
    recipients = _strings(table.get("to"), f"{where}: to")
    if not recipients or not all("@" in r for r in recipients):
        raise ConfigError(f"{where}: field to: must list at least one email address")
    return ChannelConfig(
        name=name,
        type=kind,
        timeout_s=timeout,
        smtp_host=host,
        smtp_port=int(_number(table, "port", 25, 1, 65535, where, integer=True)),
        starttls=starttls,
        username=username,
        password=password,
        sender=sender,
        recipients=recipients,
    )


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: must be a list of strings")
    return tuple(value)


def _check_vocabulary(values: tuple[str, ...], allowed: tuple[str, ...], where: str) -> None:
    for value in values:
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")


_SOURCE_KEYS = {
    "name",
    "provider",
    "zone",
    "zones",
    "region",
    "regions",
    "account",
    "endpoint",
    "filters",
    "schedule",
    "timezone",
    "credentials",
    "options",
    "page_size",
    "concurrency",
    "rate_limit_per_s",
    "timeout_s",
    "max_attempts",
}
_ACCOUNT_KEYS = {"provider", "credentials", "options", "endpoint", "rate_limit_per_s"}


def _parse_queue(table: Mapping[str, Any], where: str) -> QueueSettings:
    """``[queue]``: queue mode's workers and retries."""
    _only(table, set(QueueSettings.__dataclass_fields__), where)
    queue = QueueSettings(
        concurrency=int(_number(table, "concurrency", 4, 1, MAX_JOBS, where, integer=True)),
        max_attempts=int(_number(table, "max_attempts", 3, 1, 100, where, integer=True)),
        retry_base_s=_number(table, "retry_base_s", 30.0, 0.0, 86400.0, where),
        retry_max_s=_number(table, "retry_max_s", 900.0, 0.0, 86400.0, where),
        heartbeat_s=_number(table, "heartbeat_s", 10.0, 0.1, 3600.0, where),
        stalled_after_s=_number(table, "stalled_after_s", 30.0, 0.3, 86400.0, where),
        keep_jobs_days=int(_number(table, "keep_jobs_days", 7, 0, 3650, where, integer=True)),
    )
    if queue.stalled_after_s < 2 * queue.heartbeat_s:
        raise ConfigError(
            f"{where}: field stalled_after_s: {queue.stalled_after_s:g} is less than two "
            f"heartbeats ({queue.heartbeat_s:g} s each): a live worker would look dead"
        )
    return queue


def _database_url(raw_url: object, where: str) -> SecretRef:
    if isinstance(raw_url, str) and not raw_url.startswith(("${", "file:")):
        # A URL without a password is not a secret; allow it literally.
        if re.search(r"://[^/@]*:[^/@]+@", raw_url):
            raise ConfigError(
                f'{where}: contains a password; use "${{INVENTORY_DATABASE_URL}}" or '
                '"file:/path" instead'
            )
        return SecretRef("literal", raw_url, where)
    return SecretRef.parse(raw_url, where)


def _parse_web(table: Mapping[str, Any], where: str) -> WebSettings:
    """``[web]``: the dashboard's address, credentials and database role."""
    _only(table, set(WebSettings.__dataclass_fields__), where)
    host = table.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ConfigError(f'{where}: field host: give an address such as "127.0.0.1"')
    role = table.get("role")
    if role is not None:
        if not isinstance(role, str):
            raise ConfigError(f'{where}: field role: give a role name such as "inventory_reader"')
        check_role_name(role, f"{where}: field role")
    user = table.get("user")
    if user is not None and (not isinstance(user, str) or not user or ":" in user):
        raise ConfigError(f"{where}: field user: a non-empty name without ':'")
    refs = {
        name: SecretRef.parse(table[name], f"{where} {name}")
        for name in ("token", "password")
        if name in table
    }
    if (user is None) != ("password" not in refs):
        raise ConfigError(f"{where}: user and password go together; give both or neither")
    return WebSettings(
        host=host,
        port=int(_number(table, "port", 8080, 0, 65535, where, integer=True)),
        role=role,
        database_url=(
            _database_url(table["database_url"], f"{where} database_url")
            if "database_url" in table
            else None
        ),
        token=refs.get("token"),
        user=user,
        password=refs.get("password"),
        page_size=int(_number(table, "page_size", 50, 1, 1000, where, integer=True)),
        allowed_hosts=_strings(table.get("allowed_hosts", []), f"{where}: field allowed_hosts"),
    )


def _parse_account(name: str, raw: object, label: str) -> AccountConfig:
    """``[accounts.<name>]``: a provider, its credentials and what its sources share."""
    where = f'{label}: account "{name}"'
    if not _NAME.match(name):
        raise ConfigError(f"{where}: account names use letters, digits, '.', '_' or '-'")
    table = _table(raw, where)
    _only(table, _ACCOUNT_KEYS, where)
    provider_name = _provider(table.get("provider"), where)
    spec = PROVIDERS[provider_name].spec
    options = dict(_table(table.get("options", {}), f"{where}: options"))
    try:
        spec.validate_options(options)  # again with each source's own, which may add some
    except ValueError as err:
        raise ConfigError(f"{where}: options.{err}") from None
    return AccountConfig(
        name=name,
        provider=provider_name,
        credentials=_credentials(table, spec, where),
        options=MappingProxyType(options),
        endpoint=_endpoint(table, where),
        rate_limit_per_s=_rate_limit(table, where),
    )


def _parse_source(
    raw: object, index: int, label: str, accounts: Mapping[str, AccountConfig]
) -> list[SourceConfig]:
    """One ``[[sources]]`` table: one source, or one per zone or region it lists (each
    named ``<name>-<location>``)."""
    table = _table(raw, f"{label}: sources[{index}]")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{label}: sources[{index}]: field name: required; letters, digits, '.', '_' "
            f"or '-', at most 63 characters (got {name!r})"
        )
    where = f'{label}: source "{name}"'
    _only(table, _SOURCE_KEYS, where)

    account_name = table.get("account")
    if account_name is not None and not isinstance(account_name, str):
        raise ConfigError(f"{where}: field account: must be a string")
    # With credentials of its own, ``account`` is a label for the reports; without, it
    # names the [accounts.<name>] whose credentials, options and endpoint it uses.
    account = None
    if account_name in accounts and "credentials" in table:
        raise ConfigError(
            f"{where}: account {account_name!r} is declared ([accounts.{account_name}]): "
            "drop the source's credentials to use its, or name the account otherwise"
        )
    if account_name is not None and "credentials" not in table:
        account = accounts.get(account_name)
        if account is None:
            declared = ", ".join(accounts) or "none"
            raise ConfigError(
                f"{where}: field account: no [accounts.{account_name}] is declared "
                f"(declared: {declared}); declare it, or give the source its credentials"
            )

    provider_name = _provider(table.get("provider", account.provider if account else None), where)
    if account is not None and provider_name != account.provider:
        raise ConfigError(
            f"{where}: field provider: {provider_name!r}, but account {account.name!r} is "
            f"a {account.provider} account"
        )
    spec = PROVIDERS[provider_name].spec
    locations = _locations(table, spec, where)

    endpoint = _endpoint(table, where) or (account.endpoint if account else None)
    tz = table.get("timezone", "UTC")
    if not isinstance(tz, str):
        raise ConfigError(f"{where}: field timezone: must be a string such as 'UTC'")
    try:
        cron.timezone(tz)
    except ValueError as err:
        raise ConfigError(f"{where}: field timezone: {err}") from None
    schedule = table.get("schedule")
    if schedule is not None:
        schedule = _check_cron(schedule, tz, f"{where}: field schedule")

    filters_raw = _table(table.get("filters", {}), f"{where}: filters")
    try:
        filters = spec.validate_filters(filters_raw)
    except ValueError as err:
        raise ConfigError(f"{where}: filters.{err}") from None

    options_raw = dict(account.options) if account else {}
    options_raw.update(_table(table.get("options", {}), f"{where}: options"))
    try:
        options = spec.validate_options(options_raw)
    except ValueError as err:
        given = f" (with account {account.name!r}'s)" if account and account.options else ""
        raise ConfigError(f"{where}: options{given}.{err}") from None

    credentials = account.credentials if account else _credentials(table, spec, where)

    page_size = None
    if "page_size" in table:
        page_size = int(_number(table, "page_size", 0, 1, spec.max_page_size, where, integer=True))

    concurrency = None
    if "concurrency" in table:
        concurrency = int(_number(table, "concurrency", 0, 1, MAX_CONCURRENCY, where, integer=True))

    rate_limit = _rate_limit(table, where)
    if rate_limit is None and account is not None:
        rate_limit = account.rate_limit_per_s

    one = SourceConfig(
        name=name,
        provider=provider_name,
        location=locations[0][1],
        account=account_name,
        endpoint=endpoint,
        filters=MappingProxyType(filters),
        schedule=schedule,
        timezone=tz,
        credentials=MappingProxyType(dict(credentials)),
        options=MappingProxyType(options),
        page_size=page_size,
        concurrency=concurrency,
        rate_limit_per_s=rate_limit,
        timeout_s=_number(table, "timeout_s", 30.0, 0.1, 600.0, where),
        max_attempts=int(_number(table, "max_attempts", 5, 1, 20, where, integer=True)),
    )
    return [replace(one, name=named, location=location) for named, location in locations]


def _locations(table: Mapping[str, Any], spec: ProviderSpec, where: str) -> list[tuple[str, str]]:
    """(source name, zone or region) of each source a [[sources]] table stands for: its
    one ``zone``/``region``, one per entry of ``zones``/``regions``, or the table itself
    as a template when it asks for ``"*"``."""
    field_name, example = spec.location_field, spec.example_location
    plural = f"{field_name}s"
    for wrong in {"zone", "region", "zones", "regions"} - {field_name, plural}:
        if wrong in table:
            raise ConfigError(
                f"{where}: field {wrong}: these sources are placed by {field_name} "
                f"({field_name} = {example!r} or {plural} = [...]), not {wrong}"
            )
    name = str(table["name"])
    if field_name in table and plural in table:
        raise ConfigError(f"{where}: give {field_name} or {plural}, not both")
    if plural not in table:
        location = table.get(field_name)
        if not isinstance(location, str) or not location:
            raise ConfigError(
                f"{where}: field {field_name}: required (e.g. {example!r}, or {plural} = "
                f"[{example!r}, ...] for a source in each)"
            )
        return [(name, location)]
    listed = table[plural]
    if listed == EVERY_LOCATION:  # a template: inventory/discovery.py finds its sources
        if spec.discovery is None:
            raise ConfigError(
                f'{where}: field {plural}: "*" asks {spec.name} for every {field_name} of the '
                f"account, but {spec.no_discovery}"
            )
        return [(name, EVERY_LOCATION)]
    if not isinstance(listed, list) or not listed:
        raise ConfigError(
            f'{where}: field {plural}: must be a non-empty list of {plural}, or "*" for every '
            f"{field_name} the account may use"
        )
    out: list[tuple[str, str]] = []
    for location in listed:
        if not isinstance(location, str) or not location:
            raise ConfigError(f"{where}: field {plural}: {location!r} is not a {field_name}")
        if any(location == seen for _, seen in out):
            raise ConfigError(f"{where}: field {plural}: {location!r} is listed twice")
        named = f"{name}-{location}"
        if not _NAME.match(named):
            raise ConfigError(
                f"{where}: field {plural}: the source for {location!r} would be named "
                f"{named!r}: at most 63 letters, digits, '.', '_' or '-'; shorten the name"
            )
        out.append((named, location))
    return out


def _provider(value: object, where: str) -> str:
    """A ``provider`` field's value, one of the registry's names."""
    if not isinstance(value, str) or value not in PROVIDERS:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"{where}: field provider: {value!r} is not one of {known}")
    return value


def _endpoint(table: Mapping[str, Any], where: str) -> str | None:
    endpoint = table.get("endpoint")
    if endpoint is not None and (
        not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://"))
    ):
        raise ConfigError(f"{where}: field endpoint: must be an http:// or https:// URL")
    return endpoint


def _rate_limit(table: Mapping[str, Any], where: str) -> float | None:
    if "rate_limit_per_s" not in table:
        return None
    return _number(table, "rate_limit_per_s", 0, 0.01, MAX_RATE_LIMIT_PER_S, where)


def _credentials(table: Mapping[str, Any], spec: ProviderSpec, where: str) -> dict[str, SecretRef]:
    creds_raw = _table(table.get("credentials", {}), f"{where}: credentials")
    _only(creds_raw, set(spec.credential_fields), f"{where}: credentials")
    chosen = _credential_set(spec.credential_sets, set(creds_raw), where, spec.env_hint)
    return {
        cred: SecretRef.parse(creds_raw[cred], f"{where}: credentials.{cred}") for cred in chosen
    }


def _credential_set(
    sets: tuple[tuple[str, ...], ...],
    given: set[str],
    where: str,
    hint: Callable[[str], str],
) -> tuple[str, ...]:
    """The one credential set the source gives in full; a clear error otherwise."""
    for fields in sets:
        if set(fields) == given:
            return fields
    if len(sets) == 1:
        missing = [f for f in sets[0] if f not in given]
        cred = missing[0]
        raise ConfigError(
            f'{where}: field credentials.{cred}: required; e.g. {cred} = "${{{hint(cred)}}}"'
        )
    ways = " or ".join("(" + " + ".join(fields) + ")" for fields in sets)
    got = ", ".join(sorted(given)) or "none"
    raise ConfigError(f"{where}: credentials: give exactly one of {ways}; got {got}")


def _check_cron(value: object, tz: str, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f'{where}: must be a cron expression string such as "0 * * * *"')
    try:
        cron.check(value, tz)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
    return value


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a table")
    return value


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _number(
    table: Mapping[str, Any],
    key: str,
    default: float,
    low: float,
    high: float,
    where: str,
    *,
    integer: bool = False,
) -> float:
    if key not in table:
        return default
    value = table[key]
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not (low <= value <= high):
        raise ConfigError(
            f"{where}: field {key}: must be {kind} from {low:g} to {high:g}, got {value!r}"
        )
    return float(value)
