"""The ``inventory`` command. Commands only: parsing, calling, printing; no business logic.

Exit codes of ``inventory sync`` (documented in README.md):

    0  every source synced
    1  at least one source failed (the run is recorded with its error)
    2  configuration or usage error (nothing was run)
    3  skipped: another process is already syncing a source
    4  synced, but the deletion guard refused a mass disappearance (needs a person)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import OperationalError

from inventory import __version__
from inventory.errors import AlreadyRunning, ConfigError, InventoryError, UsageError
from inventory.providers import PROVIDERS
from inventory.report_render import FORMATS, json_line
from inventory.secrets import scrub

if TYPE_CHECKING:
    from inventory.source import SourceConfig
    from inventory.sync import RunResult

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("inventory")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_SKIPPED, EXIT_GUARD = 0, 1, 2, 3, 4

REPORT_KINDS = ("flagged", "changes", "summary", "health")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["__complete"]:  # the shell completion scripts' call: no logging set up
        from inventory.completion import candidates

        print("\n".join(candidates(parser, words[1:])))
        return EXIT_OK
    # `inventory db psql -c "..."`: what follows psql and dump is theirs, whatever it is.
    args, passed = parser.parse_known_args(argv)
    if passed and not getattr(args, "passes_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(passed)}")
    args.passed = passed
    from inventory.logs import setup_logging

    # The scheduler and the dashboard narrate at INFO (runs, leadership, requests served).
    services = ("scheduler", "web")
    level = args.log_level or ("INFO" if args.command in services else "WARNING")
    setup_logging(level, args.log_format)
    guard = _StdoutGuard(sys.stdout)
    sys.stdout = guard
    try:
        code: int = args.func(args)
        return code
    except ConfigError as err:
        print(f"inventory: configuration error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as err:
        print(f"inventory: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except InventoryError as err:
        print(f"inventory: {err}", file=sys.stderr)
        return EXIT_FAILED
    except OperationalError as err:
        print(
            "inventory: cannot use the database: "
            f"{scrub(str(err.orig) if err.orig else str(err)).strip()}\n"
            "Check INVENTORY_DATABASE_URL or [database] url, or unset both to use the "
            "embedded PostgreSQL.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("inventory: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout = guard.stream


class _StdoutGuard:
    """stdout for a command whose reader may go away (``inventory sync --json | head -1``):
    once the pipe is closed, output stops quietly and the work goes on (every source is
    still synced, and the exit code is the work's), never a BrokenPipeError traceback."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return int(self.stream.write(text))
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.reader_gone = True
        # What the stream still holds goes nowhere at exit, instead of failing again.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...
        return getattr(self.stream, name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inventory",
        description="Keep a PostgreSQL inventory of cloud machine images in step with providers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config", help="config file (default: $INVENTORY_CONFIG, else ./inventory.toml)"
    )
    parser.add_argument(
        "--log-level",
        default=None,
        type=_log_level,
        help="DEBUG, INFO, WARNING or ERROR (default WARNING; INFO for the scheduler)",
    )
    parser.add_argument(
        "--log-format",
        choices=["auto", "text", "json"],
        default="auto",
        help="text on a terminal and JSON lines otherwise (auto, the default), or force one",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sync", help="sync the named sources (default: all)")
    p.add_argument("sources", nargs="*", metavar="SOURCE")
    p.add_argument(
        "--allow-mass-disappearance",
        action="store_true",
        help="let a complete listing mark more than the configured share of images gone",
    )
    p.add_argument("--json", action="store_true", help="print one JSON summary per source")
    p.add_argument(
        "--jobs",
        "-j",
        type=_jobs,
        metavar="N",
        help="sync up to N sources at once (default: [sync] jobs, 4)",
    )
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="print a summary line per source even when not on a terminal",
    )
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print nothing when all succeed, even on a terminal",
    )
    p.add_argument(
        "--metrics-textfile",
        metavar="PATH",
        help="after the run, write Prometheus metrics for node_exporter's textfile collector",
    )
    p.add_argument(
        "--enqueue",
        action="store_true",
        help="queue the syncs for `inventory worker` processes instead of running them",
    )
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "worker", help="run queued sync jobs (queue mode) until SIGTERM; any number of them"
    )
    p.add_argument(
        "--concurrency",
        type=_jobs,
        metavar="N",
        help="jobs run at once by this worker (default: [queue] concurrency, 4)",
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    p.add_argument(
        "--metrics-addr", default="127.0.0.1", help="address for /metrics (default 127.0.0.1)"
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "jobs", help="queue mode: each source's waiting, running, failed and done jobs"
    )
    p.add_argument(
        "--hours", type=float, default=24.0, help="count failed and done jobs of the last H hours"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per source")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser(
        "scheduler", help="run the scheduler daemon: each source on its schedule, HA-safe"
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    p.add_argument(
        "--metrics-addr", default="127.0.0.1", help="address for /metrics (default 127.0.0.1)"
    )
    p.add_argument(
        "--web-port", type=_port, metavar="PORT", help="serve the dashboard on this port too"
    )
    p.add_argument(
        "--web-host",
        metavar="ADDRESS",
        help="address for the dashboard (default: [web] host, 127.0.0.1)",
    )
    p.set_defaults(func=cmd_scheduler)

    p = sub.add_parser("web", help="serve the read-only dashboard (default http://127.0.0.1:8080/)")
    p.add_argument(
        "--host",
        metavar="ADDRESS",
        help="address to listen on (default: [web] host, 127.0.0.1); any other than loopback "
        "needs $INVENTORY_WEB_TOKEN or $INVENTORY_WEB_USER and $INVENTORY_WEB_PASSWORD",
    )
    p.add_argument(
        "--port", type=_port, metavar="PORT", help="port (default: [web] port, 8080; 0: any free)"
    )
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("init", help="write a commented starter inventory.toml")
    p.add_argument(
        "providers",
        nargs="*",
        metavar="PROVIDER",
        help=f"a source for each of these ({', '.join(PROVIDERS)}; default all)",
    )
    p.add_argument(
        "--emulators",
        action="store_true",
        help="instead, sources for the five emulators (ports from --first-port), ready to sync",
    )
    p.add_argument(
        "--first-port",
        type=int,
        default=8101,
        metavar="PORT",
        help="--emulators: their ports, from this one up (default 8101)",
    )
    p.add_argument("--path", default="inventory.toml", help="where (default ./inventory.toml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "check",
        help="test config, credentials, database and one page per source, without syncing",
    )
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="only these (default all)")
    p.add_argument("--json", action="store_true", help="one JSON object per check")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh, fish)")
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    p.set_defaults(func=cmd_completion)

    p = sub.add_parser("migrate", help="upgrade the database schema to the latest version")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("status", help="each source with its last run, result and age")
    p.add_argument("--json", action="store_true", help="one JSON object per source")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "report",
        help="flagged images, status changes, a summary or sync health, as table/csv/json",
    )
    p.add_argument(
        "kind",
        choices=REPORT_KINDS,
        help="flagged: images now flagged; changes: status transitions (default --since 7d); "
        "summary: images per provider, source and status; health: per source sync health",
    )
    p.add_argument(
        "--since",
        help="7d, 12h, 30m, 2w or an ISO date/time (UTC unless an offset is given); "
        "flagged: flagged since then; changes: after then (default 7d); summary: count the "
        "images whose status began since then",
    )
    p.add_argument("--source", help="only this source")
    p.add_argument("--provider", help="only this provider")
    p.add_argument("--account", help="only the sources of this account")
    p.add_argument(
        "--status",
        help="only this status (flagged, summary: the status; changes: the new status; "
        "health: the last run's outcome)",
    )
    p.add_argument(
        "--limit", type=_positive, metavar="N", help="at most N rows (the first N in its order)"
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="default table")
    p.add_argument(
        "--json", action="store_const", const="json", dest="format", help="= --format json"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("alerts", help="deliver, list, test and replay alerts")
    alerts = p.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    a = alerts.add_parser("dispatch", help="send every pending alert that is due")
    a.set_defaults(func=cmd_alerts_dispatch)
    a = alerts.add_parser("list", help="alerts in the outbox, newest first")
    a.add_argument("--status", choices=("pending", "sent", "dead"), help="only this status")
    a.add_argument("--limit", type=_positive, default=100, help="at most this many (default 100)")
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a.set_defaults(func=cmd_alerts_list)
    a = alerts.add_parser("test", help="send a test message through one channel")
    a.add_argument("channel", metavar="CHANNEL")
    a.set_defaults(func=cmd_alerts_test)
    a = alerts.add_parser("replay", help="re-queue a dead alert")
    a.add_argument("alert_id", metavar="ID", type=int)
    a.set_defaults(func=cmd_alerts_replay)

    p = sub.add_parser("history", help="one image's status timeline and events")
    p.add_argument("image_id", metavar="IMAGE_ID", help="the provider's image id")
    p.add_argument("--source", help="the source, when several hold an image with this id")
    p.add_argument("--format", choices=("table", "json"), default="table", help="default table")
    p.add_argument(
        "--json", action="store_const", const="json", dest="format", help="= --format json"
    )
    p.set_defaults(func=cmd_history)

    p = sub.add_parser(
        "grant-readonly",
        help="create (if missing) a role that may only read the report views and tables",
    )
    p.add_argument("--role", default=None, help="role name (default inventory_reader)")
    p.set_defaults(func=cmd_grant_readonly)

    p = sub.add_parser(
        "db",
        help="the embedded PostgreSQL: start it for SQL, say where it is, psql, dump, stop",
    )
    db = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    a = db.add_parser("start", help="start it and keep it running until `inventory db stop`")
    a.add_argument(
        "--port",
        type=int,
        help="also listen on 127.0.0.1:PORT, for tools that cannot use a Unix socket",
    )
    a.set_defaults(func=cmd_db_start)
    a = db.add_parser("stop", help="stop it (or let the last inventory process using it)")
    a.set_defaults(func=cmd_db_stop)
    a = db.add_parser("status", help="where it is and whether it runs (exit 3: not running)")
    a.add_argument("--json", action="store_true", help="one JSON object")
    a.set_defaults(func=cmd_db_status)
    a = db.add_parser("url", help="print its libpq URL, for psql, Grafana or Metabase")
    a.add_argument("--tcp", action="store_true", help="the TCP URL (after `db start --port`)")
    a.set_defaults(func=cmd_db_url)
    a = db.add_parser(
        "psql", help="run the bundled psql on the inventory database; arguments go to psql"
    )
    a.set_defaults(func=cmd_db_client, tool="psql", passes_arguments=True)
    a = db.add_parser(
        "dump", help="dump the inventory database with the bundled pg_dump; arguments go to it"
    )
    a.set_defaults(func=cmd_db_client, tool="pg_dump", passes_arguments=True)

    p = sub.add_parser(
        "demo", help="sync an emulated provider into the embedded database, twice, and report"
    )
    p.add_argument(
        "--images", type=int, default=300, help="catalogue size per provider (default 300)"
    )
    p.add_argument("--seed", type=int, default=7, help="catalogue seed (default 7)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("emulate", help="run a provider API emulator on loopback")
    p.add_argument("provider", choices=sorted(PROVIDERS))
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--access-key-id", default=None, help="accepted access key id")
    p.add_argument("--secret-access-key", default=None, help="accepted secret access key")
    p.add_argument(
        "--system-share",
        type=float,
        default=None,
        help="qingcloud: share of platform images, which a default listing does not show "
        "(default 0.15)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print a [[sources]] table for this emulator (same --port and keys) and exit",
    )
    p.set_defaults(func=cmd_emulate)
    return parser


def _open(
    args: argparse.Namespace,
    extra_connections: int = 0,
    jobs_of: Callable[[Any], int] | None = None,
) -> tuple[Any, Any, Any]:
    """Settings, an engine for as many syncs at once as ``jobs_of(settings)`` (default: the
    command's ``--jobs``, else ``[sync] jobs``) plus ``extra_connections``, its target."""
    from inventory.config import load_settings
    from inventory.db import engine_for

    settings = load_settings(args.config)
    jobs = jobs_of(settings) if jobs_of else getattr(args, "jobs", None) or settings.sync.jobs
    engine, target = engine_for(settings, jobs + extra_connections)
    return settings, engine, target


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return text.upper()


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number, 1 or more")
    return int(text)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdecimal()) or int(text) > 65535:
        raise argparse.ArgumentTypeError("must be a port number from 0 to 65535")
    return int(text)


def _jobs(text: str) -> int:
    from inventory.config import MAX_JOBS

    if not text.isdigit() or not 1 <= int(text) <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_JOBS}")
    return int(text)


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from inventory.invocation import command
    from inventory.starter import emulator_setup, starter, write

    path = Path(args.path)
    inv = command()
    # The next commands as they must be typed: with --config when it is not the default.
    configured = inv if path == Path("inventory.toml") else f"{inv} --config {path}"
    if args.emulators:
        if args.providers:
            raise UsageError("init: --emulators writes all five; name no provider with it")
        text, commands = emulator_setup(args.first_port)
        write(path, text, force=args.force)
        print(f"wrote {path}: a source for each of the five emulators. Start them and sync:")
        for line in commands:
            print(f"  {line.replace('inventory ', inv + ' ', 1)}")
        print(f"  {configured} sync")
        return EXIT_OK
    write(path, starter(args.providers), force=args.force)
    print(f"wrote {path}; edit its sources, set the variables it names, then:")
    print(f"  {configured} check    # config, credentials, database, one page of each source")
    print(f"  {configured} sync")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from inventory.check import Check, check_database, check_sources, chosen
    from inventory.config import load_settings
    from inventory.db import engine_for

    settings = load_settings(args.config)  # a config error is the one line, exit 2
    sources = chosen(settings, args.sources)
    if args.log_level is None:  # a retry's cause is the check's own line: said once
        logging.getLogger("inventory.http").setLevel(logging.ERROR)
    lines: list[Check] = []
    width = max([len("database"), *(len(s.name) for s in sources)]) + 2

    def say(line: Check) -> None:
        lines.append(line)
        if args.json:
            kind = line.subject if line.subject in ("config", "database") else "source"
            print(
                json_line(
                    {
                        "check": kind,
                        "source": line.subject if kind == "source" else None,
                        "status": "ok" if line.ok else "failed",
                        "detail": line.detail,
                    }
                )
            )
        else:
            mark = "ok  " if line.ok else "FAIL"
            print(f"{line.subject.ljust(width)}{mark}  {line.detail}", flush=True)

    where = settings.path or "no config file (defaults)"
    say(Check("config", True, f"{where}: {len(sources)} source(s) to check"))
    try:
        engine, target = engine_for(settings, 1)
        say(check_database(engine, target.describe()))
        engine.dispose()
    except InventoryError as err:
        say(Check("database", False, str(err)))
    check_sources(sources, settings.sync.jobs, say)
    return EXIT_OK if all(line.ok for line in lines) else EXIT_FAILED


