"""The QingCloud emulator speaks DescribeImages as the real API does, over real HTTP.

Every request here goes over loopback to a running :class:`EmulatorServer`, signed by the
product's own :class:`QingCloudAuth` (or, to send what that signer never would, by hand with
the shared :func:`sign`). Expected values are computed from the catalogue independently of
the emulator's own filter code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from inventory.emulation import EmulatorServer, FaultRule
from inventory.providers.qingcloud.auth import QingCloudAuth, encode, sign, timestamp
from inventory.providers.qingcloud.emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_OWNER,
    DEFAULT_SECRET_ACCESS_KEY,
    QingCloudApp,
    QingCloudCatalogue,
    make_server,
)
from inventory.secrets import Secret

FIXED_NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    catalogue = QingCloudCatalogue.generate(300, seed=5)
    with EmulatorServer(QingCloudApp(catalogue)) as srv:
        yield srv


def app_of(server: EmulatorServer) -> QingCloudApp:
    assert isinstance(server.app, QingCloudApp)
    return server.app


def everything(server: EmulatorServer) -> list[dict[str, Any]]:
    """Every image of the catalogue, in order, straight from its store (not via a filter)."""
    catalogue = app_of(server).catalogue
    images = [catalogue.get(image_id) for image_id in catalogue.ids()]
    return [i for i in images if i is not None]


def owned(server: EmulatorServer) -> list[dict[str, Any]]:
    return [i for i in everything(server) if i["owner"] == DEFAULT_OWNER]


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


def list_all(server: EmulatorServer, http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, as a client pages through it."""
    images: list[dict[str, Any]] = []
    while True:
        body = describe(server, http, offset=len(images), limit=100, **params)
        assert body["ret_code"] == 0, body
        images += body["image_set"]
        if not body["image_set"] or len(images) >= body["total_count"]:
            return images


def ids(images: list[dict[str, Any]]) -> list[str]:
    return [i["image_id"] for i in images]


def common(**extra: str) -> dict[str, str]:
    """The parameters QingCloudAuth adds, for requests signed by hand."""
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


def signed_query(
    params: dict[str, str],
    secret: str = DEFAULT_SECRET_ACCESS_KEY,
    verb: str = "GET",
    path: str = "/iaas/",
) -> str:
    query, signature = sign(params.items(), secret, verb, path)
    return f"{query}&signature={encode(signature)}"


def get_raw(server: EmulatorServer, query: str, path: str = "/iaas/") -> Any:
    response = httpx.get(f"{server.url}{path}?{query}", timeout=5)
    assert response.status_code == 200
    return response.json()


# -- signature and common parameters ----------------------------------------------------------


def test_signed_request_gets_first_page(server: EmulatorServer) -> None:
    body = describe(server, limit=10)
    assert body["ret_code"] == 0
    assert body["action"] == "DescribeImagesResponse"
    assert body["total_count"] == len(owned(server))
    assert body["image_set"] == owned(server)[:10]


def test_second_page_continues_where_the_first_ended(server: EmulatorServer) -> None:
    body = describe(server, offset=10, limit=10)
    assert ids(body["image_set"]) == ids(owned(server)[10:20])


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
    with client(secret, key) as http:
        body = describe(server, http)
    assert body["ret_code"] == 1200
    assert fragment in body["message"]
    assert "image_set" not in body


def test_hand_signed_request_is_accepted(server: EmulatorServer) -> None:
    # The baseline for the refusals below: the same construction, untouched, succeeds.
    body = get_raw(server, signed_query(common(limit="5")))
    assert body["ret_code"] == 0 and len(body["image_set"]) == 5


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q.replace("limit=5", "limit=50"),
        lambda q: q.replace("zone=pek3a", "zone=sh1a"),
        lambda q: q + "&status.1=available",
    ],
    ids=["changed-value", "changed-zone", "added-parameter"],
)
def test_tampered_query_is_refused(server: EmulatorServer, tamper: Callable[[str], str]) -> None:
    query = tamper(signed_query(common(limit="5")))
    body = get_raw(server, query)
    assert body["ret_code"] == 1200
    assert body["message"] == "signature not matched"


def test_signature_covers_the_path(server: EmulatorServer) -> None:
    query = signed_query(common(), path="/iaas/other/")
    assert get_raw(server, query)["ret_code"] == 1200


