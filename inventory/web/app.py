"""The dashboard's pages and JSON API: a Starlette app over the report queries.

Every page is rendered on the server from :mod:`inventory.reports` (the same queries as
``inventory report`` and ``inventory history``, so the two never disagree) with Jinja2
templates; the charts are inline SVG; there is no JavaScript. Each HTML page has a JSON
twin under ``/api/`` and each table a CSV of exactly the rows on the page. Only GET and
HEAD are routed: nothing here writes, and the engine's transactions are read-only anyway
(:func:`inventory.db.read_only_engine`).

Query parameters are the report options without dashes (``source``, ``provider``,
``status``, ``since``, plus ``page``); a value no row could match is answered 400 with the
values that would do, as the CLI answers it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from inventory import reports
from inventory.config import Settings
from inventory.errors import UsageError
from inventory.models import HISTORY_STATUSES
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
        Route("/", site.page(site.overview, "overview.html")),
        Route("/flagged", site.page(site.flagged, "flagged.html")),
        Route("/flagged.csv", site.csv(site.flagged)),
        Route("/changes", site.page(site.changes, "changes.html")),
        Route("/changes.csv", site.csv(site.changes)),
        Route("/image", site.page(site.image, "image.html")),
        Route("/daily", site.page(site.daily, "daily.html")),
        Route("/api/sources", site.api(site.overview)),
        Route("/api/flagged", site.api(site.flagged)),
        Route("/api/changes", site.api(site.changes)),
        Route("/api/image", site.api(site.image)),
        Route("/api/daily", site.api(site.daily)),
        Route("/healthz", site.healthz),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    app: Any = Starlette(routes=routes)
    if creds is not None and creds.configured:
        return RequireCredentials(app, creds)
    return RequireLocalHost(app, settings.web.allowed_hosts)


class NotFound(Exception):
    pass


#: What a page's data function returns: the template's context and the page's JSON.
Data = dict[str, Any]


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
        self.env.globals.update(
            rank=charts.status_rank, FLAGGED=sorted(_flagged_statuses(), key=charts.status_rank)
        )

    # -- the four kinds of response -----------------------------------------------------

    def page(self, data: Callable[[Request, Connection], Data], template: str) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                context = self._run(data, request)
                status = 200
            except (UsageError, ValueError) as err:
                context, status = {"error": str(err)}, 400
            except NotFound as err:
                context, status = {"error": str(err)}, 404
            except DBAPIError as err:
                context, status = {"error": _database_error(err)}, 503
            context.setdefault("query", dict(request.query_params))
            for name, values in self._choices().items():
                context.setdefault(name, values)
            name = template if status == 200 else "error.html"
            body = self.env.get_template(name).render(
                request=request, path=request.url.path, now=datetime.now(UTC), **context
            )
            return HTMLResponse(body, status, headers=_HEADERS)

        return endpoint

    def api(self, data: Callable[[Request, Connection], Data]) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                payload = self._run(data, request)["json"]
                return JSONResponse(_plain(payload), headers=_HEADERS)
            except (UsageError, ValueError) as err:
                return JSONResponse({"error": str(err)}, 400, headers=_HEADERS)
            except NotFound as err:
                return JSONResponse({"error": str(err)}, 404, headers=_HEADERS)
            except DBAPIError as err:
                return JSONResponse({"error": _database_error(err)}, 503, headers=_HEADERS)

        return endpoint

    def csv(self, data: Callable[[Request, Connection], Data]) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                table: reports.Table = self._run(data, request)["table"]
            except (UsageError, ValueError) as err:
                return PlainTextResponse(f"{err}\n", 400, headers=_HEADERS)
            except DBAPIError as err:
                return PlainTextResponse(f"{_database_error(err)}\n", 503, headers=_HEADERS)
            name = request.url.path.strip("/").replace(".csv", "")
            page = request.query_params.get("page", "1")
            return Response(
                render_csv(table.columns, table.rows),
                media_type="text/csv; charset=utf-8",
                headers={
                    **_HEADERS,
                    "content-disposition": f'attachment; filename="{name}-page-{page}.csv"',
                },
            )

        return endpoint

    def healthz(self, request: Request) -> Response:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as err:
            return PlainTextResponse(f"database: {_database_error(err)}\n", 503)
        return PlainTextResponse("ok\n")

    def _run(self, data: Callable[[Request, Connection], Data], request: Request) -> Data:
        with self.engine.connect() as conn:
            return data(request, conn)

    def _choices(self) -> dict[str, list[str]]:
        """What the filter forms offer: the synced sources, and their accounts if any."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text("SELECT name, account FROM sources ORDER BY name")).all()
        except DBAPIError:
            return {"sources": [], "accounts": []}
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
        statuses = sorted(
            {s for r in rows for s in r["counts"]}, key=lambda s: (charts.status_rank(s), s)
        )
        return {"rows": rows, "totals": totals, "statuses": statuses, "json": rows}

    def flagged(self, request: Request, conn: Connection) -> Data:
        return self._listing(request, conn, "flagged", reports.report_flagged, since=None)

    def changes(self, request: Request, conn: Connection) -> Data:
        return self._listing(request, conn, "changes", reports.report_changes, since="7d")

    def _listing(
        self,
        request: Request,
        conn: Connection,
        kind: str,
        report: Callable[[Connection, reports.Filters], reports.Table],
        since: str | None,
    ) -> Data:
        query = request.query_params
        page = _page(query.get("page"))
        names = ("source", "account", "provider", "status", "since")
        given = {k: query.get(k) or None for k in names}
        given["since"] = given["since"] or since
        filters = reports.Filters(
            since=(reports.parse_since(given["since"], option="since") if given["since"] else None),
            source=given["source"],
            account=given["account"],
            provider=given["provider"],
            status=given["status"],
            limit=self.page_size,
            offset=(page - 1) * self.page_size,
        )
        reports.check_filters(conn, kind, filters, label=kind, flag="")
        table = report(conn, filters)
        total = reports.count_rows(conn, kind, filters)
        pages = max((total + self.page_size - 1) // self.page_size, 1)
        shown = {k: v for k, v in given.items() if v}
        first = filters.offset + 1 if table.rows else 0
        return {
            "table": table,
            "given": given,
            "page": page,
            "pages": pages,
            "total": total,
            "first": first,
            "last": filters.offset + len(table.rows),
            "link": lambda **changes: _link(request.url.path, {**shown, **changes}),
            "csv": _link(f"{request.url.path}.csv", {**shown, "page": page}),
            "statuses": _listing_statuses(kind),
            "providers": sorted(PROVIDERS),
            "json": {
                "rows": table.dicts(),
                "page": page,
                "pages": pages,
                "total": total,
                "page_size": self.page_size,
            },
        }

    def image(self, request: Request, conn: Connection) -> Data:
        image_id = request.query_params.get("id")
        if not image_id:
            raise UsageError("image: give its provider id: /image?id=...&source=...")
        try:
            history = reports.image_history(conn, image_id, request.query_params.get("source"))
        except UsageError as err:
            if "several sources" in str(err):
                raise
            raise NotFound(str(err)) from None
        record = reports.image_record(conn, history.image["image_id"])
        intervals = history.intervals.dicts()
        now = conn.execute(text("SELECT now()")).scalar_one()
        return {
            "image": history.image,
            "record": record,
            "intervals": intervals,
            "events": history.events.dicts(),
            "timeline": charts.timeline(intervals, now),
            "raw": _pretty(record["raw"]),
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
            "charts": charts.daily_charts(rows),
            "days": days,
            "choices": _DAYS,
            "given": {"source": source},
            "json": rows,
        }


def overview_rows(conn: Connection, settings: Settings) -> list[dict[str, Any]]:
    """Each source with its last run, outcome, age, freshness and image counts by status;
    failures first, then stale sources, then the rest by name."""
    health = {r["source"]: r for r in reports.report_health(conn, reports.Filters()).dicts()}
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for r in reports.report_summary(conn, reports.Filters()).dicts():
        counts[r["source"]][r["status"]] = int(r["images"])
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
                "flagged": s.flagged,
                "gone": s.gone,
                "counts": dict(
                    sorted(counts[s.name].items(), key=lambda c: charts.status_rank(c[0]))
                ),
                "error": s.error,
                "warning": s.warning,
            }
        )
    order = {"failed": 0, "stale": 1, "": 2, "retired": 3}
    rows.sort(key=lambda r: (order[str(r["attention"])], str(r["source"])))
    return rows