def cmd_completion(args: argparse.Namespace) -> int:
    from inventory.completion import script

    print(script(args.shell), end="")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from inventory.migrate import head_revision, upgrade

    _, engine, target = _open(args)
    upgrade(engine)
    print(f"database at {head_revision()}: {target.describe()}")
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    from inventory.discovery import discover_sources, select_sources
    from inventory.migrate import ensure_current
    from inventory.sync import sync_source

    if args.metrics_textfile:
        _check_textfile(args.metrics_textfile)
    settings, engine, _ = _open(args)
    if not settings.sources and not settings.templates:
        where = settings.path or "no config file (looked for ./inventory.toml)"
        raise ConfigError(f"{where}: no sources configured; add a [[sources]] table")
    ensure_current(engine)
    settings, discovered = discover_sources(settings, engine, args.sources)
    sources = select_sources(settings, engine, args.sources)
    if args.enqueue:
        return _enqueue(args, settings, engine, sources, discovered)
    codes = [EXIT_FAILED for found in discovered if found.error is not None]
    for found in discovered:
        if found.error is not None and args.json:
            print(
                json_line(
                    {
                        "source": found.template,
                        "status": "discovery_failed",
                        "error": found.error,
                        "sources": list(found.sources),
                    }
                )
            )
        elif found.retired and args.json:
            for name in found.retired:
                print(json_line({"source": name, "status": "retired"}))
    if not sources:
        return codes[0] if codes else EXIT_OK

    jobs = min(args.jobs or settings.sync.jobs, len(sources))
    display = _sync_display(args, sources)

    def one(source: SourceConfig) -> RunResult:
        return sync_source(
            engine,
            settings,
            source,
            trigger="cli",
            allow_mass_disappearance=args.allow_mass_disappearance,
            progress=display.progress if display else None,
            retrying=display.retrying if display else None,
            # Shown in the closing table: not a second time as a log line.
            failure_level=logging.INFO if display and display.table else logging.ERROR,
        )

    try:
        with display.shown() if display else contextlib.nullcontext():
            for source, outcome in _each_done(one, sources, jobs):
                codes.append(_one_outcome(args, source, outcome, display))
    finally:  # a later error or Ctrl-C must not hide the failures already seen
        if display:
            display.summary()
    if args.metrics_textfile:
        from inventory.metrics import write_textfile

        try:
            write_textfile(engine, args.metrics_textfile)
        except OSError as err:  # metrics must never hide the sync's own outcome
            log.warning("could not write metrics to %s: %s", args.metrics_textfile, err)
    # The most urgent outcome wins: failure, then guard, then skipped.
    for code in (EXIT_FAILED, EXIT_GUARD, EXIT_SKIPPED):
        if code in codes:
            return code
    return EXIT_OK