@pytest.mark.parametrize(
    "missing",
    ["access_key_id", "time_stamp", "version", "signature_method", "signature_version"],
)
def test_missing_common_parameter_gets_1100(server: EmulatorServer, missing: str) -> None:
    params = common()
    del params[missing]
    body = get_raw(server, signed_query(params))
    assert body["ret_code"] == 1100
    assert f"[{missing}]" in body["message"]


def test_unsigned_request_gets_1100(server: EmulatorServer) -> None:
    body = get_raw(server, "&".join(f"{k}={encode(v)}" for k, v in common().items()))
    assert body["ret_code"] == 1100
    assert "[signature]" in body["message"]


@pytest.mark.parametrize("skew", [timedelta(minutes=-10), timedelta(minutes=10)])
def test_time_stamp_far_off_gets_1300(server: EmulatorServer, skew: timedelta) -> None:
    stamp = timestamp(datetime.now(UTC) + skew)
    body = get_raw(server, signed_query(common(time_stamp=stamp)))
    assert body["ret_code"] == 1300
    assert stamp in body["message"]


def test_time_stamp_not_iso_gets_1100(server: EmulatorServer) -> None:
    body = get_raw(server, signed_query(common(time_stamp="yesterday")))
    assert body["ret_code"] == 1100


def test_expires_in_the_past_gets_1300_and_in_the_future_passes(server: EmulatorServer) -> None:
    past = timestamp(datetime.now(UTC) - timedelta(minutes=5))
    future = timestamp(datetime.now(UTC) + timedelta(minutes=5))
    assert get_raw(server, signed_query(common(expires=past)))["ret_code"] == 1300
    assert get_raw(server, signed_query(common(expires=future)))["ret_code"] == 0


def test_hmac_sha1_is_verified_too(server: EmulatorServer) -> None:
    import base64
    import hashlib
    import hmac

    from inventory.providers.qingcloud.auth import canonical_query

    params = common(signature_method="HmacSHA1", limit="2")
    query = canonical_query(params.items())
    digest = hmac.new(
        DEFAULT_SECRET_ACCESS_KEY.encode(), f"GET\n/iaas/\n{query}".encode(), hashlib.sha1
    ).digest()
    signature = base64.b64encode(digest).decode()
    body = get_raw(server, f"{query}&signature={encode(signature)}")
    assert body["ret_code"] == 0 and len(body["image_set"]) == 2
    # The SHA-256 signature of the same string does not pass as SHA-1.
    assert get_raw(server, signed_query(params))["ret_code"] == 1200


def test_form_post_is_signed_with_verb_post(server: EmulatorServer) -> None:
    params = common(limit="3")
    url = f"{server.url}/iaas/"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    body = httpx.post(url, content=signed_query(params, verb="POST"), headers=headers).json()
    assert body["ret_code"] == 0 and len(body["image_set"]) == 3
    as_get = httpx.post(url, content=signed_query(params, verb="GET"), headers=headers).json()
    assert as_get["ret_code"] == 1200


def test_path_without_trailing_slash(server: EmulatorServer) -> None:
    query = signed_query(common(limit="1"), path="/iaas")
    assert get_raw(server, query, path="/iaas")["ret_code"] == 0


def test_other_paths_are_404(server: EmulatorServer) -> None:
    assert httpx.get(f"{server.url}/v2/images").status_code == 404


# -- action, zone, paging ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"action": "RunInstances"}, "RunInstances"),
        ({"zone": "mars1"}, "mars1"),
        ({"zone": ""}, "[zone]"),
    ],
)
def test_bad_action_or_zone_gets_1100(
    server: EmulatorServer, params: dict[str, str], fragment: str
) -> None:
    body = describe(server, **params)
    assert body["ret_code"] == 1100
    assert fragment in body["message"]


@pytest.mark.parametrize("zone", ["pek3a", "sh1a", "gd2", "ap2a"])
def test_every_default_zone_answers(server: EmulatorServer, zone: str) -> None:
    assert describe(server, zone=zone, limit=5)["ret_code"] == 0


