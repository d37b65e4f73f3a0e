"""The QingCloud emulator speaks DescribeImages as the real API does, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from inventory.emulators.base import EmulatorServer, FaultRule
from inventory.emulators.qingcloud import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_OWNER,
    DEFAULT_SECRET_ACCESS_KEY,
    QingCloudApp,
    QingCloudCatalogue,
    generate_images,
)
from inventory.providers.qingcloud.auth import QingCloudAuth, sign, timestamp
from inventory.secrets import Secret


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    catalogue = QingCloudCatalogue.generate(300, seed=5)
    with EmulatorServer(QingCloudApp(catalogue)) as srv:
        yield srv


def app_of(server: EmulatorServer) -> QingCloudApp:
    assert isinstance(server.app, QingCloudApp)
    return server.app


def client(
    secret: str = DEFAULT_SECRET_ACCESS_KEY, key: str = DEFAULT_ACCESS_KEY_ID
) -> httpx.Client:
    return httpx.Client(auth=QingCloudAuth(key, Secret(secret)), timeout=5)


def describe(server: EmulatorServer, http: httpx.Client | None = None, **params: Any) -> Any:
    params = {"action": "DescribeImages", "zone": "pek3a", **params}
    if http is None:
        with client() as own:
            return describe(server, own, **params)
    response = http.get(f"{server.url}/iaas/", params=params)
    assert response.status_code == 200
    return response.json()


def owned(server: EmulatorServer) -> list[dict[str, Any]]:
    return app_of(server).catalogue.listing((("owner", DEFAULT_OWNER),))


def test_signed_request_gets_first_page(server: EmulatorServer) -> None:
    body = describe(server, limit=10)
    assert body["ret_code"] == 0
    assert body["action"] == "DescribeImagesResponse"
    assert body["total_count"] == len(owned(server))
    assert [i["image_id"] for i in body["image_set"]] == [i["image_id"] for i in owned(server)[:10]]
    assert all(i["owner"] == DEFAULT_OWNER for i in body["image_set"])


@pytest.mark.parametrize(
    ("secret", "key", "fragment"),
    [
        ("wrong-secret", DEFAULT_ACCESS_KEY_ID, "signature not matched"),
        (DEFAULT_SECRET_ACCESS_KEY, "QYUNKNOWNKEY", "access key [QYUNKNOWNKEY] not found"),
    ],
)
def test_bad_credentials_get_ret_code_1200(
    server: EmulatorServer, secret: str, key: str, fragment: str
) -> None:
    body = describe(server, client(secret, key))
    assert body["ret_code"] == 1200
    assert fragment in body["message"]
    assert "image_set" not in body


def _signed_query(params: dict[str, str], secret: str = DEFAULT_SECRET_ACCESS_KEY) -> str:
    query, signature = sign(params.items(), secret, "GET", "/iaas/")
    return f"{query}&signature={quote(signature, safe='')}"


def _base(**extra: str) -> dict[str, str]:
    return {
        "action": "DescribeImages",
        "zone": "pek3a",
        "access_key_id": DEFAULT_ACCESS_KEY_ID,
        "signature_method": "HmacSHA256",
        "signature_version": "1",
        "version": "1",
        "time_stamp": timestamp(),
        **extra,
    }


def test_tampered_query_is_refused(server: EmulatorServer) -> None:
    query = _signed_query(_base(limit="5")).replace("limit=5", "limit=50")
    body = httpx.get(f"{server.url}/iaas/?{query}").json()
    assert body["ret_code"] == 1200


def test_unsigned_request_is_refused(server: EmulatorServer) -> None:
    body = httpx.get(f"{server.url}/iaas/", params={"action": "DescribeImages", "zone": "pek3a"})
    assert body.json()["ret_code"] == 1100
    assert "access_key_id" in body.json()["message"]


def test_stale_time_stamp_gets_1300(server: EmulatorServer) -> None:
    old = timestamp(datetime.now(UTC) - timedelta(minutes=10))
    body = httpx.get(f"{server.url}/iaas/?{_signed_query(_base(time_stamp=old))}").json()
    assert body["ret_code"] == 1300


def test_form_post_is_accepted(server: EmulatorServer) -> None:
    params = _base(limit="3")
    query, signature = sign(params.items(), DEFAULT_SECRET_ACCESS_KEY, "POST", "/iaas/")
    body = httpx.post(
        f"{server.url}/iaas/",
        content=f"{query}&signature={quote(signature, safe='')}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).json()
    assert body["ret_code"] == 0 and len(body["image_set"]) == 3


def test_paging_with_short_last_page() -> None:
    catalogue = QingCloudCatalogue.generate(250, seed=1)
    for image_id in catalogue.ids():
        catalogue.edit(image_id, owner=DEFAULT_OWNER)
    with EmulatorServer(QingCloudApp(catalogue)) as srv, client() as http:
        sizes, ids = [], []
        for offset in (0, 100, 200):
            body = describe(srv, http, offset=offset, limit=100)
            assert body["total_count"] == 250
            sizes.append(len(body["image_set"]))
            ids += [i["image_id"] for i in body["image_set"]]
        assert sizes == [100, 100, 50]
        assert len(set(ids)) == 250


def test_limit_default_and_cap(server: EmulatorServer) -> None:
    with client() as http:
        assert len(describe(server, http)["image_set"]) == 20
        assert len(describe(server, http, limit=500)["image_set"]) == 100
        bad = describe(server, http, limit="ten")
    assert bad["ret_code"] == 1100


def test_filters(server: EmulatorServer) -> None:
    catalogue = app_of(server).catalogue
    everything = catalogue.listing(())
    with client() as http:
        system = describe(server, http, provider="system", limit=100)
        assert system["total_count"] == sum(1 for i in everything if i["provider"] == "system")
        assert {i["provider"] for i in system["image_set"]} == {"system"}

        public = describe(server, http, visibility="public", limit=100)
        assert {i["visibility"] for i in public["image_set"]} == {"public"}

        windows = describe(server, http, os_family="windows", limit=100)
        assert windows["image_set"] and {i["os_family"] for i in windows["image_set"]} == {
            "windows"
        }

        deprecated = describe(server, http, **{"status.1": "deprecated"}, limit=100)
        expected = [i for i in owned(server) if i["status"] == "deprecated"]
        assert deprecated["total_count"] == len(expected)

        two = [i["image_id"] for i in everything[:2]]
        by_id = describe(server, http, **{"images.1": two[0], "images.2": two[1]})
        assert sorted(i["image_id"] for i in by_id["image_set"]) == sorted(two)

        word = owned(server)[0]["image_name"].split("-")[0].upper()
        found = describe(server, http, search_word=word, limit=100)
        assert found["image_set"]
        assert all(
            word.lower() in (i["image_name"] + i["image_id"]).lower() for i in found["image_set"]
        )

        bits32 = describe(server, http, processor_type="32bit", provider="self", limit=100)
        assert {i["processor_type"] for i in bits32["image_set"]} <= {"32bit"}

        tagged = next(i for i in owned(server) if i["tags"])
        by_tag = describe(server, http, **{"tags.1": tagged["tags"][0]["tag_id"]})
        assert [i["image_id"] for i in by_tag["image_set"]] == [tagged["image_id"]]


def test_invalid_filters_are_errors(server: EmulatorServer) -> None:
    with client() as http:
        assert describe(server, http, **{"status.1": "gone"})["ret_code"] == 1100
        assert describe(server, http, **{"images.1": "img-nothere"})["ret_code"] == 2100
        assert describe(server, http, verbose=1)["ret_code"] == 1100
        assert describe(server, http, zone="mars1")["ret_code"] == 1100
        assert describe(server, http, action="RunInstances")["ret_code"] == 1100


def test_generation_is_deterministic_and_realistic() -> None:
    a, b = generate_images(500, seed=3), generate_images(500, seed=3)
    assert a == b
    assert a != generate_images(500, seed=4)
    assert len({i["image_id"] for i in a}) == 500
    statuses = {i["status"] for i in a}
    assert "available" in statuses and "deprecated" in statuses
    assert {i["platform"] for i in a} == {"linux", "windows"}
    assert all(i["image_id"].startswith("img-") and len(i["image_id"]) == 12 for i in a)
    assert all(i["create_time"].endswith("Z") for i in a)


def test_mutation_is_visible_and_deterministic(server: EmulatorServer) -> None:
    twin = QingCloudCatalogue.generate(300, seed=5)
    fixed = datetime(2026, 1, 1, tzinfo=UTC)
    changes = app_of(server).catalogue.mutate(7, deprecate=3, remove=2, add=4, now=fixed)
    assert changes == twin.mutate(7, deprecate=3, remove=2, add=4, now=fixed)
    listed = {i["image_id"]: i for i in owned(server)}
    for image_id in changes["deprecate"]:
        assert listed[image_id]["status"] == "deprecated"
    assert not set(changes["remove"]) & set(listed)
    assert set(changes["add"]) <= set(listed)


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("http_500", lambda r: r.status_code == 500),
        ("http_503", lambda r: r.status_code == 503),
        ("throttle", lambda r: r.json()["ret_code"] == 2500),
        ("internal", lambda r: r.json()["ret_code"] == 5000),
        ("server_busy", lambda r: r.json()["ret_code"] == 5100),
        ("malformed", lambda r: r.status_code == 200 and not r.text.rstrip().endswith("}")),
    ],
)
def test_faults_on_chosen_page(server: EmulatorServer, kind: str, check: Any) -> None:
    app_of(server).faults.add(FaultRule(kind=kind, page=2, times=1))
    with client() as http:
        url = f"{server.url}/iaas/"
        base = {"action": "DescribeImages", "zone": "pek3a", "limit": 10}
        assert http.get(url, params={**base, "offset": 0}).json()["ret_code"] == 0
        assert check(http.get(url, params={**base, "offset": 10}))
        assert http.get(url, params={**base, "offset": 10}).json()["ret_code"] == 0  # used up


def test_reset_fault_drops_the_connection(server: EmulatorServer) -> None:
    app_of(server).faults.add(FaultRule(kind="reset", page=1, times=1))
    with client() as http, pytest.raises(httpx.TransportError):
        http.get(f"{server.url}/iaas/", params={"action": "DescribeImages", "zone": "pek3a"})


def test_control_api(server: EmulatorServer) -> None:
    before = httpx.get(f"{server.url}/_emulator/state").json()
    assert before["images"] == 300
    mutated = httpx.post(f"{server.url}/_emulator/mutate", json={"seed": 1, "add": 5}).json()
    assert len(mutated["add"]) == 5
    assert httpx.get(f"{server.url}/_emulator/state").json()["images"] == 305
    bad = httpx.post(f"{server.url}/_emulator/mutate", json={"explode": 1})
    assert bad.status_code == 400
    set_faults = httpx.post(f"{server.url}/_emulator/faults", json=[{"kind": "http_503"}])
    assert set_faults.status_code == 200
    assert describe_status(server) == 503
    httpx.delete(f"{server.url}/_emulator/faults")
    assert describe_status(server) == 200
    assert httpx.post(f"{server.url}/_emulator/faults", json=[{"kind": "nope"}]).status_code == 400


def describe_status(server: EmulatorServer) -> int:
    with client() as http:
        return http.get(
            f"{server.url}/iaas/", params={"action": "DescribeImages", "zone": "pek3a"}
        ).status_code