def _check_textfile(path: str) -> None:
    """node_exporter's textfile collector reads ``*.prom`` files of an existing folder:
    anything else would be written where nothing ever reads it, so refuse before syncing."""
    from pathlib import Path

    target = Path(path)
    if target.suffix != ".prom":
        raise ConfigError(
            f"--metrics-textfile {path}: node_exporter reads only files named *.prom; "
            f"use {target.with_suffix('.prom')}"
        )
    folder = target.parent
    if not folder.is_dir():
        raise ConfigError(
            f"--metrics-textfile {path}: the folder {folder} does not exist; create it, or "
            "point at node_exporter's --collector.textfile.directory"
        )
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--metrics-textfile {path}: the folder {folder} is not writable")


def _sync_display(args: argparse.Namespace, sources: Sequence[Any]) -> Any:
    """Live rows on a terminal's stderr, a closing table on a terminal's stdout; None when
    neither is a terminal (cron, pipes: plain lines only)."""
    if args.json or args.quiet:
        return None
    live, table = sys.stderr.isatty(), sys.stdout.isatty()
    if not (live or table):
        return None
    from inventory.terminal import SyncDisplay

    return SyncDisplay([s.name for s in sources], live=live, table=table)


def _one_outcome(
    args: argparse.Namespace, source: Any, outcome: Callable[[], Any], display: Any
) -> int:
    """Report one source's run (a JSON line, a plain line, or a row of the closing table)
    and return its exit code."""
    try:
        result = outcome()
    except AlreadyRunning as err:
        log.info("%s", err, extra={"fields": {"event": "sync_skipped", "source": source.name}})
        _count_skipped(source.name)
        if display:
            display.skip(source.name, str(err))
        # A skip is a normal cron overlap: said with --json or when asked, and by exit 3.
        if not (display and display.table) and (args.json or args.verbose):
            _emit(args, {"source": source.name, "status": "skipped", "reason": str(err)})
        return EXIT_SKIPPED
    if display:
        display.finished(result)
    if args.json:
        print(json_line(_result_dict(result)))
    elif display and display.table:
        pass  # in the closing table, with its failure or warning under it
    elif args.verbose or not result.ok or result.disappearance_blocked or result.warning:
        # Cron friendliness: quiet on success unless asked.
        print(_result_line(result))
    if not result.ok:
        return EXIT_FAILED
    return EXIT_GUARD if result.disappearance_blocked else EXIT_OK


