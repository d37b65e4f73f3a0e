"""Huawei IMS OpenStack-native ``GET /v1.1/images/detail``: errors and marker paging.

This is Glance v1's detailed listing behind Huawei's API gateway (deprecated by Huawei,
which no longer returns Windows images from it):

- Paging: Glance v1 ``limit``/``marker`` with no total and no next link, so
  :class:`~inventory.paging.MarkerPaging`: the marker is the id of the last image of the
  previous page, in ``sort_key=created_at&sort_dir=desc`` order (Glance's default, sent).
  Huawei documents neither parameter nor a maximum; upstream Glance clamps ``limit`` to
  ``api_limit_max`` (1000). A short or empty page is not trusted as the end: one more
  request, the listing oldest first (``sort_dir=asc``, ``limit=1``), must name the last
  image listed. If it does not, a short page was a clamped one and paging goes on, and an
  empty page cut the listing short, which is then incomplete (nothing is marked gone). A
  server that ignores ``limit`` and answers everything at once is handled the same way.
- Upstream Glance answers a marker that names a deleted image with 400 "Invalid marker":
  an image deleted while we page fails the run (a terminal error; the next run starts
  over), it never ends the listing early.
- Filters: the seven Huawei documents (``name``, ``container_format``, ``disk_format``,
  ``status``, ``size_min``, ``size_max``, ``changes-since``). With ``changes-since`` Glance
  v1 also lists deleted images.
- Errors: plain HTTP statuses; bodies are the gateway's ``{"error_code", "error_msg"}``,
  IMS's ``{"error": {"code", "message"}}`` or text. 429 (``APIGW.0308``) and 5xx are retried.
- The endpoint is the IMS base URL, default ``https://ims.<region>.myhuaweicloud.com``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from inventory.errors import MalformedResponse
from inventory.paging import MarkerPaging, Page, PagingStrategy
from inventory.providers.base import PagedCollector
from inventory.providers.fields import parse_time
from inventory.providers.huawei_common.errors import raise_for_response
from inventory.providers.huawei_common.options import options_validator
from inventory.providers.huawei_ims.auth import iam_endpoint, make_auth
from inventory.source import SourceConfig

DEFAULT_ENDPOINT = "https://ims.{region}.myhuaweicloud.com"
#: The call listing the account's projects (``regions = "*"``): IAM's
#: ``GET /v3/auth/projects`` with a token scoped to the account's domain. A region's project
#: is named like the region; sub-projects (``cn-north-4_dev``) and ``MOS`` (OBS billing)
#: are no regions of their own, and disabled projects are left out.
DISCOVERY = "KeystoneListAuthProjects"
PROJECTS_PATH = "/v3/auth/projects"
REGION_PROJECT = re.compile(r"^[a-z]{2}(-[a-z0-9]+)+-\d+$")
PATH = "/v1.1/images/detail"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

#: Glance v1 statuses accepted by the ``status`` filter.
STATUSES = ("queued", "saving", "active", "killed", "deleted", "pending_delete")
STRING_FILTERS = ("name", "container_format", "disk_format")
SIZE_FILTERS = ("size_min", "size_max")
ALL_FILTERS = (*STRING_FILTERS, "status", *SIZE_FILTERS, "changes-since")


#: The non-secret ``[sources.options]`` this provider takes.
validate_options = options_validator(("iam_endpoint", "domain_name", "project_id", "project_name"))


def validate_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Config ``[sources.filters]`` for IMS v1.1. Raises ValueError("<field>: <problem>").

    ``changes-since`` takes a TOML date-time or an ISO 8601 string (no zone = UTC) and is
    sent as ``YYYY-MM-DDTHH:MM:SSZ``; sizes are bytes.
    """
    out: dict[str, Any] = {}
    for key, value in filters.items():
        if key in STRING_FILTERS:
            if not isinstance(value, str) or not value:
                raise ValueError(f"{key}: must be a non-empty string")
            out[key] = value
        elif key == "status":
            if value not in STATUSES:
                raise ValueError(f"status: {value!r} is not one of {', '.join(STATUSES)}")
            out[key] = value
        elif key in SIZE_FILTERS:
            number = value
            if isinstance(value, str) and value.isdigit():
                number = int(value)
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ValueError(f"{key}: must be a whole number of bytes, 0 or more")
            out[key] = str(number)
        elif key == "changes-since":
            moment = value if isinstance(value, datetime) else parse_time(value)
            if moment is None:
                raise ValueError("changes-since: must be a date-time such as 2024-01-31T00:00:00Z")
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            out[key] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            raise ValueError(f"{key}: unknown filter (allowed: {', '.join(ALL_FILTERS)})")
    return out


