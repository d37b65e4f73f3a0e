"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright,
against `inventory web` in its own process, over data from real syncs with churn.

Expected values come from what the emulator listed after each sync (normalized with the
provider's status table), never from the report queries the pages are built on. The
browser fails a test on any console error or uncaught page error.

Without Chromium these tests skip, saying how to install it; `.ci/run` installs it and sets
INVENTORY_BROWSER_TESTS=required, so in CI a missing browser fails instead. With
INVENTORY_WRITE_DOCS=1 the screenshots the tests take are copied into docs/dashboard/.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, make_url, text

from inventory.cli import EXIT_CONFIG
from inventory.providers.qingcloud.emulator import DEFAULT_OWNER
from inventory.providers.qingcloud.normalize import STATUS_MAP
from inventory.readonly import grant_readonly
from inventory.report_render import iso
from inventory.sync import sync_source

from .helpers import AT_ONCE, Emulator, row_versions
from .test_sync import FAST

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"
FLAGGED = {"deprecated", "suspended", "deleted", "ceased", "failed", "gone"}
WEB, DOWN, ACCOUNT = "qy-web", "qy-down", "acct-web"
PAGE_SIZE = 10
ANY = "0.0.0.0"  # noqa: S104 - every address: what the dashboard refuses without credentials
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TABLES = (
    "image_events, image_status_history, images, sync_runs, sources, alert_outbox, "
    "alert_attempts, source_health"
)


def _listed(emu: Emulator) -> dict[str, str]:
    return {
        i["image_id"]: STATUS_MAP[i["status"]].value
        for i in emu.catalogue.listing((("owner", DEFAULT_OWNER),))
    }


@dataclass
class World:
    snaps: list[dict[str, str]]  # qy-web: status per id after each sync, "gone" once unlisted
    moments: list[datetime]  # a moment after each of those syncs, before the next
    down: dict[str, str]  # qy-down: as its one successful sync listed it
    target: str  # available, then deprecated, then gone


def _build(engine: Engine) -> World:
    web = Emulator().reset(images=120, page_size=40)
    down = Emulator().reset(images=40, page_size=40, seed=5)
    snaps: list[dict[str, str]] = []
    moments: list[datetime] = []
    seen: set[str] = set()

    def sync_web() -> None:
        source = replace(web.source(WEB), account=ACCOUNT)  # an account, to filter by
        assert sync_source(engine, AT_ONCE, source, policy=FAST).ok
        now = _listed(web)
        seen.update(now)
        snaps.append({**dict.fromkeys(seen - set(now), "gone"), **now})
        moments.append(datetime.now(UTC))

    try:
        sync_web()
        assert sync_source(engine, AT_ONCE, down.source(DOWN), policy=FAST).ok
        down_listed = _listed(down)
        target = min(i for i, s in snaps[0].items() if s == "available")
        web.edit(target, status="deprecated")
        web.mutate(seed=1, deprecate=6, cease=2, delete=2, remove=3, add=4, rename=2)
        sync_web()
        web.catalogue.remove(target)
        web.mutate(seed=2, deprecate=3, remove=2)
        sync_web()
        down.fail(page=1, kind="http_503")
        assert sync_source(engine, AT_ONCE, down.source(DOWN), policy=FAST).status == "failed"
    finally:
        web.stop()
        down.stop()
    assert [s[target] for s in snaps] == ["available", "deprecated", "gone"]
    return World(snaps, moments, down_listed, target)


@pytest.fixture(scope="module")
def world(_session_engine: Engine) -> Iterator[World]:
    # Module-scoped: every test here only reads, so the syncs run once. Emptied after, as
    # the per-test `engine` fixture leaves the database for the next module.
    yield _build(_session_engine)
    with _session_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


class WebProcess:
    """`inventory web` in its own process; its URL read from the line it prints."""

    def __init__(
        self, tmp: Path, *args: str, config: str = "", env: dict[str, str] | None = None
    ) -> None:
        path = tmp / "web.toml"
        path.write_text(f"[web]\npage_size = {PAGE_SIZE}\n{config}")
        self.log = tmp / "web.log"
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inventory.cli", "--config", str(path), "web", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**_clean_env(), **(env or {})},
        )

    def url(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"http://\S+/", line)
        assert match, f"no URL in {line!r}; log: {self.log.read_text()}"
        return match.group(0)

    def wait(self) -> int:
        """The exit code of a start that is refused (without stopping it)."""
        code = self.proc.wait(timeout=60)
        self._log.close()
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self._log.close()
        return code


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_WEB_")}


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    web = WebProcess(tmp_path_factory.mktemp("web"), "--port", "0")
    try:
        yield web.url().rstrip("/")
    finally:
        assert web.stop() == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        message = (
            "Chromium is not installed: `apt-get install chromium chromium-driver` to run the "
            "dashboard's browser tests (.ci/run installs it)"
        )
        if os.environ.get("INVENTORY_BROWSER_TESTS") == "required":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Page:
    """A browser tab that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base: str, **context: Any) -> None:
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 860}, accept_downloads=True, **context
        )
        self.tab = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path: str, status: int = 200) -> Any:
        response = self.tab.goto(self.base + path)
        assert response is not None and response.status == status, path
        self.tab.wait_for_load_state("load")
        return self.tab

    def shoot(self, name: str, tmp: Path) -> None:
        shot = tmp / f"{name}.png"
        self.tab.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000  # a page with something on it
        if os.environ.get("INVENTORY_WRITE_DOCS"):
            DOCS.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS / shot.name)


@pytest.fixture
def page(browser: Any, site: str) -> Iterator[Page]:
    tab = Page(browser, site)
    yield tab
    tab.context.close()
    assert tab.errors == [], tab.errors


# -- reading the pages back ---------------------------------------------------------------


def table(tab: Any, selector: str) -> tuple[list[str], list[list[str]]]:
    """A report table's columns and each row's cells as the CSV has them (data-value)."""
    columns = tab.locator(f"{selector} thead th").evaluate_all(
        "ths => ths.map(th => th.dataset.column)"
    )
    rows = tab.locator(f"{selector} tbody tr:not(.empty)").evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.dataset.value))"
    )
    return columns, rows


def column(tab: Any, selector: str, name: str) -> list[str]:
    columns, rows = table(tab, selector)
    at = columns.index(name)
    return [row[at] for row in rows]


def total(tab: Any) -> int:
    text_ = tab.locator(".pager .count").inner_text()
    return 0 if text_ == "no rows" else int(text_.rsplit(" of ", 1)[1])


def every_page(tab: Any, selector: str, name: str) -> list[str]:
    """``name`` of every row over all pages, following the pager's next link."""
    found = column(tab, selector, name)
    while tab.locator("a[rel=next]").count():
        tab.click("a[rel=next]")
        tab.wait_for_load_state("load")
        found += column(tab, selector, name)
    return found


