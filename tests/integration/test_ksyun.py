"""KSyun KEC: the emulator over real HTTP, and syncs from it into a real PostgreSQL.

DescribeImages has no paging, so "a full multi-page sync" cannot apply: the sync tests
instead list a large catalogue in one response and check it is complete and stored whole.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from inventory import jsonstream, staging
from inventory import sync as sync_module
from inventory.config import SecretRef, SourceConfig
from inventory.emulation import EmulatorServer, FaultRule
from inventory.http import RetryPolicy
from inventory.providers.ksyun.auth import (
    ALGORITHM,
    KsyunAuth,
    amz_date,
    canonical_query,
    credential_scope,
    sign,
)
from inventory.providers.ksyun.emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_SECRET_ACCESS_KEY,
    KsyunApp,
    KsyunCatalogue,
    generate_images,
)
from inventory.secrets import Secret
from inventory.sync import RunResult, sync_source

from .helpers import AT_ONCE, fetch_all, history_of, row_versions

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
REGION = "cn-beijing-6"
KEY_ENV = "INVENTORY_TEST_KS_ACCESS_KEY_ID"
SECRET_ENV = "INVENTORY_TEST_KS_SECRET_ACCESS_KEY"
WRONG_SECRET_ENV = "INVENTORY_TEST_KS_WRONG_SECRET"
WRONG_KEY_ENV = "INVENTORY_TEST_KS_WRONG_KEY"


class KsyunEmulator:
    """A KSyun emulator on loopback plus source configs pointing at it."""

    def __init__(self, images: int, seed: int = 21) -> None:
        self.app = KsyunApp(KsyunCatalogue.generate(images, seed))
        self.server = EmulatorServer(self.app).start()

    @property
    def catalogue(self) -> KsyunCatalogue:
        return self.app.catalogue

    @property
    def endpoint(self) -> str:
        return f"{self.server.url}/"

    def source(
        self,
        name: str = "ks-test",
        *,
        secret: str | None = None,
        key: str | None = None,
        region: str = REGION,
        filters: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> SourceConfig:
        os.environ[KEY_ENV] = DEFAULT_ACCESS_KEY_ID
        os.environ[SECRET_ENV] = DEFAULT_SECRET_ACCESS_KEY
        key_env, secret_env = KEY_ENV, SECRET_ENV
        if secret is not None:
            os.environ[WRONG_SECRET_ENV] = secret
            secret_env = WRONG_SECRET_ENV
        if key is not None:
            os.environ[WRONG_KEY_ENV] = key
            key_env = WRONG_KEY_ENV
        return SourceConfig(
            name=name,
            provider="ksyun",
            location=region,
            endpoint=self.endpoint,
            filters=filters or {},
            options=options or {},
            timeout_s=10.0,
            credentials={
                "access_key_id": SecretRef("env", key_env, "test"),
                "secret_access_key": SecretRef("env", secret_env, "test"),
            },
        )

    def fail(self, kind: str, times: int | None = None) -> None:
        self.app.faults.add(FaultRule(kind=kind, page=1, times=times))

    def ids(self) -> set[str]:
        return set(self.catalogue.ids())


@pytest.fixture
def ks() -> Iterator[KsyunEmulator]:
    emu = KsyunEmulator(images=300)
    yield emu
    emu.server.stop()


def client(
    secret: str = DEFAULT_SECRET_ACCESS_KEY,
    key: str = DEFAULT_ACCESS_KEY_ID,
    region: str = REGION,
    **kw: Any,
) -> httpx.Client:
    return httpx.Client(auth=KsyunAuth(key, Secret(secret), region, **kw), timeout=10)


def describe(emu: KsyunEmulator, http: httpx.Client | None = None, **params: Any) -> httpx.Response:
    params = {"Action": "DescribeImages", "Version": "2016-03-04", **params}
    if http is None:
        with client() as own:
            return own.get(emu.endpoint, params=params)
    return http.get(emu.endpoint, params=params)


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"RequestId", "Error"}, body
    assert set(body["Error"]) == {"Code", "Message"}
    return str(body["Error"]["Code"])


# -- the emulator speaks KEC -----------------------------------------------------------------


def test_signed_request_gets_the_whole_listing_at_once(ks: KsyunEmulator) -> None:
    response = describe(ks)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"RequestId", "ImagesSet"}  # no total count, no paging fields
    assert [i["ImageId"] for i in body["ImagesSet"]] == ks.catalogue.ids()
    assert len(body["ImagesSet"]) == 300
    # Paging-looking parameters change nothing: there is no paging.
    again = describe(ks, MaxResults=10, Offset=50, Marker="x").json()
    assert len(again["ImagesSet"]) == 300


@pytest.mark.parametrize(
    ("secret", "key", "status", "code"),
    [
        ("wrong-secret", DEFAULT_ACCESS_KEY_ID, 403, "SignatureDoesNotMatch"),
        (DEFAULT_SECRET_ACCESS_KEY, "AKLTUNKNOWN", 403, "InvalidClientTokenId"),
    ],
)
def test_bad_credentials_get_the_error_envelope(
    ks: KsyunEmulator, secret: str, key: str, status: int, code: str
) -> None:
    with client(secret, key) as http:
        response = describe(ks, http)
    assert response.status_code == status
    assert error_of(response) == code


def test_unsigned_request_is_refused(ks: KsyunEmulator) -> None:
    response = httpx.get(ks.endpoint, params={"Action": "DescribeImages", "Version": "2016-03-04"})
    assert response.status_code == 403
    assert error_of(response) == "MissingAuthenticationToken"


def _presigned(
    params: dict[str, str],
    *,
    host: str,
    secret: str = DEFAULT_SECRET_ACCESS_KEY,
    when: datetime | None = None,
    region: str = REGION,
    service: str = "kec",
) -> str:
    """A query-signed URL query, as KSyun's public-parameter page describes it."""
    stamp = amz_date(when)
    scope = credential_scope(stamp[:8], region, service)
    full = {
        **params,
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{DEFAULT_ACCESS_KEY_ID}/{scope}",
        "X-Amz-Date": stamp,
        "X-Amz-SignedHeaders": "host",
    }
    signed = sign(
        method="GET",
        path="/",
        params=full.items(),
        headers={"host": host},
        signed_headers=["host"],
        payload_hash=hashlib.sha256(b"").hexdigest(),
        secret=secret,
        amz_date=stamp,
        region=region,
        service=service,
    )
    return f"{canonical_query(full.items())}&X-Amz-Signature={signed.signature}"