def test_paging_totals_and_a_short_last_page() -> None:
    catalogue = QingCloudCatalogue.generate(250, seed=1, system_share=0.0)
    with EmulatorServer(QingCloudApp(catalogue)) as srv, client() as http:
        pages = [describe(srv, http, offset=offset, limit=100) for offset in (0, 100, 200, 300)]
    assert [p["total_count"] for p in pages] == [250, 250, 250, 250]
    assert [len(p["image_set"]) for p in pages] == [100, 100, 50, 0]
    listed = [i["image_id"] for p in pages for i in p["image_set"]]
    assert listed == catalogue.ids()


def test_limit_defaults_to_20_and_is_capped_at_100(server: EmulatorServer) -> None:
    with client() as http:
        assert len(describe(server, http)["image_set"]) == 20
        capped = describe(server, http, limit=500)
        assert len(capped["image_set"]) == 100
        assert capped["total_count"] > 100


def test_limit_0_answers_only_the_count(server: EmulatorServer) -> None:
    body = describe(server, limit=0)
    assert (body["ret_code"], body["image_set"]) == (0, [])
    assert body["total_count"] == len(owned(server))


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": "ten"}, "[limit]"),
        ({"limit": "-1"}, "[limit]"),
        ({"offset": "-5"}, "[offset]"),
        ({"offset": "1.5"}, "[offset]"),
    ],
)
def test_bad_paging_values_get_1100(
    server: EmulatorServer, params: dict[str, str], fragment: str
) -> None:
    body = describe(server, **params)
    assert body["ret_code"] == 1100
    assert fragment in body["message"]


# -- filters -------------------------------------------------------------------------------


def test_default_listing_is_the_callers_own_images(server: EmulatorServer) -> None:
    with client() as http:
        listed = list_all(server, http)
    assert listed == owned(server)
    assert len(listed) < len(everything(server))  # platform images are left out


FILTERS: list[tuple[dict[str, str], Callable[[dict[str, Any]], bool]]] = [
    ({"provider": "system"}, lambda i: i["provider"] == "system"),
    ({"provider": "self"}, lambda i: i["provider"] == "self"),
    ({"visibility": "public"}, lambda i: i["visibility"] == "public"),
    ({"owner": "system"}, lambda i: i["owner"] == "system"),
    (
        {"os_family": "windows"},
        lambda i: i["os_family"] == "windows" and i["owner"] == "usr-emulator",
    ),
    (
        {"os_family": "ubuntu", "provider": "system"},
        lambda i: i["os_family"] == "ubuntu" and i["provider"] == "system",
    ),
    (
        {"processor_type": "32bit", "provider": "self"},
        lambda i: i["processor_type"] == "32bit" and i["provider"] == "self",
    ),
    (
        {"status.1": "deprecated"},
        lambda i: i["status"] == "deprecated" and i["owner"] == "usr-emulator",
    ),
    (
        {"status.1": "pending", "status.2": "deleted", "provider": "self"},
        lambda i: i["status"] in ("pending", "deleted") and i["provider"] == "self",
    ),
    (
        {"search_word": "GOLDEN"},
        lambda i: "golden" in i["image_name"].lower() and i["owner"] == "usr-emulator",
    ),
    (
        {"search_word": "centos", "provider": "system"},
        lambda i: "centos" in i["image_name"].lower() and i["provider"] == "system",
    ),
]


@pytest.mark.parametrize(
    ("params", "wanted"),
    FILTERS,
    ids=[",".join(sorted(p)) + "=" + ",".join(p.values()) for p, _ in FILTERS],
)
def test_filter(
    server: EmulatorServer, params: dict[str, str], wanted: Callable[[dict[str, Any]], bool]
) -> None:
    expected = [i for i in everything(server) if wanted(i)]
    assert expected, "the seed must give this filter something to find"
    assert len(expected) < len(everything(server)), "the filter must leave something out"
    with client() as http:
        listed = list_all(server, http, **params)
        assert describe(server, http, limit=1, **params)["total_count"] == len(expected)
    assert ids(listed) == ids(expected)


def test_search_word_matches_the_image_id(server: EmulatorServer) -> None:
    target = owned(server)[7]["image_id"]
    body = describe(server, search_word=target[4:10].upper())
    assert target in ids(body["image_set"])
    assert all(target[4:10] in i["image_id"] + i["image_name"].lower() for i in body["image_set"])