# -- the tests ----------------------------------------------------------------------------


def test_every_page_renders_and_is_captured(page: Page, world: World, tmp_path: Path) -> None:
    image = f"/image?source={WEB}&id={world.target}"
    for name, path in (
        ("overview", "/"),
        ("flagged", f"/flagged?source={WEB}"),
        ("changes", "/changes"),
        ("image", image),
        ("daily", "/daily?days=7"),
        ("as-of", f"/as-of?source={WEB}&at={iso(world.moments[1])}"),
    ):
        tab = page.open(path)
        assert tab.locator("h1").count() == 1
        assert tab.locator("header nav a[aria-current=page]").count() == (
            0 if name == "image" else 1
        )
        page.shoot(name, tmp_path)
    assert page.errors == []  # also checked after every test, by the fixture


def test_overview_lists_failures_first_with_counts_by_status(page: Page, world: World) -> None:
    tab = page.open("/")
    sources = tab.locator("#sources tbody tr[data-source]")
    assert sources.evaluate_all("rows => rows.map(r => r.dataset.source)") == [DOWN, WEB]
    down = tab.locator(f"tr[data-source={DOWN}]")
    assert down.locator("[data-column=outcome]").inner_text() == "failed"
    assert "503" in tab.locator("#sources tr.detail.failed").inner_text()
    listed = Counter(s for s in world.snaps[-1].values())
    for source, expected in ((WEB, listed), (DOWN, Counter(world.down.values()))):
        shown = tab.locator(f"tr[data-source={source}] .counts .count").all_inner_texts()
        assert dict(Counter({t.split()[0]: int(t.split()[1]) for t in shown})) == dict(expected)
    assert tab.locator(".totals li.bad b").inner_text() == "1"  # failing