def _host(emu: KsyunEmulator) -> str:
    return f"127.0.0.1:{emu.server.port}"


BASE = {"Action": "DescribeImages", "Version": "2016-03-04"}


def test_presigned_query_is_accepted_and_verified(ks: KsyunEmulator) -> None:
    good = httpx.get(f"{ks.endpoint}?{_presigned(BASE, host=_host(ks))}")
    assert good.status_code == 200 and len(good.json()["ImagesSet"]) == 300

    tampered = _presigned({**BASE, "ImageType": "system"}, host=_host(ks)).replace(
        "ImageType=system", "ImageType=import"
    )
    refused = httpx.get(f"{ks.endpoint}?{tampered}")
    assert refused.status_code == 403 and error_of(refused) == "SignatureDoesNotMatch"

    wrong_service = httpx.get(f"{ks.endpoint}?{_presigned(BASE, host=_host(ks), service='iam')}")
    assert error_of(wrong_service) == "SignatureDoesNotMatch"


def test_stale_x_amz_date_is_refused(ks: KsyunEmulator) -> None:
    old = datetime.now(UTC) - timedelta(minutes=30)
    response = httpx.get(f"{ks.endpoint}?{_presigned(BASE, host=_host(ks), when=old)}")
    assert response.status_code == 400
    assert error_of(response) == "RequestExpired"
    with client(clock=lambda: datetime.now(UTC) + timedelta(hours=1)) as http:
        ahead = describe(ks, http)
    assert error_of(ahead) == "RequestExpired"


