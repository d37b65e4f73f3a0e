"""The dashboard's pages and JSON API: a Starlette app over the report queries.

Every page is rendered on the server from :mod:`inventory.reports` (the same queries as
``inventory report`` and ``inventory history``, so the two never disagree) with Jinja2
templates; the charts are inline SVG; there is no JavaScript. Each HTML page has a JSON
twin under ``/api/`` and each table a CSV of exactly the rows on the page. Only GET and
HEAD are routed: nothing here writes, and the engine's transactions are read-only anyway
(:func:`inventory.db.read_only_engine`); each request reads one snapshot, so a page's rows
and its count agree even while a sync commits.

Query parameters are the report options without dashes (``source``, ``account``,
``provider``, ``status``, ``since``, plus ``page``); a value no row could match is
answered 400 with the values that would do, as the CLI answers it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from inventory import reports
from inventory.config import Settings
from inventory.errors import UsageError
from inventory.providers import PROVIDERS
from inventory.report_render import csv_value, duration, iso, plain, render_csv
from inventory.web import charts
from inventory.web.security import Credentials, RequireCredentials, RequireLocalHost

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
_DAYS = (7, 30, 90, 365)
_HEADERS = {
    # No script runs on these pages, and no other site may frame or script them.
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def create_app(engine: Engine, settings: Settings, creds: Credentials | None = None) -> Any:
    """The dashboard as an ASGI app: behind :class:`RequireCredentials` when ``creds`` are
    configured, else behind :class:`RequireLocalHost`."""
    site = _Site(engine, settings)
    routes = [
        Route("/", site.page(site.overview, "overview.html", "/api/sources")),
        Route("/flagged", site.page(site.flagged, "flagged.html", "/api/flagged")),
        Route("/flagged.csv", site.csv(site.flagged)),
        Route("/changes", site.page(site.changes, "changes.html", "/api/changes")),
        Route("/changes.csv", site.csv(site.changes)),
        Route("/image", site.page(site.image, "image.html", "/api/image")),
        Route("/as-of", site.page(site.as_of, "as_of.html", "/api/as-of")),
        Route("/as-of.csv", site.csv(site.as_of)),
        Route("/daily", site.page(site.daily, "daily.html", "/api/daily")),
        Route("/api/sources", site.api(site.overview)),
        Route("/api/flagged", site.api(site.flagged)),
        Route("/api/changes", site.api(site.changes)),
        Route("/api/image", site.api(site.image)),
        Route("/api/as-of", site.api(site.as_of)),
        Route("/api/daily", site.api(site.daily)),
        Route("/healthz", site.healthz),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    app: Any = Starlette(routes=routes)
    if creds is not None and creds.configured:
        return RequireCredentials(app, creds)
    return RequireLocalHost(app, settings.web.allowed_hosts)


class Refused(Exception):
    """A request answered with an error: its status, the message, and (for an ambiguous
    image) links to what the person may have meant."""

    def __init__(self, status: int, message: str, choices: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.status, self.message, self.choices = status, message, list(choices)


#: What a page's data function returns: the template's context and the page's JSON.
Data = dict[str, Any]
DataFunction = Callable[[Request, Connection], Data]


class _Site:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.page_size = settings.web.page_size
        self.env = Environment(
            loader=PackageLoader("inventory.web", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            when=_when,
            age=_age,
            iso=lambda v: iso(v) if v else "",
            value=csv_value,
            duration=lambda v: duration(v) if v is not None else "-",
        )
        self.env.globals.update(as_of_link=_as_of_link)

    # -- the four kinds of response -----------------------------------------------------

    def page(self, data: DataFunction, template: str, api: str) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                context, status = self._run(data, request), 200
            except Refused as err:
                context, status = {"error": err.message, "choices": err.choices}, err.status
                template_ = "error.html"
            else:
                template_ = template
            query = request.url.query
            body = self.env.get_template(template_).render(
                path=request.url.path,
                api=f"{api}?{query}" if query else api,
                now=datetime.now(UTC),
                **context,
            )
            return HTMLResponse(body, status, headers=_HEADERS)

        return endpoint

    def api(self, data: DataFunction) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                payload = self._run(data, request)["json"]
            except Refused as err:
                return JSONResponse({"error": err.message}, err.status, headers=_HEADERS)
            return JSONResponse(plain(payload), headers=_HEADERS)

        return endpoint

    def csv(self, data: DataFunction) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                found = self._run(data, request)
            except Refused as err:
                return PlainTextResponse(f"{err.message}\n", err.status, headers=_HEADERS)
            table: reports.Table = found["table"]
            name = request.url.path.strip("/").removesuffix(".csv")
            return Response(
                render_csv(table.columns, table.rows),
                media_type="text/csv; charset=utf-8",
                headers={
                    **_HEADERS,
                    "content-disposition": (
                        f'attachment; filename="{name}-page-{found["page"]}.csv"'
                    ),
                },
            )

        return endpoint

    def healthz(self, request: Request) -> Response:
        """For probes, without credentials: so it says whether, never why."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (DBAPIError, PoolTimeout) as err:
            log.warning("healthz: the database does not answer: %s", _first_line(err))
            return PlainTextResponse("database unavailable\n", 503)
        return PlainTextResponse("ok\n")

    def _run(self, data: DataFunction, request: Request) -> Data:
        """``data`` in one read-only snapshot; every failure a person can act on becomes
        :class:`Refused` with its status."""
        if any("\x00" in v for v in request.query_params.values()):
            raise Refused(400, "query parameters cannot hold NUL characters")
        try:
            with self.engine.connect() as conn:
                return data(request, conn)
        except UsageError as err:
            raise Refused(400, str(err)) from None
        except PoolTimeout:
            raise Refused(
                503,
                "the dashboard is busy: every database connection is in use; try again in a moment",
            ) from None
        except DBAPIError as err:
            first = _first_line(err)
            log.warning("dashboard query failed: %s", first)
            raise Refused(503, f"the database refused or could not answer: {first}") from None

    def _choices(self, conn: Connection) -> dict[str, list[str]]:
        """What the filter forms offer: the synced sources, and their accounts if any."""
        rows = conn.execute(text("SELECT name, account FROM sources ORDER BY name")).all()
        accounts = sorted({r.account for r in rows if r.account})
        return {"sources": [r.name for r in rows], "accounts": accounts}

    # -- pages --------------------------------------------------------------------------

    def overview(self, request: Request, conn: Connection) -> Data:
        rows = overview_rows(conn, self.settings)
        totals = {
            "sources": len(rows),
            "failing": sum(r["attention"] == "failed" for r in rows),
            "stale": sum(r["attention"] == "stale" for r in rows),
            "images": sum(r["images"] for r in rows),
            "flagged": sum(r["flagged"] for r in rows),
        }
        return {"rows": rows, "totals": totals, "json": rows}

    def flagged(self, request: Request, conn: Connection) -> Data:
        return self._listing(request, conn, "flagged")

    def changes(self, request: Request, conn: Connection) -> Data:
        return self._listing(request, conn, "changes")

    def as_of(self, request: Request, conn: Connection) -> Data:
        return self._listing(request, conn, "as-of")

    def _listing(self, request: Request, conn: Connection, kind: str) -> Data:
        """A paged report: the flagged images, the changes (since 7d unless told), or the
        status of every image at a moment (``at``, default now: the as-of function)."""
        query = request.query_params
        page = _whole(query.get("page") or "1", "page", 1, 10**9)
        moment = "at" if kind == "as-of" else "since"
        names = ("source", *(() if kind == "as-of" else ("account",)), "provider", "status")
        given = {k: query.get(k) or None for k in (*names, moment)}
        given[moment] = given[moment] or ("7d" if kind == "changes" else None)
        written = given[moment]
        try:
            when = reports.parse_since(written, option=moment) if written else None
        except ValueError as err:
            raise UsageError(str(err)) from None
        at = (when or conn.execute(text("SELECT now()")).scalar_one()) if kind == "as-of" else None
        filters = reports.Filters(
            since=when if kind != "as-of" else None,
            source=given["source"],
            account=given.get("account"),
            provider=given["provider"],
            status=given["status"],
            limit=self.page_size,
            offset=(page - 1) * self.page_size,
        )
        reports.check_filters(conn, kind, filters, label=kind, flag="")
        counts: dict[str, int] | None = None
        if at is not None:
            found = reports.as_of_counts(conn, at, filters.source)
            counts = charts.in_status_order(found)
        if counts is not None and filters.provider is None:  # the counts are the total
            total = counts.get(filters.status, 0) if filters.status else sum(counts.values())
        else:
            total = reports.count_rows(conn, kind, filters, at)
        pages = max((total + self.page_size - 1) // self.page_size, 1)
        if page > pages:
            raise Refused(404, f"page {page}: these filters have {pages} page(s) of rows")
        if kind == "as-of":
            assert at is not None
            table = reports.report_as_of(conn, filters, at)
        else:
            table = {"flagged": reports.report_flagged, "changes": reports.report_changes}[kind](
                conn, filters
            )
        shown = {k: v for k, v in given.items() if v}
        data: Data = {
            **self._choices(conn),
            "table": table,
            "given": given,
            "page": page,
            "pages": pages,
            "total": total,
            "first": filters.offset + 1 if table.rows else 0,
            "last": filters.offset + len(table.rows),
            "link": lambda **changes: _link(request.url.path, {**shown, **changes}),
            "csv": _link(f"{request.url.path}.csv", {**shown, "page": page}),
            "statuses": reports.report_statuses(kind),
            "providers": sorted(PROVIDERS),
            "json": {
                "rows": table.dicts(),
                "page": page,
                "pages": pages,
                "total": total,
                "page_size": self.page_size,
            },
        }
        if at is not None:
            data.update(at=at, counts=counts)
            data["json"].update(at=at, counts=counts)
        return data

    def image(self, request: Request, conn: Connection) -> Data:
        image_id = request.query_params.get("id")
        source = request.query_params.get("source") or None
        if not image_id:
            raise UsageError("image: give its provider id: /image?id=...&source=...")
        try:
            history = reports.image_history(conn, image_id, source)
        except reports.AmbiguousImage as err:
            links = [(s, _link("/image", {"source": s, "id": image_id})) for s in err.sources]
            raise Refused(
                400, f"image {image_id!r} is in several sources; choose one:", links
            ) from None
        except UsageError as err:
            raise Refused(404, str(err)) from None
        record = reports.image_record(conn, history.image["image_id"])
        intervals = history.intervals.dicts()
        now = conn.execute(text("SELECT now()")).scalar_one()
        return {
            "image": history.image,
            "record": record,
            "intervals": intervals,
            "events": history.events.dicts(),
            "timeline": charts.timeline(intervals, now),
            "raw": json.dumps(record["raw"], indent=2, sort_keys=True, ensure_ascii=False),
            "json": {
                "image": {**history.image, **record},
                "intervals": intervals,
                "events": history.events.dicts(),
            },
        }

    def daily(self, request: Request, conn: Connection) -> Data:
        days = _whole(request.query_params.get("days") or "30", "days", 1, 366)
        source = request.query_params.get("source") or None
        if source is not None:
            reports.check_filters(conn, "summary", reports.Filters(source=source), "daily", "")
        rows = reports.daily_counts(conn, days, source).dicts()
        return {
            **self._choices(conn),
            "charts": charts.daily_charts(rows),
            "days": days,
            "day_choices": sorted({*_DAYS, days}),
            "given": {"source": source},
            "json": rows,
        }


def overview_rows(conn: Connection, settings: Settings) -> list[dict[str, Any]]:
    """Each source with its last run, outcome, age, freshness and image counts by status;
    failures first, then stale sources, then the rest by name. ``flagged`` counts what the
    flagged page lists (gone and missing images included)."""
    health = {r["source"]: r for r in reports.report_health(conn, reports.Filters()).dicts()}
    flagged = reports.flagged_per_source(conn)
    counts = reports.status_counts(conn)
    rows = []
    for s in reports.source_status(conn):
        fresh = reports.freshness(s, settings)
        cadence_stale = health.get(s.name, {}).get("stale")
        if fresh == "-" and cadence_stale is not None:
            fresh = "stale (by cadence)" if cadence_stale else "ok (by cadence)"
        if s.run_status in ("failed", "aborted"):
            attention = "failed"
        elif fresh.lower().startswith("stale"):
            attention = "stale"
        elif s.retired_at is not None:
            attention = "retired"
        else:
            attention = ""
        rows.append(
            {
                "source": s.name,
                "provider": s.provider,
                "location": s.location,
                "account": s.account,
                "last_run_id": s.run_id,
                "last_run_status": s.run_status or "never",
                "last_run_started_at": s.started_at,
                "last_run_finished_at": s.finished_at,
                "age_s": s.age_s,
                "last_success_at": s.last_success_at,
                "fresh": fresh,
                "attention": attention,
                "images": s.images,
                "flagged": flagged.get(s.name, 0),
                "gone": s.gone,
                "counts": charts.in_status_order(counts.get(s.name, {})),
                "error": s.error,
                "warning": s.warning,
            }
        )
    order = {"failed": 0, "stale": 1, "": 2, "retired": 3}
    rows.sort(key=lambda r: (order[str(r["attention"])], str(r["source"])))
    return rows


def _whole(value: str, name: str, low: int, high: int) -> int:
    # isdecimal alone admits the digits of other scripts: ASCII ones only, as in a URL.
    if not (value.isascii() and value.isdecimal()) or not low <= int(value) <= high:
        raise UsageError(f"{name} {value!r}: give a whole number from {low} to {high}")
    return int(value)


def _link(path: str, params: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "") and not (k == "page" and v == 1)}
    return f"{path}?{urlencode(kept)}" if kept else path


def _as_of_link(source: str, day: date, status: str) -> str:
    """The as-of page of one bar of the daily chart: ``status`` images of ``source`` at
    the end of ``day`` (UTC), or now for today."""
    end = datetime.combine(day + timedelta(days=1), time.min, UTC) - timedelta(microseconds=1)
    at = iso(end) if end < datetime.now(UTC) else None
    return _link("/as-of", {"at": at, "source": source, "status": status})


def _when(moment: datetime | None) -> Markup | str:
    if moment is None:
        return "-"
    shown = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time>').format(iso(moment), shown)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else duration(timedelta(seconds=int(seconds))) + " ago"


def _first_line(err: Exception) -> str:
    """What the database said, first line: never the statement or its values."""
    said = str(getattr(err, "orig", None) or err).strip()
    return said.splitlines()[0] if said else type(err).__name__
