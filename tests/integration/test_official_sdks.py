"""The providers' own Python SDKs against the emulators, over real HTTP on loopback.

Each official client, configured as its documentation says, with only the endpoint
pointed at the emulator: it signs as it signs the real API, lists, pages and filters, and
an error comes back in the SDK's own form. What it lists is what the project's collector
lists, so the emulator speaks the protocol both sides read, not just what the project
expects. Each SDK's quirks are noted where a test depends on them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from inventory.config import parse_settings
from inventory.emulation import Running
from inventory.http import RetryPolicy
from inventory.providers import PROVIDERS
from inventory.providers.huawei_common.emulator_iam import (
    DEFAULT_DOMAIN_NAME,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
)
from inventory.providers.huawei_ims.emulator import DEFAULT_REGION as IMS_REGION

IMAGES = 95
PAGE = 20


@pytest.fixture
def running(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    emulated = PROVIDERS.emulated(request.param)
    started = emulated.start(images=IMAGES, seed=12, name=f"sdk-{request.param}")
    for name, value in started.env.items():
        monkeypatch.setenv(name, value)
    yield started
    started.stop()


def _credentials(running: Running) -> dict[str, str]:
    """The credential values the emulator accepts, by the source's field names."""
    refs = running.source["credentials"]
    return {field: running.env[ref[2:-1]] for field, ref in refs.items()}


def _collector_ids(running: Running) -> set[str]:
    """What the project's own collector lists from the same emulator, same account."""
    source = parse_settings({"sources": [running.source]}, None).sources[0]
    policy = RetryPolicy(max_attempts=1)
    collector = PROVIDERS[running.provider].collector(source, policy, None)
    try:
        key = running.catalogue.id_key
        ids = {str(item[key]) for page in collector.pages() for item in page.items}
        assert collector.complete
        return ids
    finally:
        collector.close()


def _host(running: Running) -> str:
    return running.server.url.removeprefix("http://")


# -- Tencent Cloud: tencentcloud-sdk-python-cvm -----------------------------------------------


def _tencent(running: Running, secret_key: str | None = None, region: str = "ap-guangzhou") -> Any:
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.cvm.v20170312 import cvm_client

    keys = _credentials(running)
    http = HttpProfile(protocol="http", endpoint=_host(running), reqMethod="POST")
    cred = credential.Credential(keys["secret_id"], secret_key or keys["secret_key"])
    return cvm_client.CvmClient(cred, region, ClientProfile(httpProfile=http))


def _tencent_request(**fields: Any) -> Any:
    from tencentcloud.cvm.v20170312 import models

    request = models.DescribeImagesRequest()
    request.from_json_string(json.dumps(fields))
    return request


@pytest.mark.parametrize("running", ["tencent"], indirect=True)
def test_tencent_sdk_lists_pages_and_filters(running: Running) -> None:
    client = _tencent(running)
    ids: list[str] = []
    total = None
    while total is None or len(ids) < total:
        answer = client.DescribeImages(_tencent_request(Offset=len(ids), Limit=PAGE))
        assert answer.ImageSet, "a page before the end came back empty"
        ids += [image.ImageId for image in answer.ImageSet]
        total = answer.TotalCount
    assert len(ids) == len(set(ids)) == total > PAGE * 2
    assert set(ids) == _collector_ids(running)

    private = client.DescribeImages(
        _tencent_request(Filters=[{"Name": "image-type", "Values": ["PRIVATE_IMAGE"]}], Limit=100)
    )
    assert 0 < private.TotalCount < total
    assert {image.ImageType for image in private.ImageSet} == {"PRIVATE_IMAGE"}


@pytest.mark.parametrize("running", ["tencent"], indirect=True)
def test_tencent_sdk_raises_its_own_exception(running: Running) -> None:
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    with pytest.raises(TencentCloudSDKException) as wrong_key:
        _tencent(running, secret_key="not-the-key").DescribeImages(_tencent_request())
    assert wrong_key.value.get_code() == "AuthFailure.SignatureFailure"
    assert wrong_key.value.get_request_id()
    with pytest.raises(TencentCloudSDKException) as too_many:
        _tencent(running).DescribeImages(_tencent_request(Limit=1000))
    assert too_many.value.get_code() == "InvalidParameterValue"
    assert "Limit" in too_many.value.get_message()
    with pytest.raises(TencentCloudSDKException) as region:
        _tencent(running, region="xx-nowhere").DescribeImages(_tencent_request())
    assert region.value.get_code() == "UnsupportedRegion"


# -- Huawei Cloud IEC: huaweicloudsdkiec ------------------------------------------------------


def _iec(running: Running, secret: str | None = None) -> Any:
    from huaweicloudsdkcore.auth.credentials import GlobalCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkiec.v1 import IecClient

    keys = _credentials(running)
    domain_id = running.source["options"]["domain_id"]
    credentials = GlobalCredentials(keys["access_key_id"], secret or keys["secret_access_key"])
    config = HttpConfig.get_default_config()
    config.retry_times = 0
    return (
        IecClient.new_builder()
        .with_credentials(credentials.with_domain_id(domain_id))
        .with_endpoints([running.server.url])
        .with_http_config(config)
        .build()
    )