def test_tampered_header_signed_request_is_refused(ks: KsyunEmulator) -> None:
    with client() as http:
        request = http.build_request("GET", ks.endpoint, params=BASE)
        signed = next(http.auth.auth_flow(request))  # type: ignore[union-attr]
    url = str(signed.url).replace("Version=2016-03-04", "Version=2016-03-04&ImageType=system")
    response = httpx.get(url, headers={k: v for k, v in signed.headers.items()})
    assert response.status_code == 403 and error_of(response) == "SignatureDoesNotMatch"


def test_unknown_region_and_bad_action(ks: KsyunEmulator) -> None:
    with client(region="mars-north-1") as http:
        assert error_of(describe(ks, http)) == "InvalidRegion"
    with client() as http:
        assert error_of(describe(ks, http, Action="RunInstances")) == "InvalidAction"
        assert error_of(describe(ks, http, Version="2099-01-01")) == "InvalidParameterValue"


def test_form_post_is_signed_over_its_body(ks: KsyunEmulator) -> None:
    with client() as http:
        response = http.post(ks.endpoint, data=BASE)
    assert response.status_code == 200
    assert len(response.json()["ImagesSet"]) == 300


def test_documented_filters(ks: KsyunEmulator) -> None:
    every = ks.catalogue.listing()
    target = every[7]
    with client() as http:
        by_id = describe(ks, http, ImageId=target["ImageId"]).json()["ImagesSet"]
        assert by_id == [target]
        system = describe(ks, http, ImageType="system").json()["ImagesSet"]
        assert system and {i["ImageSource"] for i in system} == {"system"}
        assert len(system) == sum(1 for i in every if i["Type"] == "CommonImage")
        imported = describe(ks, http, ImageType="import").json()["ImagesSet"]
        assert imported and {i["Type"] for i in imported} == {"CustomImage"}

        unknown = describe(ks, http, ImageId="b1e3731b-c200-4499-be42-f6bfbbda990e")
        assert unknown.status_code == 400
        assert error_of(unknown) == "ImageIdInvalidParameterValue"
        assert error_of(describe(ks, http, ImageId="not-a-uuid")) == "ImageIdInvalidParameterValue"
        assert error_of(describe(ks, http, ImageType="nonsense")) == "InvalidParameterValue"


def test_generation_is_deterministic_and_documented() -> None:
    a, b = generate_images(400, seed=3), generate_images(400, seed=3)
    assert a == b and a != generate_images(400, seed=4)
    assert len({i["ImageId"] for i in a}) == 400
    assert {i["ImageState"] for i in a} == {"active"}  # the only documented state
    assert {i["Type"] for i in a} == {"CommonImage", "CustomImage"}
    for image in a:
        standard = image["Type"] == "CommonImage"
        assert image["ContainerFormat"] == ("ovf" if standard else "assembled_image")
        assert image["IsPublic"] is standard
        assert isinstance(image["Progress"], str)  # a string in KSyun's payloads
        assert image["CreationDate"].endswith("Z")


def test_mutation_in_kec_vocabulary(ks: KsyunEmulator) -> None:
    twin = KsyunCatalogue.generate(300, 21)
    fixed = datetime(2026, 1, 1, tzinfo=UTC)
    changes = ks.catalogue.mutate(7, deprecate=3, delete=2, remove=4, add=5, rename=2, now=fixed)
    assert changes == twin.mutate(7, deprecate=3, delete=2, remove=4, add=5, rename=2, now=fixed)
    assert (changes["deprecate"], changes["cease"], changes["delete"]) == ([], [], [])
    assert (len(changes["remove"]), len(changes["add"]), len(changes["rename"])) == (4, 5, 2)
    listed = {i["ImageId"]: i for i in describe(ks).json()["ImagesSet"]}
    assert not set(changes["remove"]) & set(listed)
    assert set(changes["add"]) <= set(listed)
    assert all(listed[i]["CreationDate"] == "2026-01-01T00:00:00Z" for i in changes["add"])
    assert all(listed[i]["Name"].rsplit("-v", 1)[1].isdigit() for i in changes["rename"])


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("throttle", 503, "RequestLimitExceeded"),
        ("internal", 400, "InternalError"),
        ("server_busy", 400, "ServiceUnavailable"),
    ],
)
def test_faults_answer_in_ksyun_form(ks: KsyunEmulator, kind: str, status: int, code: str) -> None:
    ks.fail(kind, times=1)
    with client() as http:
        response = describe(ks, http)
        assert response.status_code == status and error_of(response) == code
        assert describe(ks, http).status_code == 200  # used up


