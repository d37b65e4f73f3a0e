"""Kingsoft Cloud (KSyun) KEC DescribeImages emulator dialect: SigV4, one response, Error envelope.

What it serves and accepts: docs/providers/ksyun.md ("Emulator"); the rest is the engine's.
"""

from __future__ import annotations

import contextlib
import email.utils
import hmac
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from hashlib import sha256
from random import Random
from typing import Any
from urllib.parse import parse_qsl

from inventory.emulation import Call, Catalogue, EmulatedSource, EmulatorApp, Refusal, refusal_table
from inventory.emulation.catalogue import Image
from inventory.emulation.messages import Request, Response
from inventory.emulation.traits import ImageTraits, draw_traits, iso_z, uuid4
from inventory.providers.ksyun.auth import ALGORITHM, AMZ_DATE_FORMAT, SERVICE, TERMINATOR, sign

DEFAULT_ACCESS_KEY_ID = "AKLTKSEMULATORKEY"
DEFAULT_SECRET_ACCESS_KEY = "ksyun-emulator-secret-access-key"  # noqa: S105 - a documented test key
DEFAULT_REGIONS = frozenset({"cn-beijing-6", "cn-shanghai-2", "cn-guangzhou-1", "cn-hongkong-2"})
ACTION, API_VERSION = "DescribeImages", "2016-03-04"
REGIONS_ACTION = "DescribeRegions"
IMAGE_SOURCES = ("system", "import", "copy", "share", "extend")  # also the ImageType values
_FILTER_FIELDS = {"ImageId": "ImageId", "ImageType": "ImageSource"}  # parameter: image field
#: Every answer but the listing: name, HTTP status, code, message (a str.format template).
_REFUSALS = refusal_table("""
throttle    503 RequestLimitExceeded         Request limit exceeded, please try again later.
error       400 InternalError                Internal Error
internal    400 InternalError                Internal Error
server_busy 400 ServiceUnavailable           I/O error on GET request for "http://image-backend/v2/images": connect timed out
unsigned    403 MissingAuthenticationToken   Request is missing signature.
algorithm   400 IncompleteSignature          Unsupported signing algorithm; use {0}.
incomplete  400 IncompleteSignature          The signature must contain Credential, SignedHeaders and Signature.
stamp       400 IncompleteSignature          X-Amz-Date {0!r} is not YYYYMMDDTHHMMSSZ.
no_date     400 IncompleteSignature          The request must carry an X-Amz-Date (or Date) header or parameter.
scope       400 IncompleteSignature          Credential must have the form <AccessKeyId>/<date>/<region>/kec/aws4_request.
key         403 InvalidClientTokenId         The AccessKeyId in the request does not exist.
service     403 SignatureDoesNotMatch        Credential should be scoped to correct service: '{0}'.
date        403 SignatureDoesNotMatch        Credential should be scoped to a valid date: '{0}'.
headers     403 SignatureDoesNotMatch        SignedHeaders must include host and be present.
signature   403 SignatureDoesNotMatch        The request signature we calculated does not match the signature you provided. Check your Secret Access Key and signing method.
expired     400 RequestExpired               Request has expired: X-Amz-Date {0} is {1:.0f}s from server time.
region      400 InvalidRegion                The region '{0}' does not exist.
no_action   400 MissingParameter             The request must contain Action.
action      400 InvalidAction                The action {0} is not valid for this endpoint.
version     400 InvalidParameterValue        Version {0!r} is not supported; use {1}.
image_id    400 ImageIdInvalidParameterValue An invalid or out-of-range value was supplied for the "ImageId" parameter.
image_type  400 InvalidParameterValue        The value {0!r} is not valid for "ImageType".
""")  # noqa: E501 - a table
_SIGNATURE_FIELDS = ("Credential", "SignedHeaders", "Signature")