def _flagged_statuses() -> list[str]:
    return _listing_statuses("flagged")


def _listing_statuses(kind: str) -> list[str]:
    from inventory.records import FLAGGED_STATUSES

    if kind == "flagged":
        return [*(s for s in HISTORY_STATUSES if s in FLAGGED_STATUSES or s == "gone"), "missing"]
    return list(HISTORY_STATUSES)


def _page(value: str | None) -> int:
    return _whole(value or "1", "page", 1, 10**9)


def _whole(value: str, name: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise UsageError(f"{name} {value!r}: give a whole number from {low} to {high}")
    return int(value)


def _link(path: str, params: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "") and not (k == "page" and v == 1)}
    return f"{path}?{urlencode(kept)}" if kept else path


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return plain(value)


def _pretty(raw: Any) -> str:
    import json

    return json.dumps(raw, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _when(moment: datetime | None) -> Markup | str:
    if moment is None:
        return "-"
    shown = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time>').format(iso(moment), shown)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    from datetime import timedelta

    return duration(timedelta(seconds=int(seconds))) + " ago"


def _database_error(err: DBAPIError) -> str:
    """One line for a page: what the database said, never the statement or its values."""
    first = str(err.orig).strip().splitlines()[0] if err.orig is not None else type(err).__name__
    log.warning("dashboard query failed: %s", first)
    return f"the database refused or could not answer: {first}"