def test_control_api(ks: KsyunEmulator) -> None:
    url = ks.server.url
    assert httpx.get(f"{url}/_emulator/state").json()["images"] == 300
    mutated = httpx.post(f"{url}/_emulator/mutate", json={"seed": 1, "add": 5}).json()
    assert len(mutated["add"]) == 5 and mutated["deprecate"] == []
    assert httpx.get(f"{url}/_emulator/state").json()["images"] == 305
    assert httpx.post(f"{url}/_emulator/faults", json=[{"kind": "throttle"}]).status_code == 200
    assert describe(ks).status_code == 503
    httpx.delete(f"{url}/_emulator/faults")
    assert describe(ks).status_code == 200


# -- syncs into PostgreSQL ---------------------------------------------------------------------


def sync(engine: Engine, emu: KsyunEmulator, source: SourceConfig | None = None) -> RunResult:
    return sync_source(engine, AT_ONCE, source or emu.source(), policy=FAST)


def test_large_single_response_sync(engine: Engine) -> None:
    """Stands in for "a full multi-page sync": KEC answers everything in one response."""
    emu = KsyunEmulator(images=5000, seed=5)
    try:  # an account whose answers are known to hold more than the default 1,000
        result = sync(engine, emu, emu.source(options={"listing_cap": 10_000}))
    finally:
        emu.server.stop()
    assert result.status == "succeeded", result.error
    assert result.pages == 1
    assert result.listing_complete and result.incomplete_reason is None
    assert (result.images_seen, result.inserted) == (5000, 5000)
    stored = fetch_all(engine, "SELECT provider_image_id, status, raw_status FROM images")
    assert {r.provider_image_id for r in stored} == emu.ids()
    assert {(r.status, r.raw_status) for r in stored} == {("available", "active")}
    run = fetch_all(engine, "SELECT * FROM sync_runs")[0]
    assert (run.status, run.pages, run.images_seen) == ("succeeded", 1, 5000)
    assert run.listing_complete


def test_resync_and_diff_outcomes(engine: Engine, ks: KsyunEmulator) -> None:
    assert sync(engine, ks).inserted == 300
    before = row_versions(engine)
    unchanged = sync(engine, ks)
    assert (unchanged.unchanged, unchanged.changed, unchanged.inserted) == (300, 0, 0)
    assert row_versions(engine) == before

    # Volatile fields move: still no write.
    victim = next(i["ImageId"] for i in ks.catalogue.listing() if i["Type"] == "CustomImage")
    ks.catalogue.edit(victim, Progress="37", FastBoot=True, ExportingStatus="exporting")
    assert sync(engine, ks).changed == 0
    assert row_versions(engine) == before

    changes = ks.catalogue.mutate(3, remove=4, add=6, rename=3)
    result = sync(engine, ks)
    assert result.status == "succeeded", result.error
    assert (result.inserted, result.disappeared, result.changed) == (6, 4, 3)
    for image_id in changes["remove"]:
        assert history_of(engine, image_id)[-1] == ("gone", False)
    renamed = fetch_all(
        engine,
        "SELECT name FROM images WHERE provider_image_id = ANY(:ids)",
        ids=changes["rename"],
    )
    assert all("-v" in r.name for r in renamed)


def test_throttling_in_ksyun_form_is_retried(engine: Engine, ks: KsyunEmulator) -> None:
    ks.fail("throttle", times=1)  # HTTP 503 RequestLimitExceeded
    ks.fail("internal", times=1)  # HTTP 400 InternalError
    result = sync(engine, ks)
    assert result.status == "succeeded", result.error
    assert result.retries == 2
    assert result.inserted == 300 and result.listing_complete