def test_images_filter_returns_those_images_of_any_provider(server: EmulatorServer) -> None:
    system = next(i for i in everything(server) if i["provider"] == "system")
    own = owned(server)[3]
    body = describe(server, **{"images.1": own["image_id"], "images.2": system["image_id"]})
    assert body["total_count"] == 2
    assert sorted(ids(body["image_set"])) == sorted([own["image_id"], system["image_id"]])


def test_tags_filter(server: EmulatorServer) -> None:
    tagged = next(i for i in owned(server) if i["tags"])
    tag_id = tagged["tags"][0]["tag_id"]
    expected = [i for i in owned(server) if tag_id in {t["tag_id"] for t in i["tags"]}]
    with client() as http:
        listed = list_all(server, http, **{"tags.1": tag_id})
    assert ids(listed) == ids(expected)
    assert tagged["image_id"] in ids(listed)


@pytest.mark.parametrize(
    ("params", "code", "fragment"),
    [
        ({"status.1": "available", "status.2": "gone"}, 1100, "[gone]"),
        ({"images.1": "img-nothere"}, 2100, "[img-nothere]"),
        ({"verbose": "1"}, 1100, "verbose"),
    ],
)
def test_invalid_filters_are_errors_not_empty_sets(
    server: EmulatorServer, params: dict[str, str], code: int, fragment: str
) -> None:
    body = describe(server, **params)
    assert body["ret_code"] == code
    assert fragment in body["message"]
    assert "image_set" not in body


def test_verbose_0_is_accepted(server: EmulatorServer) -> None:
    assert describe(server, verbose=0)["ret_code"] == 0


# -- changes between listings -----------------------------------------------------------------


def test_mutation_shows_in_the_next_listing(server: EmulatorServer) -> None:
    catalogue = app_of(server).catalogue
    before = {i["image_id"]: i for i in owned(server)}
    changes = catalogue.mutate(
        7, deprecate=3, cease=2, delete=2, remove=2, add=4, rename=2, now=FIXED_NOW
    )
    assert {k: len(v) for k, v in changes.items()} == {
        "deprecate": 3,
        "cease": 2,
        "delete": 2,
        "remove": 2,
        "add": 4,
        "rename": 2,
    }
    with client() as http:
        listed = {i["image_id"]: i for i in list_all(server, http)}
    stamp = "2026-01-02T03:04:05Z"
    for image_id in changes["deprecate"]:
        assert before[image_id]["status"] == "available"
        assert (listed[image_id]["status"], listed[image_id]["status_time"]) == (
            "deprecated",
            stamp,
        )
    for image_id in changes["cease"]:
        assert before[image_id]["status"] in ("deprecated", "deleted")
        assert listed[image_id]["status"] == "ceased"
    for image_id in changes["delete"]:
        assert listed[image_id]["status"] == "deleted"
    for image_id in changes["rename"]:
        assert listed[image_id]["image_name"] != before[image_id]["image_name"]
        assert listed[image_id]["status"] == before[image_id]["status"]
    for image_id in changes["add"]:
        assert image_id not in before
        assert (listed[image_id]["status"], listed[image_id]["create_time"]) == (
            "available",
            stamp,
        )
    assert not set(changes["remove"]) & set(listed)
    assert len(listed) == len(before) - 2 + 4
    with client() as http:
        gone = describe(server, http, **{"images.1": changes["remove"][0]})
    assert gone["ret_code"] == 2100


def test_mutation_is_deterministic_over_http() -> None:
    answers = []
    for _ in range(2):
        with make_server(images=200, seed=9) as srv:
            mutate = {"seed": 4, "deprecate": 5, "remove": 3, "add": 2, "rename": 1}
            changes = httpx.post(f"{srv.url}/_emulator/mutate", json=mutate).json()
            with client() as http:
                listed = list_all(srv, http)
            answers.append((changes, ids(listed)))
    assert answers[0] == answers[1]
    assert len(answers[0][0]["deprecate"]) == 5


# -- faults ------------------------------------------------------------------------------------


