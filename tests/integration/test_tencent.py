"""Tencent CVM end to end: the emulator over real HTTP, the collector, a real PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from inventory.config import SecretRef, SourceConfig
from inventory.emulation import EmulatorServer, FaultRule
from inventory.http import RateLimiter, RetryPolicy
from inventory.providers.tencent.auth import TencentAuth
from inventory.providers.tencent.collect import TencentCollector
from inventory.providers.tencent.emulator import (
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    DEFAULT_UIN,
    TencentApp,
    TencentCatalogue,
    generate_images,
    make_server,
)
from inventory.secrets import Secret
from inventory.sync import RunResult, sync_source

from .helpers import AT_ONCE, fetch_all, history_of, row_versions

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
ID_ENV = "INVENTORY_TEST_TC_SECRET_ID"
KEY_ENV = "INVENTORY_TEST_TC_SECRET_KEY"
WRONG_KEY_ENV = "INVENTORY_TEST_TC_WRONG_SECRET_KEY"


class TencentEmulator:
    """A Tencent emulator on loopback plus the source config that points at it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.server: EmulatorServer | None = None
        self.app: TencentApp | None = None
        self.page_size = 100

    def reset(
        self, *, images: int, page_size: int = 100, seed: int = 21, **app_kw: Any
    ) -> TencentEmulator:
        self.stop()
        catalogue = TencentCatalogue.generate(images, seed)
        self.app = TencentApp(catalogue, **app_kw)
        self.server = EmulatorServer(self.app).start()
        self.page_size = page_size
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def catalogue(self) -> TencentCatalogue:
        assert self.app is not None
        return self.app.catalogue

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/"

    def source(
        self,
        name: str = "tc-test",
        *,
        secret: str | None = None,
        filters: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> SourceConfig:
        self.monkeypatch.setenv(ID_ENV, DEFAULT_SECRET_ID)
        self.monkeypatch.setenv(KEY_ENV, DEFAULT_SECRET_KEY)
        key_env = KEY_ENV
        if secret is not None:
            self.monkeypatch.setenv(WRONG_KEY_ENV, secret)
            key_env = WRONG_KEY_ENV
        return SourceConfig(
            name=name,
            provider="tencent",
            location="ap-guangzhou",
            endpoint=self.url,
            page_size=self.page_size,
            timeout_s=5.0,
            filters=filters or {},
            options=options or {},
            credentials={
                "secret_id": SecretRef("env", ID_ENV, "test"),
                "secret_key": SecretRef("env", key_env, "test"),
            },
        )

    def fail(self, *, page: int | None, kind: str, times: int | None = None) -> None:
        assert self.app is not None
        self.app.faults.add(FaultRule(kind=kind, page=page, times=times))


@pytest.fixture
def tc(monkeypatch: pytest.MonkeyPatch) -> Iterator[TencentEmulator]:
    emu = TencentEmulator(monkeypatch)
    yield emu
    emu.stop()


def sync(engine: Engine, emu: TencentEmulator, **kw: Any) -> RunResult:
    return sync_source(engine, AT_ONCE, emu.source(**kw), policy=FAST)


# -- the emulator speaks DescribeImages --------------------------------------------------


def client(
    *,
    secret_id: str = DEFAULT_SECRET_ID,
    secret_key: str = DEFAULT_SECRET_KEY,
    **auth_kw: Any,
) -> httpx.Client:
    auth = TencentAuth(secret_id, Secret(secret_key), **{"region": "ap-guangzhou", **auth_kw})
    return httpx.Client(auth=auth, timeout=5)


def call(emu: TencentEmulator, body: Any = None, http: httpx.Client | None = None) -> Any:
    if http is None:
        with client() as own:
            return call(emu, body, own)
    response = http.post(emu.url, content=json.dumps(body or {}).encode())
    assert response.status_code == 200  # Tencent answers errors with HTTP 200 too
    return response.json()["Response"]


def error_code(response: dict[str, Any]) -> str:
    assert "ImageSet" not in response
    assert isinstance(response["RequestId"], str) and response["RequestId"]
    return str(response["Error"]["Code"])


def test_signed_request_gets_the_first_page(tc: TencentEmulator) -> None:
    emu = tc.reset(images=60)
    response = call(emu)
    assert response["TotalCount"] == 60
    # Limit defaults to 20; every visible image, public and shared included.
    assert [i["ImageId"] for i in response["ImageSet"]] == emu.catalogue.ids()[:20]
    types = {i["ImageType"] for i in emu.catalogue.listing()}
    assert {"PUBLIC_IMAGE", "PRIVATE_IMAGE"} <= types


def test_sdk_style_two_header_signature_is_accepted(tc: TencentEmulator) -> None:
    emu = tc.reset(images=5)
    with client(signed_headers=("content-type", "host")) as http:
        assert call(emu, {"Limit": 5}, http)["TotalCount"] == 5


@pytest.mark.parametrize(
    ("auth_kw", "code"),
    [
        ({"secret_key": "wrong-secret-key"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDUNKNOWN"}, "AuthFailure.SecretIdNotFound"),
        ({"clock": lambda: time.time() - 600}, "AuthFailure.SignatureExpire"),
        ({"service": "cbs"}, "AuthFailure.InvalidAuthorization"),
        ({"action": "DescribeInstances"}, "InvalidAction"),
        ({"version": "2018-01-01"}, "NoSuchVersion"),
        ({"region": "mars-north-1"}, "UnsupportedRegion"),
    ],
)
def test_refusals_in_tencents_shape(
    tc: TencentEmulator, auth_kw: dict[str, Any], code: str
) -> None:
    emu = tc.reset(images=5)
    with client(**auth_kw) as http:
        assert error_code(call(emu, {}, http)) == code


def test_unauthenticated_request_is_refused(tc: TencentEmulator) -> None:
    emu = tc.reset(images=5)
    response = httpx.post(
        emu.url,
        content=b"{}",
        headers={"Content-Type": "application/json", "X-TC-Action": "DescribeImages"},
    )
    assert response.status_code == 200
    assert error_code(response.json()["Response"]) == "AuthFailure.InvalidAuthorization"


def test_body_changed_after_signing_is_refused(tc: TencentEmulator) -> None:
    emu = tc.reset(images=5)
    auth = TencentAuth(DEFAULT_SECRET_ID, Secret(DEFAULT_SECRET_KEY), region="ap-guangzhou")
    signed = next(auth.auth_flow(httpx.Request("POST", emu.url, content=b'{"Limit":1}')))
    forged = httpx.Request("POST", emu.url, content=b'{"Limit":5}', headers=signed.headers)
    with httpx.Client() as http:
        response = http.send(forged)
    assert error_code(response.json()["Response"]) == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"ImageIds": ["img-9qabwvbn"], "Filters": [{"Name": "image-id", "Values": ["x"]}]},
            "InvalidParameter.InvalidParameterCoexistImageIdsFilters",
        ),
        ({"Limit": 101}, "InvalidParameterValue"),
        ({"Offset": -1}, "InvalidParameterValue"),
        ({"Marker": "x"}, "UnknownParameter"),
        ({"ImageIds": ["centos7"]}, "InvalidImageId.Malformed"),
        ({"Filters": [{"Name": "owner", "Values": ["me"]}]}, "InvalidFilter"),
        (
            {"Filters": [{"Name": "platform", "Values": ["a", "b", "c", "d", "e", "f"]}]},
            "InvalidFilterValue.LimitExceeded",
        ),
        (
            {"Filters": [{"Name": f"tag:k{i}", "Values": ["v"]} for i in range(11)]},
            "InvalidParameterValue.LimitExceeded",
        ),
    ],
)
def test_bad_parameters(tc: TencentEmulator, body: dict[str, Any], code: str) -> None:
    emu = tc.reset(images=5)
    assert error_code(call(emu, body)) == code