def test_filters_narrow_the_flagged_table(page: Page, world: World) -> None:
    last = world.snaps[-1]
    every = {i for i, s in last.items() if s in FLAGGED} | {
        i for i, s in world.down.items() if s in FLAGGED
    }
    tab = page.open("/flagged")
    assert total(tab) == len(every) > PAGE_SIZE
    assert len(column(tab, "#flagged", "provider_image_id")) == PAGE_SIZE  # one page
    assert set(every_page(tab, "#flagged", "provider_image_id")) == every

    page.open("/flagged")
    tab.select_option("select[name=source]", WEB)
    tab.select_option("select[name=status]", "deprecated")
    tab.click("form.filters button[type=submit]")
    tab.wait_for_load_state("load")
    assert "source=qy-web" in tab.url and "status=deprecated" in tab.url
    deprecated = {i for i, s in last.items() if s == "deprecated"}
    assert total(tab) == len(deprecated) < len(every)
    assert set(column(tab, "#flagged", "status")) == {"deprecated"}
    assert set(column(tab, "#flagged", "source")) == {WEB}
    assert set(every_page(tab, "#flagged", "provider_image_id")) == deprecated

    page.open("/flagged")
    tab.select_option("select[name=account]", ACCOUNT)
    tab.click("form.filters button[type=submit]")
    tab.wait_for_load_state("load")
    ours = {i for i, s in last.items() if s in FLAGGED}
    assert total(tab) == len(ours) < len(every)
    assert set(column(tab, "#flagged", "account")) == {ACCOUNT}

    tab = page.open("/flagged?provider=qingcloud&since=2999-01-01")
    assert total(tab) == 0
    assert tab.locator("#flagged tr.empty").inner_text() == "No rows match."
    tab = page.open("/flagged?provider=tencent")
    assert total(tab) == 0


def test_a_filter_nothing_could_match_is_refused_with_the_choices(browser: Any, site: str) -> None:
    tab = Page(browser, site)
    try:
        shown = tab.open("/flagged?status=retired", status=400)
        message = shown.locator("[role=alert]").inner_text()
        assert "status 'retired' is not a status" in message and "deprecated" in message
        shown = tab.open("/changes?since=yesterday", status=400)
        assert "give an age such as 7d" in shown.locator("[role=alert]").inner_text()
        shown = tab.open("/image?source=qy-web&id=img-nothere", status=404)
        assert "no image 'img-nothere'" in shown.locator("[role=alert]").inner_text()
    finally:
        tab.context.close()
    # Chromium reports each 4xx document as a failed load, and nothing else.
    assert all("status of 40" in e for e in tab.errors), tab.errors


def test_the_csv_is_exactly_the_table_on_the_page(page: Page, world: World) -> None:
    tab = page.open(f"/flagged?source={WEB}&page=2")
    columns, rows = table(tab, "#flagged")
    assert rows and len(rows) <= PAGE_SIZE
    with tab.expect_download() as download:
        tab.click("a.download")
    got = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert got[0] == columns
    assert got[1:] == rows
    # What a person reads is the same value, but for times, shown to the second in UTC.
    shown = tab.locator("#flagged tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.innerText.trim()))"
    )
    for seen, exported in zip(shown, got[1:], strict=True):
        for name, a, b in zip(columns, seen, exported, strict=True):
            if name.endswith(("_at", "_since")):
                assert a == b[:19].replace("T", " ") + " UTC"
            else:
                assert a == (b or "-")


