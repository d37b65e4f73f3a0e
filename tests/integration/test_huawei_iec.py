"""Huawei IEC ListImages: the emulator over real HTTP, and syncs into a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from inventory.config import SecretRef, SourceConfig
from inventory.emulation import EmulatorServer, FaultRule
from inventory.http import RetryPolicy
from inventory.providers.huawei_common.emulator_iam import (
    DEFAULT_DOMAIN_ID,
    DEFAULT_DOMAIN_NAME,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
)
from inventory.providers.huawei_common.signer import SdkHmacAuth
from inventory.providers.huawei_common.token import TOKEN_CACHE
from inventory.providers.huawei_iec.emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_SECRET_ACCESS_KEY,
    IecApp,
    IecCatalogue,
    generate_images,
)
from inventory.secrets import Secret
from inventory.sync import RunResult, sync_source

from .helpers import AT_ONCE, fetch_all, history_of, row_versions

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
ENV = {
    "INVENTORY_TEST_HW_AK": DEFAULT_ACCESS_KEY_ID,
    "INVENTORY_TEST_HW_SK": DEFAULT_SECRET_ACCESS_KEY,
    "INVENTORY_TEST_HW_USER": DEFAULT_USERNAME,
    "INVENTORY_TEST_HW_PASSWORD": DEFAULT_PASSWORD,
}


class Iec:
    """An IEC emulator on loopback plus sources pointing at it."""

    def __init__(self, images: int, seed: int = 21) -> None:
        self.catalogue = IecCatalogue.generate(images, seed)
        self.app = IecApp(self.catalogue)
        self.server = EmulatorServer(self.app).start()

    @property
    def url(self) -> str:
        return self.server.url

    def source(
        self, *, token: bool = False, page_size: int = 500, secret: str | None = None
    ) -> SourceConfig:
        os.environ.update(ENV)
        if secret is not None:
            os.environ["INVENTORY_TEST_HW_WRONG"] = secret
        if token:
            credentials = {
                "username": SecretRef("env", "INVENTORY_TEST_HW_USER", "test"),
                "password": SecretRef(
                    "env",
                    "INVENTORY_TEST_HW_WRONG" if secret else "INVENTORY_TEST_HW_PASSWORD",
                    "t",
                ),
            }
            options = {"domain_name": DEFAULT_DOMAIN_NAME, "iam_endpoint": self.url}
        else:
            credentials = {
                "access_key_id": SecretRef("env", "INVENTORY_TEST_HW_AK", "test"),
                "secret_access_key": SecretRef(
                    "env", "INVENTORY_TEST_HW_WRONG" if secret else "INVENTORY_TEST_HW_SK", "t"
                ),
            }
            options = {"domain_id": DEFAULT_DOMAIN_ID}
        return SourceConfig(
            name="iec-test",
            provider="huawei-iec",
            location="cn-north-4",
            endpoint=self.url,
            page_size=page_size,
            timeout_s=5.0,
            credentials=credentials,
            options=options,
        )

    def visible_ids(self) -> set[str]:
        return {i["id"] for i in self.catalogue.listing()}

    def fail(self, *, page: int | None, kind: str, times: int | None = None) -> None:
        self.app.faults.add(FaultRule(kind=kind, page=page, times=times))


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    TOKEN_CACHE.clear()
    yield
    TOKEN_CACHE.clear()


@pytest.fixture
def make_iec() -> Iterator[Any]:
    started: list[Iec] = []

    def make(images: int = 300, seed: int = 21) -> Iec:
        emu = Iec(images, seed)
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.server.stop()


def signed(
    secret: str = DEFAULT_SECRET_ACCESS_KEY,
    *,
    key: str = DEFAULT_ACCESS_KEY_ID,
    domain: str | None = DEFAULT_DOMAIN_ID,
    clock: Any = None,
) -> httpx.Client:
    extra = {"X-Domain-Id": domain} if domain else {}
    kwargs = {"clock": clock} if clock else {}
    return httpx.Client(
        auth=SdkHmacAuth(key, Secret(secret), extra_headers=extra, **kwargs), timeout=5
    )


def list_images(emu: Iec, http: httpx.Client, **params: Any) -> httpx.Response:
    return http.get(f"{emu.url}/v1/images", params=params)


# -- the emulator -----------------------------------------------------------------------------


def test_signed_request_gets_first_page(make_iec: Any) -> None:
    emu = make_iec(300)
    with signed() as http:
        body = list_images(emu, http, limit=10).json()
    listing = emu.catalogue.listing()
    assert body["total"] == len(listing) == 300  # gold images and the account's own
    assert [i["id"] for i in body["images"]] == [i["id"] for i in listing[:10]]


@pytest.mark.parametrize(
    ("client_kw", "code", "fragment"),
    [
        ({"secret": "wrong-secret"}, "APIGW.0301", "verify aksk signature fail"),
        ({"key": "HWUNKNOWNKEY"}, "APIGW.0301", "ak not found"),
        ({"domain": None}, "APIGW.0301", "x-domain-id"),
        (
            {"clock": lambda: datetime.now(UTC) - timedelta(minutes=20)},
            "APIGW.0303",
            "signature expired",
        ),
    ],
)
def test_bad_signatures_are_refused_in_gateway_shape(
    make_iec: Any, client_kw: dict[str, Any], code: str, fragment: str
) -> None:
    emu = make_iec(20)
    with signed(**client_kw) as http:
        response = list_images(emu, http)
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == code and fragment in body["error_msg"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert "images" not in body


def test_unauthenticated_and_tampered_requests_are_refused(make_iec: Any) -> None:
    emu = make_iec(20)
    bare = httpx.get(f"{emu.url}/v1/images")
    assert bare.status_code == 401 and bare.json()["error_code"] == "APIGW.0301"
    with signed() as http:
        request = http.build_request("GET", f"{emu.url}/v1/images", params={"limit": "5"})
        flow = http.auth.sync_auth_flow(request)  # type: ignore[union-attr]
        ready = next(flow)
        tampered = ready.url.copy_with(query=b"limit=50")
        response = httpx.get(tampered, headers=ready.headers)
    assert response.status_code == 401
    assert "verify aksk signature fail" in response.json()["error_msg"]


def test_token_endpoint_and_token_auth(make_iec: Any) -> None:
    emu = make_iec(20)
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
            "scope": {"domain": {"name": DEFAULT_DOMAIN_NAME}},
        }
    }
    issued = httpx.post(f"{emu.url}/v3/auth/tokens", json=body)
    assert issued.status_code == 201
    token = issued.headers["X-Subject-Token"]
    assert issued.json()["token"]["expires_at"].endswith("Z")
    assert emu.app.iam.issued == 1
    ok = httpx.get(f"{emu.url}/v1/images", headers={"X-Auth-Token": token})
    assert ok.status_code == 200 and ok.json()["total"] == 20
    bad = httpx.get(f"{emu.url}/v1/images", headers={"X-Auth-Token": token + "x"})
    assert bad.status_code == 401 and bad.json()["error_code"] == "APIGW.0301"
    emu.app.iam.revoke_all()
    revoked = httpx.get(f"{emu.url}/v1/images", headers={"X-Auth-Token": token})
    assert revoked.status_code == 401
    body["auth"]["identity"]["password"]["user"]["password"] = "nope"  # type: ignore[index]
    refused = httpx.post(f"{emu.url}/v3/auth/tokens", json=body)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == 401 and "X-Subject-Token" not in refused.headers


def test_paging_limit_cap_and_sort(make_iec: Any) -> None:
    emu = make_iec(1100)
    with signed() as http:
        first = list_images(emu, http, limit=600).json()
        assert len(first["images"]) == 500  # the documented maximum
        ids: list[str] = []
        for offset in (0, 500, 1000):
            page = list_images(emu, http, offset=offset, limit=500).json()
            assert page["total"] == 1100
            ids += [i["id"] for i in page["images"]]
        assert len(ids) == len(set(ids)) == 1100
        asc = list_images(emu, http, sort_key="created_at", sort_dir="asc", limit=50).json()
        stamps = [i["created_at"] for i in asc["images"]]
        assert stamps == sorted(stamps)
        by_name = list_images(emu, http, sort_key="name", sort_dir="asc", limit=50).json()
        names = [i["name"] for i in by_name["images"]]
        assert names == sorted(names)


def test_filters(make_iec: Any) -> None:
    emu = make_iec(400)
    listing = emu.catalogue.listing()
    with signed() as http:
        for params, check in [
            ({"status": "deleted"}, lambda i: i["status"] == "deleted" and i["deleted"]),
            ({"__imagetype": "gold"}, lambda i: i["__imagetype"] == "gold"),
            ({"visibility": "private"}, lambda i: i["visibility"] == "private"),
            ({"__support_arm": "true"}, lambda i: i.get("__support_arm") == "true"),
            ({"__isregistered": "false"}, lambda i: i["__isregistered"] is False),
            ({"protected": "true"}, lambda i: i["protected"] is True),
            ({"__os_type": "Windows"}, lambda i: i["__os_type"] == "Windows"),
            ({"name": listing[3]["name"]}, lambda i: i["name"] == listing[3]["name"]),
        ]:
            body = list_images(emu, http, limit=500, **params).json()
            expected = [i for i in listing if check(i)]
            assert body["total"] == len(expected) > 0, params
            assert all(check(i) for i in body["images"]), params
        bad = list_images(emu, http, status="gone")
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "IEC.0001"


def test_throttle_fault_is_the_gateway_429(make_iec: Any) -> None:
    emu = make_iec(30)
    emu.fail(page=2, kind="throttle", times=1)
    with signed() as http:
        assert list_images(emu, http, limit=10).status_code == 200
        throttled = list_images(emu, http, offset=10, limit=10)
        assert throttled.status_code == 429
        assert throttled.json()["error_code"] == "APIGW.0308"
        assert list_images(emu, http, offset=10, limit=10).status_code == 200  # used up


def test_generation_and_mutation_are_deterministic(make_iec: Any) -> None:
    assert generate_images(200, seed=3) == generate_images(200, seed=3)
    assert generate_images(200, seed=3) != generate_images(200, seed=4)
    emu = make_iec(300)
    twin = IecCatalogue.generate(300, 21)
    fixed = datetime(2026, 1, 1, tzinfo=UTC)
    kinds = {"deprecate": 2, "cease": 2, "delete": 3, "remove": 2, "add": 4, "rename": 2}
    changes = emu.catalogue.mutate(5, now=fixed, **kinds)
    assert changes == twin.mutate(5, now=fixed, **kinds)
    assert changes["deprecate"] == changes["cease"] == []  # IEC cannot express them
    listed = {i["id"]: i for i in emu.catalogue.listing()}
    for image_id in changes["delete"]:
        assert listed[image_id]["status"] == "deleted" and listed[image_id]["deleted"]
    assert not set(changes["remove"]) & set(listed)
    assert set(changes["add"]) <= set(listed)


# -- syncs into PostgreSQL --------------------------------------------------------------------


def sync(engine: Engine, source: SourceConfig) -> RunResult:
    return sync_source(engine, AT_ONCE, source, policy=FAST)


@pytest.mark.parametrize("token", [False, True], ids=["aksk", "token"])
def test_full_multi_page_sync(engine: Engine, make_iec: Any, token: bool) -> None:
    emu = make_iec(1200)
    result = sync(engine, emu.source(token=token))
    assert result.status == "succeeded", result.error
    assert (result.pages, result.listing_complete) == (3, True)  # 500 + 500 + 200
    assert (result.images_seen, result.inserted) == (1200, 1200)
    rows = fetch_all(engine, "SELECT provider_image_id, status, raw_status FROM images")
    assert {r.provider_image_id for r in rows} == emu.visible_ids()
    statuses = {r.raw_status: r.status for r in rows}
    assert statuses["active"] == "available" and statuses["deleted"] == "deleted"
    assert statuses["killed"] == "failed"
    assert emu.app.iam.issued == (1 if token else 0)


def test_second_run_sees_iec_changes(engine: Engine, make_iec: Any) -> None:
    emu = make_iec(200)
    assert sync(engine, emu.source(page_size=60)).inserted == 200
    changes = emu.catalogue.mutate(9, delete=3, remove=4, add=2, rename=2)
    second = sync(engine, emu.source(page_size=60))
    assert second.status == "succeeded", second.error
    assert (second.inserted, second.disappeared) == (2, 4)
    for image_id in changes["delete"]:
        assert history_of(engine, image_id)[-1] == ("deleted", False)
    for image_id in changes["remove"]:
        assert history_of(engine, image_id)[-1] == ("gone", False)


def test_throttling_and_5xx_are_retried(engine: Engine, make_iec: Any) -> None:
    emu = make_iec(150)
    emu.fail(page=2, kind="throttle", times=1)
    emu.fail(page=3, kind="http_503", times=1)
    result = sync(engine, emu.source(page_size=50))
    assert result.status == "succeeded", result.error
    assert (result.retries, result.inserted) == (2, 150)


def test_failure_mid_listing_marks_nothing_gone(engine: Engine, make_iec: Any) -> None:
    emu = make_iec(200)
    assert sync(engine, emu.source(page_size=50)).status == "succeeded"
    before = row_versions(engine)
    emu.catalogue.mutate(2, remove=30, delete=5)
    emu.fail(page=3, kind="throttle")  # throttled on every attempt at page 3 of 4
    result = sync(engine, emu.source(page_size=50))
    assert result.status == "failed"
    assert "source 'iec-test'" in (result.error or "") and "page 3" in (result.error or "")
    assert "APIGW.0308" in (result.error or "")
    assert row_versions(engine) == before
    run = fetch_all(engine, "SELECT * FROM sync_runs WHERE id = :r", r=result.run_id)[0]
    assert run.status == "failed" and not run.listing_complete and run.disappeared == 0


def test_wrong_secret_fails_with_a_clear_message(engine: Engine, make_iec: Any) -> None:
    emu = make_iec(10)
    result = sync(engine, emu.source(secret="wrong-secret-value"))
    assert result.status == "failed"
    assert "APIGW.0301" in (result.error or "")
    assert "credentials.secret_access_key" in (result.error or "")
    assert "wrong-secret-value" not in (result.error or "")
    assert result.retries == 0


def test_unknown_status_is_stored_as_unknown(engine: Engine, make_iec: Any) -> None:
    emu = make_iec(40)
    odd = sorted(emu.visible_ids())[:2]
    for image_id in odd:
        emu.catalogue.edit(image_id, status="frozen", deleted=False)
    result = sync(engine, emu.source())
    assert result.status == "succeeded" and result.unknown_statuses == {"frozen": 2}
    rows = fetch_all(
        engine, "SELECT status, raw_status FROM images WHERE provider_image_id = ANY(:ids)", ids=odd
    )
    assert {(r.status, r.raw_status) for r in rows} == {("unknown", "frozen")}


def test_a_space_in_a_filter_travels_as_it_was_signed(engine: Engine, make_iec: Any) -> None:
    """httpx writes a space in the query as '+', but the signature covers '%20' (as the
    official SDK sends it). The gateway reads the wire query literally, so the wire must
    carry exactly the canonical query that was signed."""
    emu = make_iec(200)
    name = next(i["name"] for i in emu.catalogue.listing() if " " in i["name"])
    source = dataclasses.replace(emu.source(), filters={"name": name})
    result = sync(engine, source)
    assert result.status == "succeeded", result.error
    expected = [i for i in emu.catalogue.listing() if i["name"] == name]
    assert result.images_seen == len(expected) > 0