def test_filters_and_image_ids(tc: TencentEmulator) -> None:
    emu = tc.reset(images=200)
    images = emu.catalogue.listing()

    def listed(body: dict[str, Any]) -> list[str]:
        return [i["ImageId"] for i in call(emu, {**body, "Limit": 100})["ImageSet"]]

    private = [i["ImageId"] for i in images if i["ImageType"] == "PRIVATE_IMAGE"][:100]
    by_type = listed({"Filters": [{"Name": "image-type", "Values": ["PRIVATE_IMAGE"]}]})
    assert by_type == private

    tagged = next(i for i in images if i["Tags"])
    key, value = tagged["Tags"][0]["Key"], tagged["Tags"][0]["Value"]
    by_tag = listed({"Filters": [{"Name": f"tag:{key}", "Values": [value]}]})
    assert tagged["ImageId"] in by_tag
    assert all(
        any(t["Key"] == key and t["Value"] == value for t in emu.catalogue.get(i)["Tags"])  # type: ignore[index]
        for i in by_tag
    )

    centos = listed({"Filters": [{"Name": "platform", "Values": ["cent"]}]})  # fuzzy
    assert centos and all(emu.catalogue.get(i)["Platform"] == "CentOS" for i in centos)  # type: ignore[index]

    # Filters are ANDed: CentOS and private.
    both = listed(
        {
            "Filters": [
                {"Name": "platform", "Values": ["centos"]},
                {"Name": "image-type", "Values": ["PRIVATE_IMAGE"]},
            ]
        }
    )
    assert set(both) == set(centos) & {
        i["ImageId"] for i in images if i["ImageType"] == "PRIVATE_IMAGE"
    }

    wanted = [images[3]["ImageId"], images[1]["ImageId"], "img-zzzzzzzz"]
    assert listed({"ImageIds": wanted}) == [images[1]["ImageId"], images[3]["ImageId"]]