def _enqueue(
    args: argparse.Namespace, settings: Any, engine: Any, sources: Sequence[Any], discovered: Any
) -> int:
    """``sync --enqueue``: a job per source for the workers; exit 1 if a discovery failed."""
    from inventory.queue import enqueue_sources

    for name, job in enqueue_sources(settings, engine, [s.name for s in sources], "cron"):
        status = "queued" if job is not None else "already waiting"
        if args.json:
            print(json_line({"source": name, "status": status, "job": job}))
        elif not args.quiet:
            print(f"{name}: {status}" + (f" (job {job})" if job is not None else ""))
    return EXIT_FAILED if any(found.error for found in discovered) else EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from inventory.migrate import ensure_current
    from inventory.queue import WorkerCounts, run_worker, worker_name

    settings, engine, target = _open(
        args, extra_connections=1, jobs_of=lambda s: args.concurrency or s.queue.concurrency
    )  # one more connection for /metrics
    concurrency = args.concurrency or settings.queue.concurrency
    ensure_current(engine)
    counts = WorkerCounts()
    metrics_server = None
    if args.metrics_port is not None:
        from inventory.metrics import WorkerCollector, serve_metrics

        collector = WorkerCollector(engine, worker_name(), counts.snapshot)
        metrics_server = serve_metrics(
            engine, args.metrics_port, args.metrics_addr, extra=[collector]
        )
    log.info("database: %s", target.describe())
    try:
        run_worker(settings, engine, concurrency=concurrency, counts=counts)
    finally:
        if metrics_server is not None:
            metrics_server.stop()
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace) -> int:
    from inventory.migrate import ensure_current
    from inventory.queue import source_jobs

    _, engine, target = _open(args)
    ensure_current(engine)
    rows = source_jobs(engine, args.hours)
    if args.json:
        for row in rows:
            print(json_line(asdict(row)))
        return EXIT_OK
    print(f"database: {target.describe()}")
    if not rows:
        print(
            "no job has been queued (queue mode: `inventory sync --enqueue`, or [scheduler] "
            'mode = "queue")'
        )
        return EXIT_OK
    window = f"{args.hours:g}H"
    header = ("SOURCE", "WAITING", "RUNNING", f"FAILED {window}", f"DONE {window}", "LAST DONE")
    table = [
        (
            r.source,
            str(r.waiting),
            str(r.running),
            str(r.failed),
            str(r.done),
            _when(r.last_done_at),
        )
        for r in rows
    ]
    print(format_table(header, table))
    for r in rows:
        if r.last_error:
            print(f"  {r.source}: last failure: {r.last_error}")
    return EXIT_OK