def _make_image(rng: Random, traits: ImageTraits) -> Image:
    """One ImagesSet item from provider-neutral traits, in KEC's field names and types."""
    system, linux = traits.system, traits.os.platform == "linux"
    image_id = uuid4(rng)  # KEC ids (images, instances, snapshots) are UUIDs
    source = "system" if system else rng.choices(("import", "copy", "share"), (70, 20, 10))[0]
    words = traits.os.version.split()  # Platform is "centos-7.9": family and version number
    version = next((w for w in words if any(c.isdigit() for c in w)), words[-1]).lower()
    kind = "CommonImage" if system else "CustomImage"
    image: Image = dict(ImageId=image_id, Name=traits.name, Type=kind, ImageState="active")
    image.update(CreationDate=iso_z(traits.created), Platform=f"{traits.os.family}-{version}")
    image.update(IsPublic=system, ContainerFormat="ovf" if system else "assembled_image")
    image.update(InstantAccess=rng.random() < 0.3, IsNpe=rng.random() < 0.8)
    image.update(UserCategory="common" if system or source == "share" else source)
    image.update(SysDisk=traits.size_gb, Progress="100")  # a string, as KSyun sends it
    image.update(ImageSource=source, CloudInitSupport=linux, Ipv6Support=rng.random() < 0.6)
    image.update(IsModifyType=rng.random() < 0.7, Architecture=traits.architecture)
    image.update(FastBoot=rng.random() < 0.2, IsCloudMarket=False, RealImageId=image_id)
    image.update(OnlineExpansion=linux, ImageMode=rng.choice(("legacy", "legacy", "uefi")))
    image["SnapshotSet"] = []
    if not system:
        image["InstanceId"] = uuid4(rng)
        snap: Image = dict(SnapshotId=uuid4(rng), DiskType="SystemDisk", DiskSize=traits.size_gb)
        snap.update(Type="CommonSnapshot", VolumeType=rng.choice(("SSD3.0", "EHDD", "ESSD_PL1")))
        image["SnapshotSet"] = [{**snap, "AvailabilityZone": "cn-beijing-6" + rng.choice("abcd")}]
        if source == "copy":
            image["OriginalImageId"] = uuid4(rng)
    return image


def _images(rng: Random, n: int, share: float, taken: Iterable[str], at: int | None) -> list[Image]:
    """``n`` images, ids unique and not in ``taken``, all created ``at`` (Unix s) if given."""
    images: dict[str, Image] = {}  # by id, so an id drawn twice counts once
    while len(images) < n:  # draw again for ids taken or drawn twice
        for image in [_make_image(rng, t) for t in draw_traits(rng, n - len(images), share, at)]:
            if image["ImageId"] not in taken:
                images.setdefault(image["ImageId"], image)
    return list(images.values())


def generate_images(count: int, seed: int, system_share: float = 0.2) -> list[Image]:
    """A deterministic catalogue: the same arguments give the same images."""
    return _images(Random(seed), count, system_share, (), None)


class KsyunCatalogue(Catalogue):
    """One account's KEC images: only custom ones change; KEC lists no deprecated state."""

    id_key, name_field = "ImageId", "Name"

    @staticmethod
    def draw(count: int, seed: int, owner: str, system_share: float = 0.2) -> list[Image]:
        return generate_images(count, seed, system_share)  # KEC records name no owner

    def owned(self, image: Image) -> bool:
        return bool(image["Type"] == "CustomImage")

    def new_images(
        self, rng: Random, count: int, now: datetime, taken: Iterable[str]
    ) -> list[Image]:
        return _images(rng, count, 0.0, taken, int(now.timestamp()))

    def listing(self, filters: tuple[tuple[str, str], ...] = ()) -> Sequence[Image]:
        """The images matching ``(("ImageId", id), ("ImageType", source))``, cached; read only."""
        wanted = {(_FILTER_FIELDS[key], value) for key, value in filters}
        return self.view(filters, lambda images: [i for i in images if wanted <= i.items()])