@pytest.mark.parametrize("workers", [0, 2], ids=["here", "by-workers"])
def test_a_streamed_answer_stores_what_a_whole_one_does(
    engine: Engine, ks: KsyunEmulator, workers: int
) -> None:
    """The same listing read whole (source a) and as a stream (source b) stores the same
    rows, and a streamed re-sync writes nothing when nothing changed and sees each change;
    staged in the sync's process, or by workers in small batches, few at a time."""
    assert sync(engine, ks, ks.source("ks-a")).inserted == 300
    settings = replace(AT_ONCE, sync=replace(AT_ONCE.sync, workers=workers))

    def sync_b(engine: Engine, _ks: KsyunEmulator, source: SourceConfig) -> RunResult:
        return sync_source(engine, settings, source, policy=FAST)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsonstream, "SPOOL_ABOVE", 1024)
        patch.setattr(staging, "POOL_MIN_IMAGES", 1)
        patch.setattr(staging, "POOL_MIN_BUSY", 0.0)
        patch.setattr(staging, "SAMPLE_IMAGES", 0)
        patch.setattr(staging, "WINDOW_IMAGES", 100)
        patch.setattr(sync_module, "STREAM_BATCH", 40)
        first = sync_b(engine, ks, ks.source("ks-b"))
        assert (first.status, first.inserted, first.pages) == ("succeeded", 300, 1), first.error
        assert first.listing_complete
        rows = fetch_all(
            engine,
            """SELECT s.name, i.provider_image_id, i.fingerprint, i.raw, i.status, i.tags
                 FROM images i JOIN sources s ON s.id = i.source_id""",
        )
        by_source = {
            name: {r.provider_image_id: tuple(r)[2:] for r in rows if r.name == name}
            for name in ("ks-a", "ks-b")
        }
        assert len(by_source["ks-a"]) == 300 and by_source["ks-a"] == by_source["ks-b"]

        before = row_versions(engine)
        assert sync_b(engine, ks, ks.source("ks-b")).unchanged == 300
        assert row_versions(engine) == before
        ks.catalogue.mutate(3, remove=4, add=6, rename=3)
        again = sync_b(engine, ks, ks.source("ks-b"))
        assert (again.inserted, again.disappeared, again.changed) == (6, 4, 3), again.error