def _each_done(
    work: Callable[[T], R], items: Sequence[T], jobs: int
) -> Iterator[tuple[T, Callable[[], R]]]:
    """``work`` on each item, up to ``jobs`` at once: (item, outcome) as each is done
    (in order when one at a time); ``outcome()`` returns its result or raises its error."""
    if jobs <= 1:
        for item in items:
            yield item, _deferred(work, item)
        return
    with ThreadPoolExecutor(jobs, thread_name_prefix="sync") as pool:
        futures = {pool.submit(work, item): item for item in items}
        for future in as_completed(futures):
            yield futures[future], future.result


def _deferred(work: Callable[[T], R], item: T) -> Callable[[], R]:
    return lambda: work(item)


def _count_skipped(source: str) -> None:
    from inventory.metrics import count_skipped

    count_skipped(source)


def cmd_scheduler(args: argparse.Namespace) -> int:
    import signal

    from inventory.migrate import ensure_current
    from inventory.scheduler import InventoryScheduler

    settings, engine, target = _open(args, extra_connections=3)  # lock, /metrics, housekeeping
    ensure_current(engine)
    if not any(s.schedule for s in (*settings.sources, *settings.templates)):
        where = settings.path or "the configuration"
        raise ConfigError(f'{where}: no source has a schedule; add schedule = "..." to one')
    from inventory.metrics import count_skipped

    scheduler = InventoryScheduler(settings, engine, on_skipped=count_skipped)
    if settings.alerts.enabled:
        # Every minute on the active replica: pending alerts go out soon after their run
        # (queue mode: a worker sends them).
        dispatch = (
            (lambda: _enqueue_dispatch(scheduler.queue))
            if scheduler.queue is not None
            else (lambda: _dispatch(engine, settings))
        )
        scheduler.housekeeping.append(("alerts-dispatch", "* * * * *", dispatch))
    dashboard = None
    if args.web_port is not None:
        from inventory.web import open_dashboard

        host = args.web_host or settings.web.host
        dashboard = open_dashboard(settings, host, args.web_port, "--web-host").start()
        log.info("dashboard at %s", dashboard.url)
    metrics_server = None
    if args.metrics_port is not None:
        from inventory.metrics import serve_metrics

        metrics_server = serve_metrics(engine, args.metrics_port, args.metrics_addr)

    def stop(signum: int, _frame: object) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        scheduler.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("database: %s", target.describe())
    try:
        scheduler.run()
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        if dashboard is not None:
            dashboard.stop()
    return EXIT_OK


def cmd_web(args: argparse.Namespace) -> int:
    from inventory.config import load_settings
    from inventory.web import open_dashboard

    settings = load_settings(args.config)
    host = args.host or settings.web.host
    port = settings.web.port if args.port is None else args.port
    dashboard = open_dashboard(settings, host, port)
    # The one line a person needs, on stdout; the rest goes to the log.
    print(f"dashboard at {dashboard.url} (read-only; Ctrl-C stops it)", flush=True)
    dashboard.serve()
    return EXIT_OK


def _enqueue_dispatch(app: Any) -> None:
    from inventory.queue import enqueue_dispatch

    enqueue_dispatch(app)


def _dispatch(engine: Any, settings: Any) -> None:
    from inventory.alerts.dispatcher import dispatch

    dispatch(engine, settings)


def cmd_alerts_dispatch(args: argparse.Namespace) -> int:
    from inventory.alerts.dispatcher import dispatch
    from inventory.migrate import ensure_current

    settings, engine, _ = _open(args)
    ensure_current(engine)
    result = dispatch(engine, settings)
    print(f"alerts: {result.sent} sent, {result.failed} to retry, {result.dead} dead")
    return EXIT_OK


def cmd_alerts_list(args: argparse.Namespace) -> int:
    from inventory.alerts.dispatcher import list_alerts
    from inventory.migrate import ensure_current

    _, engine, _ = _open(args)
    ensure_current(engine)
    rows = list_alerts(engine, args.status, args.limit)
    if args.json:
        for row in rows:
            print(json_line(row._mapping))
        return EXIT_OK
    header = ("ID", "STATUS", "CHANNEL", "KIND", "SEVERITY", "SOURCE", "EVENTS", "TRIES", "AT")
    table = [
        (
            str(r.id),
            r.status,
            r.channel,
            r.kind,
            r.severity,
            r.source,
            str(r.events),
            str(r.attempts),
            _when(r.sent_at or r.created_at),
        )
        for r in rows
    ]
    print(format_table(header, table))
    for r in rows:
        if r.status != "sent" and r.last_error:
            print(f"  #{r.id}: {r.last_error}")
    return EXIT_OK