class KsyunApp(EmulatorApp):
    """DescribeImages as KEC answers it: SigV4 checked, the whole listing in one answer."""

    provider = "ksyun"
    catalogue_class = KsyunCatalogue
    default_key = dict(
        access_key_id=DEFAULT_ACCESS_KEY_ID, secret_access_key=DEFAULT_SECRET_ACCESS_KEY
    )
    clock_skew_s = 900.0  # as AWS SigV4 services allow
    paging = "single"
    refusals = _REFUSALS
    answers = {kind: _REFUSALS[kind] for kind in ("throttle", "error", "internal", "server_busy")}
    default_locations = DEFAULT_REGIONS  # those a credential scope may name
    catalogue: KsyunCatalogue

    def banner(self) -> str:
        return f"access key id {self.key_id}; regions {', '.join(sorted(self.locations))}"

    def envelope(self, status: int, code: Any, message: str) -> Response:
        error = {"Code": code, "Message": message}
        return Response.json(status, {"RequestId": str(uuid.uuid4()), "Error": error})

    def read(self, request: Request) -> Call:
        if request.path != "/":
            raise Refusal(Response.html(404, "404 Not Found"))
        if request.method not in ("GET", "POST"):
            raise Refusal(Response.text(405, "Method Not Allowed"))
        query = parse_qsl(request.raw_query, keep_blank_values=True)
        form = "application/x-www-form-urlencoded" in request.headers.get("content-type", "")
        body = request.body.decode("utf-8", "replace") if request.method == "POST" and form else ""
        return Call(extra=(query, dict(query + parse_qsl(body, keep_blank_values=True))))

    def authenticate(self, request: Request, call: Call) -> None:
        query: list[tuple[str, str]] = call.extra[0]
        presigned, headers = dict(query), request.headers
        if "X-Amz-Algorithm" in presigned:  # the signature is in the query
            algorithm = presigned["X-Amz-Algorithm"]
            fields = {k: presigned.get(f"X-Amz-{k}", "") for k in _SIGNATURE_FIELDS}
            stamp = presigned.get("X-Amz-Date") or headers.get("x-amz-date")
        else:
            self.check("authorization" in headers, "unsigned")
            algorithm, _, rest = headers["authorization"].partition(" ")
            pairs = (item.strip().partition("=") for item in rest.split(","))
            fields, stamp = {k: v for k, sep, v in pairs if sep}, headers.get("x-amz-date")
        credential, signed_headers, signature = (fields.get(k, "") for k in _SIGNATURE_FIELDS)
        self.check(algorithm == ALGORITHM, "algorithm", ALGORITHM)
        self.check(bool(credential and signed_headers and signature), "incomplete")
        moment = self._moment(stamp, headers.get("date"))  # else the Date header, as KSyun does
        scope = credential.split("/")
        self.check(len(scope) == 5 and scope[4] == TERMINATOR, "scope")
        key_id, date, region, service, _ = scope
        self.check(key_id == self.key_id, "key")
        self.check(service == SERVICE, "service", SERVICE)
        amz_date = moment.strftime(AMZ_DATE_FORMAT)
        self.check(date == amz_date[:8], "date", amz_date[:8])
        names = signed_headers.split(";")
        self.check("host" in names and all(n in headers for n in names), "headers")
        body_hash = sha256(request.body).hexdigest()
        signed: dict[str, Any] = dict(method=request.method, path=request.path, params=query)
        signed.update(headers=headers, signed_headers=names, payload_hash=body_hash)
        expected = sign(**signed, secret=self._secret, amz_date=amz_date, region=region).signature
        self.check(hmac.compare_digest(expected.encode(), signature.encode()), "signature")
        # After the signature: a stale request is reported as stale only if otherwise genuine.
        skew = abs((self.now() - moment).total_seconds())
        self.check(skew <= self.clock_skew_s, "expired", amz_date, skew)
        # The region list is asked for in a region the cloud has, offered to the account
        # or not (KSyun's SDK asks cn-beijing-6).
        listing_regions = call.extra[1].get("Action") == REGIONS_ACTION
        served = self.locations | self.default_locations if listing_regions else self.locations
        self.check(region in served, "region", region)

    def route(self, request: Request) -> Response | None:
        """DescribeRegions: signed and limited like the listing."""
        if request.path != "/":
            return None
        call = self.read(request)
        if call.extra[1].get("Action") != REGIONS_ACTION:
            return None
        return self.serve_other(request, call, self._regions)

    def _regions(self, call: Call) -> Response:
        version = call.extra[1].get("Version")
        self.check(version == API_VERSION, "version", version, API_VERSION)
        regions = [{"Region": region, "RegionName": region} for region in sorted(self.locations)]
        return Response.json(200, {"RequestId": str(uuid.uuid4()), "RegionSet": regions})

    def _moment(self, stamp: str | None, date_header: str | None) -> datetime:
        if stamp:
            return self.moment(stamp, AMZ_DATE_FORMAT, "stamp", stamp)
        with contextlib.suppress(TypeError, ValueError):  # no Date header, or not a date
            return email.utils.parsedate_to_datetime(date_header or "").astimezone(UTC)
        raise self.fail("no_date")

    def select(self, request: Request, call: Call) -> Call:
        params: dict[str, str] = call.extra[1]
        action, version = params.get("Action"), params.get("Version")
        self.check(action, "no_action")
        self.check(action == ACTION, "action", action)
        self.check(version == API_VERSION, "version", version, API_VERSION)
        image_id, image_type = params.get("ImageId"), params.get("ImageType")
        self.check(image_id is None or self.catalogue.get(image_id) is not None, "image_id")
        self.check(image_type in (None, *IMAGE_SOURCES), "image_type", image_type)
        return Call(selection=tuple(sorted((k, params[k]) for k in _FILTER_FIELDS if k in params)))

    def page(self, items: list[Image], total: int, call: Call) -> Response:
        return Response.json(200, {"RequestId": str(uuid.uuid4()), "ImagesSet": items})


EMULATED = EmulatedSource(KsyunApp, "Kingsoft KEC", ("region", "cn-beijing-6"), page_size=None)
make_server = EMULATED.make_server