def _marker_of(item: dict[str, Any]) -> str:
    marker = item.get("id")
    if not isinstance(marker, str) or not marker:
        raise MalformedResponse(
            "the last image of the page has no 'id', so the next page cannot be asked for"
        )
    return marker


class ImsCollector(PagedCollector):
    """Pages through IMS ``/v1.1/images/detail`` for one source."""

    action = "images/detail"
    discovery_action = DISCOVERY

    default_page_size = DEFAULT_PAGE_SIZE
    #: The API gateway's published default for a cloud-service API (requests per second).
    default_rate_limit_per_s = 200.0

    def _prepare(self, source: SourceConfig) -> None:
        base = source.endpoint or DEFAULT_ENDPOINT.format(region=source.location)
        self.url = base.rstrip("/") + PATH
        self._base = [(k, str(v)) for k, v in source.filters.items()]

    def _auth(self, source: SourceConfig) -> httpx.Auth:
        return make_auth(source)

    def _discover(self) -> list[str]:
        response = self._client.get(iam_endpoint(self.source).rstrip("/") + PROJECTS_PATH)
        raise_for_response(
            response,
            what=f"GET {PROJECTS_PATH}",
            auth_hint="check credentials.username and credentials.password and "
            "options.domain_name of this source",
            hints={403: "access denied; the IAM user may not list the account's projects"},
        )
        body = self.json_body(response, "projects response")
        projects = self.item_list(
            body.get("projects") if isinstance(body, dict) else None, "'projects'"
        )
        if not all(isinstance(p.get("name"), str) for p in projects):
            raise MalformedResponse("a project of 'projects' has no name")
        return [
            p["name"]
            for p in projects
            if p.get("enabled", True) is not False and REGION_PROJECT.match(p["name"])
        ]

    def _paging(self) -> PagingStrategy:
        # The probe that confirms the end asks for the listing oldest first: Glance's
        # secondary keys (created_at, id) follow sort_dir, so it is the exact reverse.
        order = {"sort_key": "created_at", "sort_dir": "desc"}  # Glance's default, sent
        reverse = {"sort_key": "created_at", "sort_dir": "asc"}
        return MarkerPaging(self.page_size, order=order, reverse=reverse, marker_of=_marker_of)

    def _request(self, paging: dict[str, Any], number: int) -> Page:
        params: list[tuple[str, str | int | float | bool | None]] = [
            *self._base,
            *((k, str(v)) for k, v in paging.items()),
        ]
        return self._parse(self._client.get(self.url, params=params), number)

    def _parse(self, response: httpx.Response, number: int) -> Page:
        raise_for_response(
            response,
            what="GET /v1.1/images/detail",
            auth_hint="check credentials.username and credentials.password, options.domain_name "
            "and the project scope for this source",
            hints={
                400: "a filter or the marker was refused (a marker naming an image deleted "
                "while paging is refused too; the next run starts over); check the source's "
                "filters",
                403: "access denied; the IAM user may not list images in this project",
                404: "no IMS v1.1 API there; check the source's endpoint and region",
            },
        )
        body = self.json_body(response, "images/detail response")
        items = self.item_list(body.get("images") if isinstance(body, dict) else None, "'images'")
        return Page(number=number, items=items)