def test_throttling_answer_and_rate_limit(tc: TencentEmulator) -> None:
    frozen = time.time()
    emu = tc.reset(images=5, rate_limit_per_s=2, clock=lambda: frozen)
    with client(clock=lambda: frozen) as http:
        codes = [call(emu, {}, http).get("Error", {}).get("Code") for _ in range(3)]
    assert codes == [None, None, "RequestLimitExceeded.UinLimitExceeded"]

    emu.fail(page=1, kind="throttle", times=1)
    assert error_code(call(emu)) == "RequestLimitExceeded"


def test_mutations_in_tencents_vocabulary() -> None:
    catalogue = TencentCatalogue(generate_images(200, seed=4))
    before = set(catalogue.ids())
    changes = catalogue.mutate(3, deprecate=3, cease=2, delete=2, remove=2, add=2, rename=2)
    assert changes["cease"] == []  # Tencent has no ceased state
    for image_id in changes["deprecate"]:
        image = catalogue.get(image_id)
        assert image is not None
        assert (image["ImageState"], image["ImageDeprecated"]) == ("NORMAL", True)
    for image_id in changes["delete"] + changes["remove"]:
        assert catalogue.get(image_id) is None  # deleted images leave the listing
    assert set(changes["add"]).isdisjoint(before)
    assert all(catalogue.get(i)["ImageCreator"] == DEFAULT_UIN for i in changes["add"])  # type: ignore[index]
    # Deterministic: the same seed on the same catalogue gives the same changes.
    again = TencentCatalogue(generate_images(200, seed=4))
    assert again.mutate(3, deprecate=3, cease=2, delete=2, remove=2, rename=2) == {
        **changes,
        "add": [],
    }


def test_make_server_serves_its_catalogue() -> None:
    with make_server(images=30, seed=2) as server, client() as http:
        response = http.post(f"{server.url}/", content=b'{"Limit":100}').json()["Response"]
    assert response["TotalCount"] == 30
    assert [i["ImageId"] for i in response["ImageSet"]] == [
        i["ImageId"] for i in generate_images(30, seed=2)
    ]


# -- syncs into PostgreSQL ---------------------------------------------------------------


def test_full_multi_page_sync(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=250, page_size=100)
    result = sync(engine, emu)

    assert result.status == "succeeded", result.error
    assert result.pages == 3
    assert result.listing_complete
    assert (result.images_seen, result.inserted, result.unchanged) == (250, 250, 0)
    rows = fetch_all(engine, "SELECT provider_image_id, status, raw_status, visibility FROM images")
    assert {r.provider_image_id for r in rows} == set(emu.catalogue.ids())
    by_id = {r.provider_image_id: r for r in rows}
    for image in emu.catalogue.listing():
        row = by_id[image["ImageId"]]
        assert row.raw_status == image["ImageState"]
        if image["ImageDeprecated"]:
            assert row.status == "deprecated"
    run = fetch_all(engine, "SELECT * FROM sync_runs")[0]
    assert (run.status, run.pages, run.images_seen) == ("succeeded", 3, 250)


