"""The dashboard's answers to odd requests, over HTTP from a real server on loopback.

Two sources synced from emulators with the same seed hold the same image ids, so an id
alone is ambiguous. Every odd value must get a 4xx that says what would do, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from inventory.config import Settings, WebSettings
from inventory.sync import sync_source
from inventory.web import Dashboard, open_dashboard

from .helpers import AT_ONCE, Emulator
from .test_sync import FAST

pytestmark = pytest.mark.integration


@pytest.fixture
def site(engine: Engine) -> Iterator[tuple[httpx.Client, str]]:
    one, two = Emulator().reset(images=12, page_size=12), Emulator().reset(images=12, page_size=12)
    try:
        for emu, name in ((one, "qy-one"), (two, "qy-two")):
            assert sync_source(engine, AT_ONCE, emu.source(name), policy=FAST).ok
        shared = min(one.visible_ids() & two.visible_ids())
    finally:
        one.stop()
        two.stop()
    dashboard: Dashboard = open_dashboard(
        Settings(path=None, web=WebSettings(page_size=5)), "127.0.0.1", 0
    ).start()
    try:
        with httpx.Client(base_url=dashboard.url, timeout=30) as client:
            yield client, shared
    finally:
        dashboard.stop()


def test_an_id_in_two_sources_offers_both(site: tuple[httpx.Client, str]) -> None:
    client, shared = site
    for params in ({"id": shared}, {"id": shared, "source": ""}):
        page = client.get("/image", params=params)
        assert page.status_code == 400
        assert "is in several sources; choose one" in page.text
        for source in ("qy-one", "qy-two"):
            assert f'href="/image?source={source}&amp;id={shared}"' in page.text
    assert client.get("/image", params={"id": shared, "source": "qy-two"}).status_code == 200
    assert client.get("/api/image", params={"id": shared}).status_code == 400


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/flagged?since=99999999999d", 400, "before the year 1"),
        ("/api/changes?since=200000w", 400, "before the year 1"),
        ("/flagged?page=%D9%A1", 400, "give a whole number"),  # an Arabic-Indic one
        ("/flagged.csv?page=%D9%A1", 400, "give a whole number"),
        ("/flagged?page=%C2%B2", 400, "give a whole number"),  # a superscript two
        ("/flagged?page=0", 400, "give a whole number from 1"),
        ("/changes?page=999", 404, "page(s) of rows"),
        ("/api/flagged?page=999", 404, "page(s) of rows"),
        ("/flagged?source=%00", 400, "NUL"),
        ("/image?id=img-%00", 400, "NUL"),
        ("/image", 400, "give its provider id"),
        ("/daily?days=400", 400, "from 1 to 366"),
        ("/daily?source=nope", 400, "matches no synced source"),
        ("/api/as-of?at=yesterday", 400, "at 'yesterday': give an age"),
        ("/api/as-of?status=missing", 400, "status 'missing' is not a status"),
        ("/api/as-of?source=nope", 400, "matches no synced source"),
    ],
)
def test_odd_values_get_a_clear_4xx(
    site: tuple[httpx.Client, str], path: str, status: int, says: str
) -> None:
    client, _ = site
    answer = client.get(path)
    assert answer.status_code == status, answer.text
    assert says in answer.text


def test_a_days_value_not_offered_is_kept_selected(site: tuple[httpx.Client, str]) -> None:
    client, _ = site
    page = client.get("/daily?days=14")
    assert page.status_code == 200
    assert "<option selected>14</option>" in page.text


def test_healthz_says_whether_not_why(site: tuple[httpx.Client, str]) -> None:
    client, _ = site
    assert client.get("/healthz").text == "ok\n"