def test_the_timeline_shows_available_deprecated_gone_in_order(page: Page, world: World) -> None:
    tab = page.open(f"/image?source={WEB}&id={world.target}")
    segments = tab.locator("#timeline g.segment")
    assert segments.evaluate_all("gs => gs.map(g => g.dataset.status)") == [
        "available",
        "deprecated",
        "gone",
    ]
    spans = [
        (float(r.get_attribute("x")), float(r.get_attribute("width")))
        for r in (segments.nth(i).locator("rect") for i in range(3))
    ]
    width = float(tab.locator("#timeline").get_attribute("viewBox").split()[2])
    assert spans[0][0] == 0 and all(w > 0 for _, w in spans)
    for (x, w), (next_x, _) in pairwise(spans):
        assert x + w <= next_x + 0.02  # in order, no overlap (to the rounding of 2 places)
    assert spans[2][0] + spans[2][1] <= width + 0.02
    # Drawn and visible on the page, left to right.
    boxes = [segments.nth(i).locator("rect").bounding_box() for i in range(3)]
    assert all(b is not None and b["width"] > 1 for b in boxes)
    assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)
    # The colours are the statuses' own, and the open interval is the gone one.
    fills = {
        segments.nth(i).get_attribute("data-status"): segments.nth(i)
        .locator("rect")
        .evaluate("r => getComputedStyle(r).fill")
        for i in range(3)
    }
    assert len(set(fills.values())) == 3
    assert segments.nth(2).get_attribute("data-end") == ""
    assert tab.locator("#intervals tbody tr").evaluate_all(
        "rs => rs.map(r => r.dataset.status)"
    ) == ["available", "deprecated", "gone"]
    assert tab.locator("#events tbody tr").evaluate_all("rs => rs.map(r => r.dataset.kind)") == [
        "appeared",
        "status_changed",
        "disappeared",
    ]
    assert '"image_id": "' + world.target + '"' in tab.locator("#raw").inner_text()


def test_the_changes_feed_lists_each_transition(page: Page, world: World) -> None:
    expected = Counter()
    for before, after in zip(world.snaps, world.snaps[1:], strict=False):
        for image_id, status in before.items():
            if after.get(image_id, status) != status:
                expected[(image_id, status, after[image_id])] += 1
    tab = page.open(f"/changes?since=1h&source={WEB}")
    assert total(tab) == sum(expected.values())
    rows: list[tuple[str, str, str]] = []
    while True:
        columns, cells = table(tab, "#changes")
        at = [columns.index(c) for c in ("provider_image_id", "old_status", "new_status")]
        rows += [tuple(row[i] for i in at) for row in cells]  # type: ignore[misc]
        if not tab.locator("a[rel=next]").count():
            break
        tab.click("a[rel=next]")
        tab.wait_for_load_state("load")
    assert Counter(rows) == expected
    assert (world.target, "deprecated", "gone") in rows
    tab.select_option("select[name=status]", "gone")
    tab.click("form.filters button[type=submit]")
    tab.wait_for_load_state("load")
    gone = sum(n for (_, _, new), n in expected.items() if new == "gone")
    assert total(tab) == gone < sum(expected.values())


def test_the_daily_chart_counts_each_status_per_source(page: Page, world: World) -> None:
    tab = page.open("/daily?days=7")
    assert tab.locator("section.daily").evaluate_all("s => s.map(x => x.dataset.source)") == [
        DOWN,
        WEB,
    ]
    for source, statuses in ((WEB, world.snaps[-1]), (DOWN, world.down)):
        bars = tab.locator(f"section[data-source={source}] rect.bar").evaluate_all(
            "bs => bs.map(b => [b.dataset.day, b.dataset.status, Number(b.dataset.images)])"
        )
        today = max(day for day, _, _ in bars)  # every sync ran today
        assert {s: n for day, s, n in bars if day == today} == dict(Counter(statuses.values()))
    tab.select_option("select[name=source]", WEB)
    tab.click("form.filters button[type=submit]")
    tab.wait_for_load_state("load")
    assert tab.locator("section.daily").count() == 1


def test_as_of_shows_each_moment_as_the_syncs_left_it(page: Page, world: World, site: str) -> None:
    with httpx.Client(base_url=site) as client:
        for moment, statuses in zip(world.moments, world.snaps, strict=True):
            found = client.get("/api/as-of", params={"at": iso(moment), "source": WEB}).json()
            assert found["counts"] == dict(Counter(statuses.values()))
            assert found["total"] == len(statuses)
    # The page, through its form: the images deprecated after the second sync.
    tab = page.open(f"/as-of?at={iso(world.moments[1])}")
    tab.select_option("select[name=source]", WEB)
    tab.select_option("select[name=status]", "deprecated")
    tab.click("form.filters button[type=submit]")
    tab.wait_for_load_state("load")
    then = {i for i, s in world.snaps[1].items() if s == "deprecated"}
    assert world.target in then
    assert set(every_page(tab, "#as-of", "provider_image_id")) == then
    # A bar of the daily chart opens its images: today's gone ones of qy-web.
    tab = page.open(f"/daily?source={WEB}&days=7")
    today = tab.locator("rect.bar[data-status=gone]").last
    expected = int(today.get_attribute("data-images"))
    today.click()
    tab.wait_for_load_state("load")
    assert "/as-of?" in tab.url and "status=gone" in tab.url
    gone = {i for i, s in world.snaps[-1].items() if s == "gone"}
    assert total(tab) == expected == len(gone)
    assert set(every_page(tab, "#as-of", "provider_image_id")) == gone