def _page(http: httpx.Client, server: EmulatorServer, page: int) -> httpx.Response:
    params = {"action": "DescribeImages", "zone": "pek3a", "limit": 10, "offset": (page - 1) * 10}
    return http.get(f"{server.url}/iaas/", params=params)


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("http_500", lambda r: r.status_code == 500 and "<html>" in r.text),
        ("http_503", lambda r: r.status_code == 503 and "<html>" in r.text),
        ("throttle", lambda r: r.status_code == 200 and r.json()["ret_code"] == 2500),
        ("internal", lambda r: r.status_code == 200 and r.json()["ret_code"] == 5000),
        ("server_busy", lambda r: r.status_code == 200 and r.json()["ret_code"] == 5100),
        ("malformed", lambda r: r.status_code == 200 and _not_json(r.text)),
    ],
)
def test_fault_on_a_chosen_page_then_used_up(
    server: EmulatorServer, kind: str, check: Callable[[httpx.Response], bool]
) -> None:
    app_of(server).faults.add(FaultRule(kind=kind, page=2, times=1))
    with client() as http:
        assert _page(http, server, 1).json()["ret_code"] == 0  # other pages answer normally
        assert check(_page(http, server, 2))
        again = _page(http, server, 2).json()  # used up
    assert again["ret_code"] == 0
    assert ids(again["image_set"]) == ids(owned(server)[10:20])


def _not_json(text: str) -> bool:
    import json

    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def test_fault_without_times_keeps_firing(server: EmulatorServer) -> None:
    app_of(server).faults.add(FaultRule(kind="throttle"))
    with client() as http:
        codes = [_page(http, server, page).json()["ret_code"] for page in (1, 2, 1, 3)]
    assert codes == [2500, 2500, 2500, 2500]


def test_fault_comes_before_the_signature_check(server: EmulatorServer) -> None:
    # A gateway in front of the API fails a request whatever its signature.
    app_of(server).faults.add(FaultRule(kind="http_503", times=1))
    with client(secret="wrong-secret") as http:
        assert _page(http, server, 1).status_code == 503


def test_latency_fault_answers_normally_and_combines(server: EmulatorServer) -> None:
    faults = app_of(server).faults
    faults.add(FaultRule(kind="latency", page=1, times=1, latency_s=0.05))
    with client() as http:
        body = _page(http, server, 1).json()
    assert body["ret_code"] == 0 and ids(body["image_set"]) == ids(owned(server)[:10])
    assert faults.rules() == []  # the one use was taken
    faults.add(FaultRule(kind="latency", page=1, times=1, latency_s=0.01))
    faults.add(FaultRule(kind="throttle", page=1, times=1))
    with client() as http:
        assert _page(http, server, 1).json()["ret_code"] == 2500
    assert faults.rules() == []  # both fired on the same request


def test_reset_fault_drops_the_connection(server: EmulatorServer) -> None:
    app_of(server).faults.add(FaultRule(kind="reset", page=1, times=1))
    with client() as http:
        with pytest.raises(httpx.TransportError):
            _page(http, server, 1)
        assert _page(http, server, 1).json()["ret_code"] == 0  # a new connection works


def test_shrink_fault_shifts_later_pages(server: EmulatorServer) -> None:
    app_of(server).faults.add(FaultRule(kind="shrink", page=1, times=1))
    first_eleven = ids(owned(server)[:11])
    with client() as http:
        page1 = _page(http, server, 1).json()
        page2 = _page(http, server, 2).json()
    assert ids(page1["image_set"]) == first_eleven[:10]
    # The first image went away after page 1 was answered, so page 2 skips image 11.
    assert page2["total_count"] == page1["total_count"] - 1
    assert first_eleven[10] not in ids(page2["image_set"])


# -- server and control API ---------------------------------------------------------------