def cmd_alerts_test(args: argparse.Namespace) -> int:
    from inventory.alerts.channels import send
    from inventory.alerts.dispatcher import sample_payload
    from inventory.config import load_settings

    settings = load_settings(args.config)
    channel = settings.alerts.channels.get(args.channel)
    if channel is None:
        known = ", ".join(settings.alerts.channels) or "none"
        raise ConfigError(f"no alert channel named {args.channel!r} (configured: {known})")
    send(channel, sample_payload(channel))
    print(f"test message sent to channel {channel.name}")
    return EXIT_OK


def cmd_alerts_replay(args: argparse.Namespace) -> int:
    from inventory.alerts.dispatcher import replay
    from inventory.migrate import ensure_current

    _, engine, _ = _open(args)
    ensure_current(engine)
    if not replay(engine, args.alert_id):
        raise UsageError(
            f"no dead alert with id {args.alert_id}; `inventory alerts list --status dead` "
            "shows those that may be replayed"
        )
    print(f"alert {args.alert_id} re-queued; it goes out with the next dispatch")
    return EXIT_OK


def _emit(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    if args.json:
        print(json_line(payload))
    else:
        print(f"{payload['source']}: {payload['status']}: {payload.get('reason', '')}")


class _LineProgress:
    """The demo's progress: one line on a terminal's stderr, rewritten in place and erased
    before the demo says anything (so it never stays on screen)."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, source: str, pages: int, images: int, total: int | None) -> None:
        from inventory.terminal import plural

        of = f" of {total:,}" if total is not None else ""
        sys.stderr.write(f"\r\x1b[2K  {source}: {plural(pages, 'page')}, {images:,}{of} images")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self.shown = False


def _result_dict(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = asdict(result)
    data["duration_s"] = round(result.duration_s, 3)
    return data


def _result_line(result: Any) -> str:
    """One plain line per source (cron mail, pipes): stable wording, numbers with
    thousands separators."""
    from inventory.terminal import local, plural

    if not result.ok:
        return f"{result.source}: {result.status} (run {result.run_id}): {local(result)}"
    became = "".join(f", {n:,} {status}" for status, n in sorted(result.became.items()))
    line = (
        f"{result.source}: succeeded (run {result.run_id}) in {result.duration_s:.1f}s — "
        f"{plural(result.pages, 'page')}, {result.images_seen:,} seen, "
        f"{result.inserted:,} new, {result.changed:,} changed{became}, "
        f"{result.unchanged:,} unchanged, {result.disappeared:,} gone, "
        f"{result.reappeared:,} reappeared"
    )
    if result.missing:
        line += (
            f"\n  {result.missing:,} missing from this listing: marked gone once missing from "
            "[sync] confirm_gone_runs complete listings in a row"
        )
    if not result.listing_complete:
        line += f"\n  listing incomplete, nothing marked gone: {result.incomplete_reason}"
    if result.warning:
        line += f"\n  warning: {result.warning}"
    return line


def cmd_status(args: argparse.Namespace) -> int:
    from inventory.migrate import ensure_current
    from inventory.reports import freshness, source_status

    settings, engine, target = _open(args)
    ensure_current(engine)
    with engine.connect() as conn:
        rows = source_status(conn)
    if not args.json:
        print(f"database: {target.describe()}")
    if not rows and not args.json:
        print("no source has been synced yet")
        return EXIT_OK
    intervals = settings.scheduler.stale_after_intervals
    fresh = {r.name: freshness(r, settings) for r in rows}
    if args.json:
        for r in rows:
            record = asdict(r)
            # "source" as in every other command's JSON; stale: null when not scheduled here
            print(
                json_line(
                    {
                        "source": record.pop("name"),
                        **record,
                        "stale": {"ok": False, "STALE": True}.get(fresh[r.name]),
                        "retired": r.retired_at is not None,
                    }
                )
            )
        return EXIT_OK
    # Sources of one account (their regions, say) together, and its name beside them.
    accounts = any(r.account for r in rows)
    table = [
        (
            r.name,
            *((r.account or "-",) if accounts else ()),
            r.provider,
            r.location,
            r.run_status or "never",
            _age(r.age_s),
            _when(r.last_success_at),
            fresh[r.name],
            str(r.images),
            str(r.flagged),
            str(r.gone),
        )
        for r in rows
    ]
    header = (
        "SOURCE",
        *(("ACCOUNT",) if accounts else ()),
        "PROVIDER",
        "LOCATION",
        "LAST RUN",
        "AGE",
        "LAST SUCCESS",
        "FRESH",
        "IMAGES",
        "FLAGGED",
        "GONE",
    )
    print(format_table(header, table))
    for r in rows:
        if r.retired_at is not None:
            print(
                f"  {r.name}: retired {_when(r.retired_at)}: {r.provider} no longer lists "
                f"{r.location} (found by {r.discovered_by}); its images are kept as they were"
            )
        if fresh[r.name] == "STALE":
            print(f"  {r.name}: stale: no success within {intervals:g} schedule intervals")
        if r.run_status == "failed" and r.error:
            print(f"  {r.name}: last error: {r.error}")
        elif r.warning:
            print(f"  {r.name}: warning: {r.warning}")
    return EXIT_OK


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def _terminal_width() -> int | None:
    """The window's width when stdout is a terminal; None when piped (plain, uncut)."""
    import shutil

    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def cmd_report(args: argparse.Namespace) -> int:
    from inventory import reports
    from inventory.migrate import ensure_current
    from inventory.report_render import render

    since = args.since or ("7d" if args.kind == "changes" else None)
    try:
        cutoff = reports.parse_since(since) if since else None
    except ValueError as err:
        raise ConfigError(str(err)) from None
    filters = reports.Filters(
        cutoff, args.source, args.provider, args.status, args.account, args.limit
    )
    settings, engine, _ = _open(args)
    ensure_current(engine)
    with engine.connect() as conn:
        reports.check_filters(conn, args.kind, filters)
        if args.kind == "flagged":
            table = reports.report_flagged(conn, filters)
        elif args.kind == "changes":
            table = reports.report_changes(conn, filters)
        elif args.kind == "summary":
            table = reports.report_summary(conn, filters)
        else:
            schedules = {s.name: (s.schedule, s.timezone) for s in settings.sources if s.schedule}
            # A discovered source is scheduled as the regions = "*" table that found it.
            schedules.update(_discovered_schedules(engine, settings))
            table = reports.report_health(
                conn, filters, schedules, settings.scheduler.stale_after_intervals
            )
    width = _terminal_width()
    if args.kind == "health" and args.format == "table" and width is not None:
        from inventory.terminal import print_health

        print_health(table.columns, table.rows)  # readable at 80 columns, errors in full
    else:
        sys.stdout.write(render(args.format, table.columns, table.rows, terminal_width=width))
    if table.more:  # on stderr: csv and json stay just the rows
        print(
            f"inventory: the first {args.limit:,} rows; there are more (raise --limit)",
            file=sys.stderr,
        )
    return EXIT_OK


def _discovered_schedules(engine: Any, settings: Any) -> dict[str, tuple[str, str]]:
    from sqlalchemy import text

    tables = {t.name: (t.schedule, t.timezone) for t in settings.templates if t.schedule}
    if not tables:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, discovered_by FROM sources WHERE discovered_by = ANY(:names)"),
            {"names": list(tables)},
        ).all()
    return {name: tables[by] for name, by in rows}