def test_the_api_is_the_same_data_as_json(site: str, world: World) -> None:
    with httpx.Client(base_url=site) as client:
        sources = client.get("/api/sources").json()
        assert [s["source"] for s in sources] == [DOWN, WEB]
        flagged = client.get("/api/flagged", params={"source": WEB}).json()
        assert flagged["total"] == sum(s in FLAGGED for s in world.snaps[-1].values())
        assert len(flagged["rows"]) == PAGE_SIZE and flagged["pages"] > 1
        image = client.get("/api/image", params={"source": WEB, "id": world.target}).json()
        assert [i["status"] for i in image["intervals"]] == ["available", "deprecated", "gone"]
        assert image["image"]["raw"]["image_id"] == world.target
        csv_rows = list(csv.DictReader(io.StringIO(client.get("/flagged.csv").text)))
        api_rows = client.get("/api/flagged").json()["rows"]
        assert [r["provider_image_id"] for r in csv_rows] == [
            r["provider_image_id"] for r in api_rows
        ]
        bad = client.get("/api/changes", params={"source": "nope"})
        assert bad.status_code == 400 and "matches no synced source" in bad.json()["error"]
        assert client.post("/flagged").status_code == 405  # nothing is written, or routed to
        # Without credentials only requests to a loopback name are answered: a site whose
        # DNS name was pointed at 127.0.0.1 cannot read the inventory from a browser.
        rebound = client.get("/api/sources", headers={"host": "rebound.example:8080"})
        assert rebound.status_code == 403 and "allowed_hosts" in rebound.text
        assert client.get("/", headers={"host": "localhost"}).status_code == 200


def test_browsing_writes_nothing(page: Page, world: World, _session_engine: Engine) -> None:
    before = row_versions(_session_engine)
    for path in ("/", "/flagged", "/changes", f"/image?source={WEB}&id={world.target}", "/daily"):
        page.open(path)
    assert row_versions(_session_engine) == before


def test_the_dashboard_connections_cannot_write(world: World, database_url: str) -> None:
    import psycopg

    from inventory.config import Settings, WebSettings
    from inventory.db import read_only_engine
    from inventory.source import SecretRef

    # Options the URL carries are kept beside the dashboard's own.
    url = make_url(database_url).update_query_dict({"options": "-c search_path=public,pg_catalog"})
    literal = url.render_as_string(hide_password=False)
    web = WebSettings(database_url=SecretRef("literal", literal, "test"))
    engine, _ = read_only_engine(Settings(path=None, web=web))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW search_path")).scalar() == "public,pg_catalog"
            assert conn.execute(text("SHOW transaction_isolation")).scalar() == "repeatable read"
        with engine.connect() as conn, pytest.raises(Exception) as refused:
            conn.execute(text("DELETE FROM images"))
        assert isinstance(refused.value.orig, psycopg.errors.ReadOnlySqlTransaction)  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_a_non_loopback_address_needs_credentials(
    browser: Any, world: World, tmp_path: Path
) -> None:
    refused = WebProcess(tmp_path, "--host", ANY, "--port", "0")
    assert refused.wait() == EXIT_CONFIG
    message = refused.log.read_text()
    assert "0.0.0.0 is not a loopback address" in message
    assert "INVENTORY_WEB_TOKEN" in message and "INVENTORY_WEB_PASSWORD" in message

    token = "s3cret-dashboard-token"
    web = WebProcess(tmp_path, "--host", ANY, "--port", "0", env={"INVENTORY_WEB_TOKEN": token})
    try:
        base = web.url().replace(ANY, "127.0.0.1").rstrip("/")
        with httpx.Client(base_url=base) as client:
            denied = client.get("/")
            assert denied.status_code == 401
            assert denied.headers["www-authenticate"].startswith("Basic")
            assert client.get("/api/sources", auth=("me", "wrong")).status_code == 401
            bearer = {"authorization": f"Bearer {token}"}
            assert client.get("/api/sources", headers=bearer).status_code == 200
            assert client.get("/healthz").status_code == 200  # for probes, says nothing more
        tab = Page(browser, base, http_credentials={"username": "me", "password": token})
        try:
            assert tab.open("/").locator("#sources").count() == 1
        finally:
            tab.context.close()
        assert tab.errors == []
    finally:
        web.stop()
    assert token not in web.log.read_text()