def test_changes_deprecation_and_deletion(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=120, page_size=25)
    assert sync(engine, emu).inserted == 120
    changes = emu.catalogue.mutate(1, deprecate=4, delete=3, remove=2, add=5, rename=2)

    second = sync(engine, emu)

    assert second.status == "succeeded", second.error
    assert (second.inserted, second.disappeared) == (5, 5)
    assert second.changed == 6
    for image_id in changes["deprecate"]:
        assert history_of(engine, image_id)[-2:] == [("available", True), ("deprecated", False)]
        row = fetch_all(
            engine, "SELECT status, raw_status FROM images WHERE provider_image_id = :i", i=image_id
        )[0]
        assert (row.status, row.raw_status) == ("deprecated", "NORMAL")
    for image_id in changes["delete"] + changes["remove"]:
        assert history_of(engine, image_id)[-1] == ("gone", False)


def test_resync_without_change_writes_nothing(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=150, page_size=50)
    assert sync(engine, emu).status == "succeeded"
    before = row_versions(engine)
    again = sync(engine, emu)  # new RequestIds on every page; nothing else moved
    assert (again.unchanged, again.changed, again.inserted) == (150, 0, 0)
    assert row_versions(engine) == before


def test_throttling_is_retried(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=150, page_size=50)
    emu.fail(page=2, kind="throttle", times=1)  # RequestLimitExceeded in an HTTP 200
    emu.fail(page=3, kind="internal", times=1)  # InternalError
    result = sync(engine, emu)
    assert result.status == "succeeded", result.error
    assert result.retries == 2
    assert result.inserted == 150


def test_server_rate_limit_variant_is_retried(engine: Engine, tc: TencentEmulator) -> None:
    # The emulator's clock advances 0.1 s each time it is read (twice a request), so its
    # one-second window holds five requests and the limit of four throttles some of them.
    ticks = [time.time()]

    def clock() -> float:
        ticks[0] += 0.1
        return ticks[0]

    # One request at a time, so that which call is throttled depends on the calls alone:
    # with pages in flight, a page's three attempts could each land fifth in a window
    # (the clock moves with every request, not with the retry's wait).
    emu = tc.reset(images=200, page_size=20, rate_limit_per_s=4, clock=clock)
    one_at_a_time = replace(emu.source(), concurrency=1)
    result = sync_source(engine, AT_ONCE, one_at_a_time, policy=FAST)
    assert result.status == "succeeded", result.error
    assert result.retries > 0
    assert (result.pages, result.inserted) == (10, 200)


def test_throttling_that_never_ends_fails_the_page(engine: Engine, tc: TencentEmulator) -> None:
    frozen = time.time()
    # A clock that stands still: the window never empties, so after four calls every
    # further call is throttled until the retries run out.
    emu = tc.reset(images=100, page_size=20, rate_limit_per_s=4, clock=lambda: frozen)
    one_at_a_time = replace(emu.source(), concurrency=1)  # so page 5 is the fifth call
    result = sync_source(engine, AT_ONCE, one_at_a_time, policy=FAST)
    assert result.status == "failed"
    assert "RequestLimitExceeded.UinLimitExceeded" in (result.error or "")
    assert "page 5" in (result.error or "")
    assert "gave up after 3 attempts" in (result.error or "")


def test_failure_mid_listing_marks_nothing_gone(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=200, page_size=50)
    assert sync(engine, emu).status == "succeeded"
    before = row_versions(engine)
    emu.catalogue.mutate(2, remove=30, deprecate=10, delete=5)
    emu.fail(page=3, kind="http_503")  # every attempt at page 3 fails

    result = sync(engine, emu)

    assert result.status == "failed"
    assert "source 'tc-test'" in (result.error or "") and "page 3" in (result.error or "")
    assert row_versions(engine) == before
    run = fetch_all(engine, "SELECT * FROM sync_runs WHERE id = :r", r=result.run_id)[0]
    assert run.status == "failed" and not run.listing_complete and run.disappeared == 0


def test_tencent_error_mid_listing_marks_nothing_gone(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=120, page_size=40)
    assert sync(engine, emu).status == "succeeded"
    before = row_versions(engine)
    emu.catalogue.mutate(5, remove=20)
    emu.fail(page=2, kind="server_busy")  # ServiceUnavailable on every attempt

    result = sync(engine, emu)

    assert result.status == "failed"
    assert "page 2" in (result.error or "") and "ServiceUnavailable" in (result.error or "")
    assert row_versions(engine) == before


