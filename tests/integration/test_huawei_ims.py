"""Huawei IMS v1.1 (Glance v1): the emulator over real HTTP, and syncs into PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from inventory.config import SecretRef, SourceConfig
from inventory.emulation import EmulatorServer, FaultRule
from inventory.http import RetryPolicy
from inventory.providers.huawei_common.emulator_iam import (
    DEFAULT_DOMAIN_NAME,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    IamService,
)
from inventory.providers.huawei_common.token import TOKEN_CACHE
from inventory.providers.huawei_ims.emulator import ImsApp, ImsCatalogue, generate_images
from inventory.sync import RunResult, sync_source

from .helpers import AT_ONCE, fetch_all, history_of, row_versions

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)


class Ims:
    def __init__(self, images: int, seed: int = 31) -> None:
        self.iam = IamService()
        self.catalogue = ImsCatalogue.generate(images, seed, self.iam.projects["cn-north-4"])
        self.app = ImsApp(self.catalogue, iam=self.iam)
        self.server = EmulatorServer(self.app).start()

    @property
    def url(self) -> str:
        return self.server.url

    def visible_ids(self) -> set[str]:
        """The ids a default listing (no filters) returns."""
        return {image["id"] for image in self.catalogue.listing()}

    def source(
        self, *, page_size: int = 100, filters: dict[str, Any] | None = None
    ) -> SourceConfig:
        os.environ["INVENTORY_TEST_HW_USER"] = DEFAULT_USERNAME
        os.environ["INVENTORY_TEST_HW_PASSWORD"] = DEFAULT_PASSWORD
        return SourceConfig(
            name="ims-test",
            provider="huawei-ims-v1",
            location="cn-north-4",
            endpoint=self.url,
            page_size=page_size,
            timeout_s=5.0,
            filters=filters or {},
            credentials={
                "username": SecretRef("env", "INVENTORY_TEST_HW_USER", "test"),
                "password": SecretRef("env", "INVENTORY_TEST_HW_PASSWORD", "test"),
            },
            options={"domain_name": DEFAULT_DOMAIN_NAME, "iam_endpoint": self.url},
        )

    def token(self, scope: dict[str, Any] | None = None) -> str:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": DEFAULT_USERNAME,
                            "password": DEFAULT_PASSWORD,
                            "domain": {"name": DEFAULT_DOMAIN_NAME},
                        }
                    },
                },
                "scope": scope or {"project": {"name": "cn-north-4"}},
            }
        }
        response = httpx.post(f"{self.url}/v3/auth/tokens", json=body)
        assert response.status_code == 201
        return response.headers["X-Subject-Token"]

    def get(self, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"X-Auth-Token": token} if token else {}
        return httpx.get(f"{self.url}/v1.1/images/detail", params=params, headers=headers)

    def fail(self, *, page: int | None, kind: str, times: int | None = None) -> None:
        self.app.faults.add(FaultRule(kind=kind, page=page, times=times))


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    TOKEN_CACHE.clear()
    yield
    TOKEN_CACHE.clear()


@pytest.fixture
def make_ims() -> Iterator[Any]:
    started: list[Ims] = []

    def make(images: int = 300, seed: int = 31) -> Ims:
        emu = Ims(images, seed)
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.server.stop()


# -- the emulator -----------------------------------------------------------------------------


def test_token_is_required_and_must_be_project_scoped(make_ims: Any) -> None:
    emu = make_ims(20)
    missing = emu.get()
    assert missing.status_code == 401
    assert missing.json()["error_code"] == "APIGW.0301"
    assert emu.get("MIIbogus").json()["error_code"] == "APIGW.0301"
    domain_token = emu.token({"domain": {"name": DEFAULT_DOMAIN_NAME}})
    assert emu.get(domain_token).status_code == 401
    ok = emu.get(emu.token())
    assert ok.status_code == 200 and "X-Openstack-Request-Id" in ok.headers
    image = ok.json()["images"][0]
    assert "total" not in ok.json()
    assert not image["created_at"].endswith("Z") and "." in image["created_at"]


def test_marker_paging_limits_and_invalid_marker(make_ims: Any) -> None:
    emu = make_ims(1200)
    token = emu.token()
    visible = emu.catalogue.listing()
    assert len(emu.get(token).json()["images"]) == 25  # Glance's default page
    assert len(emu.get(token, limit=5000).json()["images"]) == min(1000, len(visible))
    seen: list[str] = []
    marker = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if marker:
            params["marker"] = marker
        page = emu.get(token, **params).json()["images"]
        seen += [i["id"] for i in page]
        if len(page) < 100:
            break
        marker = page[-1]["id"]
    assert seen == [i["id"] for i in visible]
    bad = emu.get(token, marker="no-such-image")
    assert bad.status_code == 400
    assert bad.json() == {"error": {"code": "IMG.0001", "message": "Invalid marker"}}


def test_windows_and_deleted_images_are_hidden(make_ims: Any) -> None:
    emu = make_ims(300)
    token = emu.token()
    listed = emu.get(token, limit=1000).json()["images"]
    assert all(i["properties"]["__os_type"] != "Windows" for i in listed)
    assert len(listed) < len(emu.catalogue)  # Windows images exist but are not returned
    deleted = emu.catalogue.mutate(1, delete=3)["delete"]
    after = {i["id"] for i in emu.get(token, limit=1000).json()["images"]}
    assert not set(deleted) & after
    since = emu.get(token, limit=1000, **{"changes-since": "2000-01-01T00:00:00Z"}).json()
    shown = {i["id"]: i for i in since["images"]}
    assert all(shown[d]["deleted"] and shown[d]["status"] == "deleted" for d in deleted)


def test_filters_and_sort(make_ims: Any) -> None:
    emu = make_ims(400)
    token = emu.token()
    visible = emu.catalogue.listing()
    for params, check in [
        ({"disk_format": "qcow2"}, lambda i: i["disk_format"] == "qcow2"),
        ({"status": "killed"}, lambda i: i["status"] == "killed"),
        ({"name": visible[0]["name"]}, lambda i: i["name"] == visible[0]["name"]),
        ({"size_min": 5 * 2**30}, lambda i: (i["size"] or -1) >= 5 * 2**30),
        ({"size_max": 2**30}, lambda i: i["size"] is not None and i["size"] <= 2**30),
    ]:
        got = emu.get(token, limit=1000, **params).json()["images"]
        assert [i["id"] for i in got] == [i["id"] for i in visible if check(i)], params
        assert got, params
    names = [i["name"] for i in emu.get(token, sort_key="name", sort_dir="asc").json()["images"]]
    assert names == sorted(names)
    assert emu.get(token, sort_key="colour").status_code == 400
    assert emu.get(token, size_min="big").json()["error"]["code"] == "IMG.0001"


def test_throttle_fault_and_deterministic_catalogue(make_ims: Any) -> None:
    owner = IamService().projects["cn-north-4"]
    assert generate_images(100, 2, owner) == generate_images(100, 2, owner)
    emu = make_ims(100)
    token = emu.token()
    emu.fail(page=1, kind="throttle", times=1)
    throttled = emu.get(token)
    assert throttled.status_code == 429 and throttled.json()["error_code"] == "APIGW.0308"
    assert emu.get(token).status_code == 200
    fixed = datetime(2026, 1, 1, tzinfo=UTC)
    twin = ImsCatalogue.generate(100, 31, owner)
    kinds = {"deprecate": 1, "cease": 1, "delete": 2, "remove": 2, "add": 3, "rename": 1}
    changes = emu.catalogue.mutate(4, now=fixed, **kinds)
    assert changes == twin.mutate(4, now=fixed, **kinds)
    assert changes["deprecate"] == changes["cease"] == []


# -- syncs into PostgreSQL --------------------------------------------------------------------


def sync(engine: Engine, source: SourceConfig) -> RunResult:
    return sync_source(engine, AT_ONCE, source, policy=FAST)


def test_full_multi_page_sync(engine: Engine, make_ims: Any) -> None:
    emu = make_ims(400)
    visible = emu.visible_ids()
    result = sync(engine, emu.source(page_size=100))
    assert result.status == "succeeded", result.error
    assert result.listing_complete
    assert result.pages == len(visible) // 100 + 1  # the end is the short (or empty) page
    assert (result.images_seen, result.inserted) == (len(visible), len(visible))
    rows = fetch_all(engine, "SELECT provider_image_id, provider_created_at FROM images")
    assert {r.provider_image_id for r in rows} == visible
    assert all(r.provider_created_at.utcoffset().total_seconds() == 0 for r in rows)
    assert emu.iam.issued == 1


def test_deleted_images_leave_the_listing(engine: Engine, make_ims: Any) -> None:
    emu = make_ims(150)
    assert sync(engine, emu.source(page_size=40)).status == "succeeded"
    changes = emu.catalogue.mutate(3, delete=2, remove=2, add=3)
    second = sync(engine, emu.source(page_size=40))
    assert second.status == "succeeded", second.error
    assert (second.inserted, second.disappeared) == (3, 4)
    for image_id in changes["delete"] + changes["remove"]:
        assert history_of(engine, image_id)[-1] == ("gone", False)


def test_changes_since_lists_deleted_images_as_deleted(engine: Engine, make_ims: Any) -> None:
    emu = make_ims(120)
    deleted = emu.catalogue.mutate(3, delete=2)["delete"]
    source = emu.source(filters={"changes-since": "2000-01-01T00:00:00Z"})
    result = sync(engine, source)
    assert result.status == "succeeded", result.error
    rows = fetch_all(
        engine,
        "SELECT status, raw_status FROM images WHERE provider_image_id = ANY(:ids)",
        ids=deleted,
    )
    assert {(r.status, r.raw_status) for r in rows} == {("deleted", "deleted")}


def test_throttling_and_5xx_are_retried(engine: Engine, make_ims: Any) -> None:
    emu = make_ims(150)
    emu.fail(page=1, kind="throttle", times=1)
    emu.fail(page=2, kind="http_500", times=1)
    result = sync(engine, emu.source(page_size=50))
    assert result.status == "succeeded", result.error
    assert result.retries == 2
    assert result.inserted == len(emu.visible_ids())


def test_failure_mid_listing_marks_nothing_gone(engine: Engine, make_ims: Any) -> None:
    emu = make_ims(200)
    assert sync(engine, emu.source(page_size=50)).status == "succeeded"
    before = row_versions(engine)
    emu.catalogue.mutate(2, remove=20)
    emu.fail(page=2, kind="http_503")
    result = sync(engine, emu.source(page_size=50))
    assert result.status == "failed"
    assert "source 'ims-test'" in (result.error or "") and "page 2" in (result.error or "")
    assert row_versions(engine) == before


@pytest.mark.parametrize("kind", ["empty_page", "short_page"])
@pytest.mark.parametrize("where", ["second", "middle", "last full"])
def test_an_odd_page_mid_listing_never_marks_images_gone(
    engine: Engine, make_ims: Any, kind: str, where: str
) -> None:
    """A 200 page with fewer images than asked is not the end of a marker listing: an empty
    one cut it short (incomplete), after a short one paging goes on (nothing missed)."""
    emu = make_ims(400)
    source = emu.source(page_size=50)
    assert sync(engine, source).listing_complete
    full_pages = len(emu.visible_ids()) // 50
    page = {"second": 2, "middle": full_pages // 2 + 1, "last full": full_pages}[where]
    before = row_versions(engine)
    emu.fail(page=page, kind=kind, times=1)
    result = sync(engine, source)
    assert result.status == "succeeded", result.error
    assert result.disappeared == 0 and row_versions(engine) == before
    if kind == "empty_page":
        assert not result.listing_complete
        assert f"page {page} came back empty" in (result.incomplete_reason or "")
    else:
        assert result.listing_complete, result.incomplete_reason
        assert result.images_seen == len(emu.visible_ids())


def test_a_server_that_clamps_the_page_size_is_paged_to_the_end(
    engine: Engine, make_ims: Any
) -> None:
    """Huawei's v2 API answers 25 images a page whatever limit asks for: a short page that
    is not the end must not cut the first sync (and later mark the rest gone)."""
    emu = make_ims(300)
    emu.app.faults.add(FaultRule(kind="page_cap", value=25))
    result = sync(engine, emu.source(page_size=100))
    assert result.status == "succeeded", result.error
    assert result.listing_complete, result.incomplete_reason
    assert result.images_seen == len(emu.visible_ids())
    again = sync(engine, emu.source(page_size=100))
    assert again.listing_complete and again.disappeared == 0


def test_image_deleted_while_paging_fails_the_run(engine: Engine, make_ims: Any) -> None:
    """The next marker names an image deleted meanwhile: Glance's 400, never an early end."""
    emu = make_ims(120)
    assert sync(engine, emu.source(page_size=30)).status == "succeeded"
    before = row_versions(engine)
    marker = emu.catalogue.listing()[29]["id"]  # the marker page 2 will send
    emu.fail(page=1, kind="shrink", times=1)  # deletes it right after answering page 1
    result = sync(engine, emu.source(page_size=30))
    assert result.status == "failed"
    assert "Invalid marker" in (result.error or "") and "page 2" in (result.error or "")
    assert row_versions(engine) == before
    assert emu.catalogue.get(marker)["deleted"] is True  # type: ignore[index]


def test_unknown_status_is_stored_as_unknown(engine: Engine, make_ims: Any) -> None:
    emu = make_ims(60)
    odd = sorted(emu.visible_ids())[:2]
    for image_id in odd:
        emu.catalogue.edit(image_id, status="quarantined")
    result = sync(engine, emu.source())
    assert result.status == "succeeded" and result.unknown_statuses == {"quarantined": 2}