@pytest.mark.parametrize("running", ["huawei-iec"], indirect=True)
def test_huawei_iec_sdk_lists_pages_and_filters(running: Running) -> None:
    from huaweicloudsdkiec.v1 import ListImagesRequest

    client = _iec(running)
    ids: list[str] = []
    total = None
    while total is None or len(ids) < total:
        answer = client.list_images(ListImagesRequest(limit=PAGE, offset=len(ids)))
        assert answer.images, "a page before the end came back empty"
        ids += [image.id for image in answer.images]
        total = answer.total
    assert len(ids) == len(set(ids)) == total > PAGE * 2
    assert set(ids) == _collector_ids(running)

    private = client.list_images(
        ListImagesRequest(
            imagetype="private", status="active", limit=100, sort_key="name", sort_dir="asc"
        )
    )
    assert 0 < private.total < total
    assert {(i.imagetype, i.status) for i in private.images} == {("private", "active")}
    names = [image.name for image in private.images]
    assert names == sorted(names)


@pytest.mark.parametrize("running", ["huawei-iec"], indirect=True)
def test_huawei_iec_sdk_raises_its_own_exception(running: Running) -> None:
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkiec.v1 import ListImagesRequest

    with pytest.raises(ClientRequestException) as wrong_key:
        _iec(running, secret="not-the-key").list_images(ListImagesRequest(limit=1))
    assert (wrong_key.value.status_code, wrong_key.value.error_code) == (401, "APIGW.0301")
    assert wrong_key.value.request_id
    with pytest.raises(ClientRequestException) as bad_status:
        _iec(running).list_images(ListImagesRequest(status="bogus", limit=1))
    assert bad_status.value.status_code == 400
    assert "status" in bad_status.value.error_msg


# -- Huawei Cloud IMS v1.1: keystoneauth1 for the token, its Session for the listing ----------


def _keystone(running: Running, password: str = DEFAULT_PASSWORD, **scope: str) -> Any:
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    scope = scope or {"project_name": IMS_REGION, "project_domain_name": DEFAULT_DOMAIN_NAME}
    auth = v3.Password(
        auth_url=running.server.url + "/v3",
        username=DEFAULT_USERNAME,
        password=password,
        user_domain_name=DEFAULT_DOMAIN_NAME,
        include_catalog=False,
        **scope,
    )
    return session.Session(auth=auth)


@pytest.mark.parametrize("running", ["huawei-ims-v1"], indirect=True)
def test_keystoneauth_token_lists_ims_pages_and_filters(running: Running) -> None:
    client = _keystone(running)
    access = client.auth.get_access(client)
    assert access.project_name == IMS_REGION and access.project_id
    url = running.server.url + "/v1.1/images/detail"
    ids: list[str] = []
    marker: str | None = None
    while True:  # Glance v1: no total; a short page ends it (python-glanceclient's rule)
        params: dict[str, Any] = {"limit": PAGE, "sort_key": "name", "sort_dir": "asc"}
        if marker:
            params["marker"] = marker
        page = client.get(url, params=params).json()["images"]
        ids += [image["id"] for image in page]
        if len(page) < PAGE:
            break
        marker = page[-1]["id"]
    assert len(ids) == len(set(ids)) > PAGE * 2
    assert set(ids) == _collector_ids(running)

    answer = client.get(url, params={"status": "active", "disk_format": "qcow2", "limit": 100})
    active = answer.json()["images"]
    assert 0 < len(active) < len(ids)
    assert {(i["status"], i["disk_format"]) for i in active} == {("active", "qcow2")}
    assert answer.headers["X-Openstack-Request-Id"]


@pytest.mark.parametrize("running", ["huawei-ims-v1"], indirect=True)
def test_keystoneauth_raises_its_own_exceptions(running: Running) -> None:
    from keystoneauth1 import exceptions

    url = running.server.url + "/v1.1/images/detail"
    with pytest.raises(exceptions.BadRequest) as bad_marker:
        _keystone(running).get(url, params={"marker": "no-such-image"})
    assert "Invalid marker" in bad_marker.value.message
    with pytest.raises(exceptions.Unauthorized):
        _keystone(running, password="not-the-password").get(url)
    with pytest.raises(exceptions.Unauthorized):
        _keystone(running, project_name="xx-1", project_domain_name=DEFAULT_DOMAIN_NAME).get(url)


# -- QingCloud: qingcloud-sdk -----------------------------------------------------------------