def test_control_api(server: EmulatorServer) -> None:
    control = f"{server.url}/_emulator"
    state = httpx.get(f"{control}/state").json()
    assert (state["images"], state["requests"], state["faults"]) == (300, 0, [])
    assert state["owned"] == len(owned(server))
    describe(server)
    assert httpx.get(f"{control}/state").json()["requests"] == 1

    mutated = httpx.post(f"{control}/mutate", json={"seed": 1, "add": 5, "remove": 1}).json()
    assert len(mutated["add"]) == 5 and len(mutated["remove"]) == 1
    assert httpx.get(f"{control}/state").json()["images"] == 304

    rules = [{"kind": "http_503", "page": 1, "times": 2}, {"kind": "throttle", "page": 2}]
    answer = httpx.post(f"{control}/faults", json=rules)
    assert answer.status_code == 200
    assert httpx.get(f"{control}/state").json()["faults"] == [
        {"kind": "http_503", "page": 1, "times": 2, "latency_s": 0.0},
        {"kind": "throttle", "page": 2, "times": None, "latency_s": 0.0},
    ]
    with client() as http:
        assert _page(http, server, 1).status_code == 503
        assert _page(http, server, 2).json()["ret_code"] == 2500
        # POST replaces the rules rather than adding to them.
        httpx.post(f"{control}/faults", json=[{"kind": "internal", "page": 2}])
        assert _page(http, server, 1).status_code == 200
        assert _page(http, server, 2).json()["ret_code"] == 5000
        assert httpx.delete(f"{control}/faults").json() == {"faults": []}
        assert _page(http, server, 2).json()["ret_code"] == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("mutate", {"explode": 1}),
        ("mutate", {"add": -1}),
        ("mutate", {"add": "many"}),
        ("mutate", [1, 2]),
        ("faults", [{"kind": "nope"}]),
        ("faults", [{"kind": "throttle", "page": 0}]),
        ("faults", [{"kind": "throttle", "page": "2"}]),
        ("faults", [{"kind": "latency", "latency_s": -1}]),
        ("faults", {"kind": "throttle"}),
    ],
)
def test_control_api_refuses_bad_input_and_changes_nothing(
    server: EmulatorServer, path: str, body: Any
) -> None:
    before = everything(server)
    answer = httpx.post(f"{server.url}/_emulator/{path}", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]
    assert everything(server) == before
    assert app_of(server).faults.rules() == []


def test_unknown_control_endpoint_is_404(server: EmulatorServer) -> None:
    assert httpx.get(f"{server.url}/_emulator/nothing").status_code == 404


def test_mutate_without_seed_takes_successive_seeds() -> None:
    results = []
    for _ in range(2):
        with make_server(images=100, seed=2) as srv:
            control = f"{srv.url}/_emulator/mutate"
            first = httpx.post(control, json={"deprecate": 2}).json()
            second = httpx.post(control, json={"deprecate": 2}).json()
            results.append((first, second))
    assert results[0] == results[1]
    assert set(results[0][0]["deprecate"]).isdisjoint(results[0][1]["deprecate"])


def test_request_count_and_concurrent_clients(server: EmulatorServer) -> None:
    expected = ids(owned(server))
    results: list[list[str]] = []
    lock = threading.Lock()

    def page_through() -> None:
        with client() as http:
            listed = ids(list_all(server, http))
        with lock:
            results.append(listed)

    threads = [threading.Thread(target=page_through) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4
    pages = -(-len(expected) // 100)  # each client fetched every page once
    assert server.request_count == 4 * pages


def test_stop_closes_kept_alive_connections() -> None:
    srv = EmulatorServer(QingCloudApp(QingCloudCatalogue.generate(20, seed=1))).start()
    with client() as http:
        assert describe(srv, http)["ret_code"] == 0  # the client now holds a connection
        srv.stop()
        with pytest.raises(httpx.TransportError):
            http.get(f"{srv.url}/iaas/", params={"action": "DescribeImages", "zone": "pek3a"})
    srv.stop()  # a second stop is harmless


def test_stop_without_start_returns() -> None:
    srv = EmulatorServer(QingCloudApp(QingCloudCatalogue.generate(5, seed=1)))
    assert srv.url.startswith("http://127.0.0.1:")
    srv.stop()


def test_make_server_with_other_credentials_and_owner() -> None:
    with make_server(
        images=50, seed=3, access_key_id="QYOTHER", secret_access_key="other-secret", owner="usr-x"
    ) as srv:
        with client("other-secret", "QYOTHER") as http:
            body = describe(srv, http, limit=100)
        with client() as http:
            refused = describe(srv, http)
    assert body["ret_code"] == 0 and body["image_set"]
    assert {i["owner"] for i in body["image_set"]} == {"usr-x"}
    assert refused["ret_code"] == 1200