@pytest.mark.parametrize("kind", ["throttle", "http_503", "malformed", "reset"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_failed_listing_marks_nothing_gone(
    engine: Engine, ks: KsyunEmulator, kind: str, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if stream:  # a broken body is found while the items are being staged
        monkeypatch.setattr(jsonstream, "SPOOL_ABOVE", 1024)
    assert sync(engine, ks).status == "succeeded"
    before = row_versions(engine)
    ks.catalogue.mutate(4, remove=40, rename=5)  # would flag 40 images if the run completed
    ks.fail(kind)  # every attempt fails

    result = sync(engine, ks)

    assert result.status == "failed"
    assert "source 'ks-test'" in (result.error or "") and "page 1" in (result.error or "")
    if kind == "throttle":
        assert "RequestLimitExceeded" in (result.error or "")
    assert not result.listing_complete
    assert row_versions(engine) == before
    run = fetch_all(engine, "SELECT * FROM sync_runs WHERE id = :r", r=result.run_id)[0]
    assert run.status == "failed" and not run.listing_complete and run.disappeared == 0


def test_a_listing_that_reaches_the_cap_marks_nothing_gone(engine: Engine) -> None:
    """KSyun's backend asks its image service for 1,000 at a time: a one-answer listing of
    1,000 may be cut, and each run that added images used to mark the oldest gone."""
    emu = KsyunEmulator(images=1000, seed=8)
    try:
        first = sync(engine, emu)
        assert first.status == "succeeded" and first.inserted == 1000
        assert not first.listing_complete
        assert "listing_cap 1000" in (first.incomplete_reason or "")
        assert "filters.ImageType" in (first.incomplete_reason or "")
        emu.app.faults.add(FaultRule(kind="listing_cap", value=1000))  # the backend's cut
        emu.catalogue.mutate(2, add=30, remove=30)  # 30 more go past the cut, 30 really go
        second = sync(engine, emu)
    finally:
        emu.server.stop()
    assert second.status == "succeeded", second.error
    assert second.disappeared == 0 and not second.listing_complete
    gone = fetch_all(engine, "SELECT count(*) AS n FROM images WHERE gone_at IS NOT NULL")
    assert gone[0].n == 0


def test_below_the_cap_is_complete_and_the_cap_is_an_option(engine: Engine) -> None:
    emu = KsyunEmulator(images=120, seed=8)
    try:
        assert sync(engine, emu).listing_complete  # 120 < 1,000
        capped = sync(engine, emu, emu.source(options={"listing_cap": 120}))
    finally:
        emu.server.stop()
    assert not capped.listing_complete and "listing_cap 120" in (capped.incomplete_reason or "")


def test_an_empty_answer_for_a_source_with_images_marks_nothing_gone(
    engine: Engine, ks: KsyunEmulator
) -> None:
    assert sync(engine, ks).inserted == 300
    before = row_versions(engine)
    ks.fail("empty_page", times=1)  # HTTP 200 with "ImagesSet": []
    result = sync(engine, ks)
    assert result.status == "succeeded", result.error
    assert not result.listing_complete and result.disappeared == 0
    assert "came back empty (page 1 held no image), but 300 images" in (
        result.incomplete_reason or ""
    )
    assert row_versions(engine) == before
    assert sync(engine, ks).listing_complete  # the next answer is whole again


@pytest.mark.parametrize(
    ("kw", "code", "field"),
    [
        ({"secret": "wrong-secret"}, "SignatureDoesNotMatch", "credentials.secret_access_key"),
        ({"key": "AKLTNOSUCHKEY"}, "InvalidClientTokenId", "credentials.access_key_id"),
    ],
)
def test_wrong_credentials_fail_clearly(
    engine: Engine, ks: KsyunEmulator, kw: dict[str, str], code: str, field: str
) -> None:
    result = sync(engine, ks, ks.source(**kw))
    assert result.status == "failed"
    assert code in (result.error or "") and field in (result.error or "")
    assert "wrong-secret" not in (result.error or "")
    assert result.retries == 0  # authentication failures are not retried
    assert fetch_all(engine, "SELECT count(*) AS n FROM images")[0].n == 0


def test_filters_reach_the_emulator(engine: Engine, ks: KsyunEmulator) -> None:
    result = sync(engine, ks, ks.source(filters={"ImageType": "system"}))
    assert result.status == "succeeded", result.error
    expected = {i["ImageId"] for i in ks.catalogue.listing() if i["ImageSource"] == "system"}
    stored = fetch_all(engine, "SELECT provider_image_id, visibility FROM images")
    assert {r.provider_image_id for r in stored} == expected
    assert {r.visibility for r in stored} == {"public"}


def test_unknown_status_is_stored_with_one_warning(
    engine: Engine, ks: KsyunEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    odd, building = ks.catalogue.ids()[:3], ks.catalogue.ids()[3]
    for image_id in odd:
        ks.catalogue.edit(image_id, ImageState="error")  # in no Kingsoft source
    ks.catalogue.edit(building, ImageState="creating")  # what Kingsoft's Packer plugin waits out
    with caplog.at_level(logging.WARNING, logger="inventory.sync"):
        result = sync(engine, ks)
    assert result.status == "succeeded"
    assert result.unknown_statuses == {"error": 3}
    query = "SELECT status, raw_status FROM images WHERE provider_image_id = ANY(:ids)"
    rows = fetch_all(engine, query, ids=odd)
    assert {(r.status, r.raw_status) for r in rows} == {("unknown", "error")}
    assert len([r for r in caplog.records if "'error'" in r.getMessage()]) == 1
    [pending] = fetch_all(engine, query, ids=[building])
    assert (pending.status, pending.raw_status) == ("pending", "creating")


def test_record_without_required_field_is_left_out(engine: Engine, ks: KsyunEmulator) -> None:
    """One bad image fails no run: the others are stored, the listing is not whole."""
    victim = ks.catalogue.ids()[0]
    ks.catalogue.edit(victim, ImageState=None)
    result = sync(engine, ks)
    assert result.status == "succeeded", result.error
    reason = result.incomplete_reason or ""
    assert not result.listing_complete and "required field 'ImageState'" in reason
    assert victim in reason and "page 1" in reason
    assert fetch_all(engine, "SELECT count(*) AS n FROM images")[0].n == 299