def _qingcloud(running: Running, secret: str | None = None, zone: str = "pek3a") -> Any:
    from qingcloud.iaas.connection import APIConnection

    keys = _credentials(running)
    return APIConnection(
        keys["access_key_id"],
        secret or keys["secret_access_key"],
        zone,
        host="127.0.0.1",
        port=running.server.port,
        protocol="http",
        retry_time=1,  # 0 sends nothing at all
    )


@pytest.mark.parametrize("running", ["qingcloud"], indirect=True)
def test_qingcloud_sdk_lists_pages_and_filters(running: Running) -> None:
    client = _qingcloud(running)
    ids: list[str] = []
    total = None
    while total is None or len(ids) < total:
        answer = client.describe_images(offset=len(ids), limit=PAGE)
        assert answer["ret_code"] == 0, answer
        assert answer["image_set"], "a page before the end came back empty"
        ids += [image["image_id"] for image in answer["image_set"]]
        total = answer["total_count"]
    assert len(ids) == len(set(ids)) == total > PAGE * 2
    assert set(ids) == _collector_ids(running)

    system = client.describe_images(provider="system", status=["available", "deprecated"])
    assert system["ret_code"] == 0 and system["total_count"] > 0
    assert {i["provider"] for i in system["image_set"]} == {"system"}
    assert {i["status"] for i in system["image_set"]} <= {"available", "deprecated"}
    two = client.describe_images(images=ids[:2])  # sent as images.1, images.2
    assert sorted(i["image_id"] for i in two["image_set"]) == sorted(ids[:2])


@pytest.mark.parametrize("running", ["qingcloud"], indirect=True)
def test_qingcloud_sdk_errors_in_its_own_form(running: Running) -> None:
    """qingcloud-sdk returns an API error as the parsed answer (``ret_code`` not 0) and
    raises its own exception only for what it checks itself."""
    from qingcloud.iaas.errors import InvalidParameterError

    wrong_key = _qingcloud(running, secret="not-the-key").describe_images()
    assert wrong_key["ret_code"] == 1200, wrong_key
    assert _qingcloud(running).describe_images(status=["bogus"])["ret_code"] == 1100
    assert _qingcloud(running).describe_images(images=["img-zzzzzzzz"])["ret_code"] == 2100
    with pytest.raises(InvalidParameterError):
        _qingcloud(running).describe_images(limit="many")


# -- Kingsoft Cloud: kingsoftcloud-sdk-python -------------------------------------------------


def _ksyun(running: Running, secret: str | None = None, region: str = "cn-beijing-6") -> Any:
    from ksyun.client.kec.v20160304 import client
    from ksyun.common import credential
    from ksyun.common.profile.client_profile import ClientProfile
    from ksyun.common.profile.http_profile import HttpProfile

    keys = _credentials(running)
    cred = credential.Credential(keys["access_key_id"], secret or keys["secret_access_key"])
    http = HttpProfile(protocol="http", endpoint=_host(running))
    return client.KecClient(cred, region, ClientProfile(httpProfile=http))


def _ksyun_request(**fields: Any) -> Any:
    from ksyun.client.kec.v20160304 import models

    request = models.DescribeImagesRequest()
    for name, value in fields.items():
        setattr(request, name, value)
    return request


@pytest.mark.parametrize("running", ["ksyun"], indirect=True)
def test_ksyun_sdk_lists_and_filters(running: Running) -> None:
    """KEC DescribeImages has no paging parameters: one answer is the whole listing (the
    SDK returns its JSON text)."""
    client = _ksyun(running)
    everything = json.loads(client.DescribeImages(_ksyun_request()))["ImagesSet"]
    ids = [image["ImageId"] for image in everything]
    assert len(ids) == len(set(ids)) == IMAGES
    assert set(ids) == _collector_ids(running)

    system = json.loads(client.DescribeImages(_ksyun_request(ImageType="system")))["ImagesSet"]
    assert 0 < len(system) < IMAGES
    assert {image["ImageSource"] for image in system} == {"system"}
    one = json.loads(client.DescribeImages(_ksyun_request(ImageId=ids[3])))["ImagesSet"]
    assert [image["ImageId"] for image in one] == [ids[3]]


@pytest.mark.parametrize("running", ["ksyun"], indirect=True)
def test_ksyun_sdk_raises_its_own_exception(running: Running) -> None:
    """The SDK raises KsyunSDKException for any non-200 answer, with the API's error body as
    the message (its ``code`` is its own "ServerNetworkError")."""
    from ksyun.common.exception.ksyun_sdk_exception import KsyunSDKException

    cases = [
        (_ksyun(running, secret="not-the-key"), {}, "SignatureDoesNotMatch"),
        (_ksyun(running, region="xx-1"), {}, "InvalidRegion"),
        (_ksyun(running), {"ImageType": "bogus"}, "InvalidParameterValue"),
    ]
    for client, fields, code in cases:
        with pytest.raises(KsyunSDKException) as error:
            client.DescribeImages(_ksyun_request(**fields))
        body = json.loads(error.value.message)
        assert body["Error"]["Code"] == code
        assert body["RequestId"]