def test_listing_that_shifts_is_not_complete(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=100, page_size=25)
    assert sync(engine, emu).status == "succeeded"
    before = row_versions(engine)
    emu.fail(page=2, kind="shrink", times=1)  # an image is deleted while we page
    result = sync(engine, emu)
    assert result.status == "succeeded"
    assert not result.listing_complete and result.disappeared == 0
    assert "total changed" in (result.incomplete_reason or "")
    assert fetch_all(engine, "SELECT count(*) AS n FROM images WHERE gone_at IS NOT NULL")[0].n == 0
    assert row_versions(engine)["images"] == before["images"]


def test_wrong_secret_key_fails_naming_the_credentials(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=10, page_size=10)
    result = sync(engine, emu, secret="wrong-secret-key")
    assert result.status == "failed"
    error = result.error or ""
    assert "AuthFailure.SignatureFailure" in error
    assert "credentials.secret_id" in error and "credentials.secret_key" in error
    assert "wrong-secret-key" not in error
    assert result.retries == 0  # an authentication failure is not retried


def test_config_filters_reach_the_api(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=150, page_size=20)
    result = sync(engine, emu, filters={"image-type": ["PRIVATE_IMAGE"]})
    assert result.status == "succeeded", result.error
    private = {i["ImageId"] for i in emu.catalogue.listing() if i["ImageType"] == "PRIVATE_IMAGE"}
    ids = {r.provider_image_id for r in fetch_all(engine, "SELECT provider_image_id FROM images")}
    assert ids == private and len(private) < 150


def test_image_ids_source(engine: Engine, tc: TencentEmulator) -> None:
    emu = tc.reset(images=50, page_size=2)
    wanted = emu.catalogue.ids()[10:15]
    result = sync(engine, emu, name="tc-ids", filters={"image_ids": wanted})
    assert result.status == "succeeded", result.error
    assert result.pages == 3 and result.listing_complete
    ids = {r.provider_image_id for r in fetch_all(engine, "SELECT provider_image_id FROM images")}
    assert ids == set(wanted)


def test_client_paces_every_request(tc: TencentEmulator) -> None:
    emu = tc.reset(images=100, page_size=20)
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2, clock=lambda: now[0], sleep=sleep)
    collector = TencentCollector(emu.source(), FAST, limiter=limiter)
    try:
        pages = list(collector.pages())
    finally:
        collector.close()
    assert len(pages) == 5 and collector.complete
    # Two calls in the first second, then two in each next one.
    assert waits == pytest.approx([1.0, 1.0])


def test_rate_limit_option_sets_the_pace(tc: TencentEmulator) -> None:
    emu = tc.reset(images=1)
    collector = TencentCollector(emu.source(options={"rate_limit_per_s": 7.5}), FAST)
    collector.close()
    assert collector.limiter.rate == 7.5


def test_standalone_emulator_prints_one_banner_and_serves() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inventory.cli",
            "emulate",
            "tencent",
            "--port",
            "0",
            "--images",
            "40",
            "--secret-access-key",
            "standalone-tc-secret",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith("Tencent emulator: http://127.0.0.1:")
        url = banner.split(": ", 1)[1].split(" ", 1)[0]
        with client(secret_key="standalone-tc-secret") as http:
            ok = http.post(url, content=b'{"Limit":100}').json()["Response"]
        assert ok["TotalCount"] == 40
        with client() as http:  # the default key is not accepted any more
            refused = http.post(url, content=b"{}").json()["Response"]
        assert refused["Error"]["Code"] == "AuthFailure.SignatureFailure"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sources_of_one_account_share_its_rate_limit(engine: Engine, tc: TencentEmulator) -> None:
    """Two sources of one account and region synced at once (as `--jobs` does) share the
    account's budget: the emulator, allowing 10 calls in any second, never has to throttle
    the two of them pacing at 4/s together (unshared, they would send 8/s with bursts of 8)."""
    emu = tc.reset(images=240, page_size=10, rate_limit_per_s=10)
    sources = [
        replace(emu.source(name, options={"rate_limit_per_s": 4}), concurrency=4)
        for name in ("tc-a", "tc-b")
    ]
    results: list[RunResult] = []
    threads = [
        threading.Thread(
            target=lambda s=s: results.append(sync_source(engine, AT_ONCE, s, policy=FAST))
        )
        for s in sources
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted((r.source, r.status, r.inserted) for r in results) == [
        ("tc-a", "succeeded", 240),
        ("tc-b", "succeeded", 240),
    ]
    assert [r.retries for r in results] == [0, 0]  # never throttled