def test_basic_auth_user_and_password_from_the_environment(world: World, tmp_path: Path) -> None:
    web = WebProcess(
        tmp_path,
        "--port",
        "0",
        env={"INVENTORY_WEB_USER": "ops", "INVENTORY_WEB_PASSWORD": "pa55-w0rd-long"},
    )
    try:
        base = web.url().rstrip("/")
        with httpx.Client(base_url=base) as client:  # once configured, loopback asks too
            assert client.get("/").status_code == 401
            assert client.get("/", auth=("ops", "pa55-w0rd-long")).status_code == 200
            assert client.get("/", auth=("root", "pa55-w0rd-long")).status_code == 401
            assert client.get("/", headers={"authorization": "Basic !!"}).status_code == 401
    finally:
        web.stop()
    half = WebProcess(tmp_path, "--port", "0", env={"INVENTORY_WEB_USER": "ops"})
    assert half.wait() == EXIT_CONFIG
    assert "INVENTORY_WEB_USER and INVENTORY_WEB_PASSWORD go together" in half.log.read_text()


def test_it_reads_as_the_read_only_role(
    world: World, tmp_path: Path, _session_engine: Engine
) -> None:
    role = f"inventory_reader_{os.getpid()}_{int(time.time())}"
    login = f"{role}_login"
    with _session_engine.begin() as conn:
        grant_readonly(conn, role)
        conn.execute(text(f"CREATE ROLE {login} LOGIN"))
    url = _session_engine.url.set(username=login).render_as_string(hide_password=False)
    env = {"INVENTORY_WEB_DATABASE_URL": url.replace("+psycopg", "")}
    try:
        # Not yet a member: it refuses to start, saying what to grant.
        refused = WebProcess(tmp_path, "--port", "0", config=f'role = "{role}"\n', env=env)
        assert refused.wait() != 0
        assert f"GRANT {role} TO <user>" in refused.log.read_text()
        with _session_engine.begin() as conn:
            conn.execute(text(f"GRANT {role} TO {login}"))
        web = WebProcess(tmp_path, "--port", "0", config=f'role = "{role}"\n', env=env)
        try:
            base = web.url().rstrip("/")
            with httpx.Client(base_url=base) as client:
                for path in ("/", "/flagged", "/changes", "/daily", "/api/sources"):
                    assert client.get(path).status_code == 200, path
                target = client.get("/api/image", params={"source": WEB, "id": world.target})
                assert target.status_code == 200
        finally:
            assert web.stop() == 0
        # A role granted before the dashboard existed could not read the schema's version:
        # the start says to grant again, not to migrate.
        with _session_engine.begin() as conn:
            conn.execute(text(f"REVOKE SELECT ON alembic_version FROM {role}"))
        stale = WebProcess(tmp_path, "--port", "0", config=f'role = "{role}"\n', env=env)
        assert stale.wait() == EXIT_CONFIG
        assert "run `inventory grant-readonly --role ROLE` again" in stale.log.read_text()
        with _session_engine.connect() as conn:
            # The role may read; it may not write, whatever the dashboard asked.
            assert not conn.execute(
                text("SELECT has_table_privilege(:r, 'images', 'INSERT')"), {"r": role}
            ).scalar()
    finally:
        with _session_engine.begin() as conn:
            for name in (login, role):
                conn.execute(text(f"DROP OWNED BY {name}"))
                conn.execute(text(f"DROP ROLE {name}"))