def cmd_history(args: argparse.Namespace) -> int:
    from inventory.migrate import ensure_current
    from inventory.report_render import plain, render_table
    from inventory.reports import image_history

    _, engine, _ = _open(args)
    ensure_current(engine)
    with engine.connect() as conn:
        found = image_history(conn, args.image_id, args.source)
    if args.format == "json":
        payload = {
            "image": {k: plain(v) for k, v in found.image.items()},
            "intervals": [{k: plain(v) for k, v in r.items()} for r in found.intervals.dicts()],
            "events": [{k: plain(v) for k, v in r.items()} for r in found.events.dicts()],
        }
        print(json_line(payload))  # one object: the image, its intervals and its events
        return EXIT_OK
    image, width = found.image, _terminal_width()
    print(
        f"{image['provider_image_id']} ({image['name'] or 'no name'}) in {image['source']} "
        f"[{image['provider']} {image['location']}]: {image['effective_status']}"
    )
    seen = f", last seen {_when(image['last_seen_at'])}" if image["last_seen_at"] else ""
    print(f"first seen {_when(image['first_seen_at'])}{seen}")
    if image["missing_since"] is not None:
        print(
            f"missing since {_when(image['missing_since'])}: absent from the last "
            f"{image['missing_runs']} complete listing(s); marked gone once absent from "
            "[sync] confirm_gone_runs in a row"
        )
    print("\nstatus timeline")
    print(render_table(found.intervals.columns, found.intervals.rows, terminal_width=width))
    print("\nevents")
    print(render_table(found.events.columns, found.events.rows, terminal_width=width))
    return EXIT_OK


def cmd_grant_readonly(args: argparse.Namespace) -> int:
    from inventory.migrate import ensure_current
    from inventory.readonly import DEFAULT_ROLE, grant_readonly

    role = args.role or DEFAULT_ROLE
    _, engine, target = _open(args)
    ensure_current(engine)
    with engine.begin() as conn:
        created = grant_readonly(conn, role)
    what = "created and granted" if created else "granted"
    print(f"role {role} {what} read-only access to the report views: {target.describe()}")
    return EXIT_OK


def _not_embedded(args: argparse.Namespace) -> tuple[str, str] | None:
    from inventory.config import load_settings
    from inventory.dbserver import configured_url

    return configured_url(load_settings(args.config))


def _shown(url: str) -> str:
    """A configured database for messages: its password hidden, in the user part or a
    ``password=`` query parameter."""
    from inventory.dbserver import shown_url

    return shown_url(url)


def cmd_db_start(args: argparse.Namespace) -> int:
    from inventory.dbserver import start_service
    from inventory.invocation import command

    if configured := _not_embedded(args):
        raise ConfigError(
            f"the inventory uses {_shown(configured[0])} (from {configured[1]}); "
            f"`{command()} db start` runs the embedded server only: unset {configured[1]} "
            "to use it"
        )
    server, started = start_service(port=args.port)
    said = "started" if started else "already running"
    print(f"embedded PostgreSQL {said} in {server.pgdata} (pid {server.pid})")
    print(f"it keeps running until `{command()} db stop`")
    print(f"url: {server.url}" + (f"  (also TCP {server.tcp})" if server.tcp else ""))
    return EXIT_OK


def cmd_db_stop(args: argparse.Namespace) -> int:
    from inventory.dbserver import stop_service

    if configured := _not_embedded(args):
        raise ConfigError(
            f"the inventory uses {_shown(configured[0])} (from {configured[1]}), not the "
            "embedded server; stop that server with its own tools"
        )
    server, outcome = stop_service()
    if outcome == "stopped":
        print(f"embedded PostgreSQL in {server.pgdata} stopped")
    elif outcome == "in use":
        pids = ", ".join(map(str, server.holders))
        kept = "no longer kept running, but " if server.kept else ""
        print(
            f"embedded PostgreSQL in {server.pgdata}: {kept}{len(server.holders)} inventory "
            f"process(es) still use it (pid {pids}); the last one stops it as it exits"
        )
    else:
        print(f"embedded PostgreSQL in {server.pgdata} is not running")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    from inventory.dbserver import state
    from inventory.invocation import command

    if configured := _not_embedded(args):
        url, origin = configured
        if args.json:
            print(json_line({"embedded": False, "url": _shown(url), "from": origin}))
        else:
            print(f"the inventory uses {_shown(url)} (from {origin}), not the embedded server")
        return EXIT_OK
    server = state()
    if args.json:
        print(json_line({"embedded": True, **server.as_dict()}))
        return EXIT_OK if server.running else EXIT_SKIPPED
    if not server.running:
        made = "" if server.created else " (not created yet: the first command creates it)"
        print(f"embedded PostgreSQL in {server.pgdata}: not running{made}")
        print(f"start it with `{command()} db start` to query it between runs")
        return EXIT_SKIPPED  # as `pg_ctl status`: 3 when not running
    print(
        f"embedded PostgreSQL in {server.pgdata}: running (pid {server.pid}, since "
        f"{_when(server.started_at)})"
    )
    users = f"; used by {len(server.holders)} inventory process(es) now" if server.holders else ""
    if server.kept:
        print(f"  kept running until `{command()} db stop`{users}")
    else:
        print(f"  stops when the last inventory process using it exits{users}")
    print(f"  socket: {server.socket_dir} (port {server.port}); TCP: {server.tcp or 'none'}")
    print(f"  url: {server.url}")
    return EXIT_OK


def cmd_db_url(args: argparse.Namespace) -> int:
    from inventory.dbserver import start_service, state
    from inventory.invocation import command

    if configured := _not_embedded(args):
        url, origin = configured
        shown = _shown(url)
        print(shown.replace("postgresql+psycopg://", "postgresql://"))
        if shown != url:
            print(f"inventory: the password is hidden; it is in {origin}", file=sys.stderr)
        return EXIT_OK
    server = state()
    if not server.running:
        server, _ = start_service()
        print(
            f"inventory: started the embedded PostgreSQL in {server.pgdata}; it keeps "
            f"running until `{command()} db stop`",
            file=sys.stderr,
        )
    if args.tcp:
        if not server.tcp:
            raise ConfigError(
                f"the embedded PostgreSQL listens on a Unix socket only; `{command()} db stop`"
                f" then `{command()} db start --port 5433` adds a loopback TCP port"
            )
        print(f"postgresql://postgres@{server.tcp}/inventory")
    else:
        print(server.url)
    return EXIT_OK


def cmd_db_client(args: argparse.Namespace) -> int:
    from inventory.dbserver import run_client

    if configured := _not_embedded(args):
        url = configured[0]
    else:
        from inventory.db import embedded_data_dir, start_embedded

        url = start_embedded(embedded_data_dir())  # reuses a running one
    return run_client(args.tool, url, args.passed)


def cmd_demo(args: argparse.Namespace) -> int:
    from inventory.demo import run_demo

    if not sys.stderr.isatty():
        return run_demo(images=args.images, seed=args.seed)
    progress = _LineProgress()

    def out(text: str) -> None:
        progress.clear()
        print(text, flush=True)

    return run_demo(images=args.images, seed=args.seed, progress=progress, out=out)


def cmd_emulate(args: argparse.Namespace) -> int:
    emulated = PROVIDERS.emulated(args.provider)
    if args.print_config:
        if not args.port:
            raise ConfigError(
                "--print-config needs the emulator's own --port (not 0): start it with the "
                "same --port"
            )
        print(
            emulated.print_config(
                port=args.port,
                access_key_id=args.access_key_id,
                secret_access_key=args.secret_access_key,
            ),
            end="",
        )
        return EXIT_OK
    kwargs: dict[str, Any] = {
        "port": args.port,
        "images": args.images,
        "seed": args.seed,
        "access_key_id": args.access_key_id,
        "secret_access_key": args.secret_access_key,
    }
    if args.system_share is not None:
        if args.provider != "qingcloud":
            raise ConfigError("--system-share applies to the qingcloud emulator only")
        kwargs["system_share"] = args.system_share
    try:
        emulated.serve(**kwargs)
    except OSError as err:  # the port is taken, or not ours to bind
        raise ConfigError(
            f"cannot listen on 127.0.0.1:{args.port}: {err.strerror or err}; "
            "choose another --port (0 picks a free one)"
        ) from None
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
