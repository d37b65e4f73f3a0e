"""Huawei IMS OpenStack-native ``GET /v1.1/images/detail``: IAM token, Glance v1 paging.

Shared Huawei code (IAM tokens, error envelopes): :mod:`inventory.providers.huawei_common`.
There is no request signature here (the token is a bearer credential), so there is no
signing known-answer test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inventory.providers import ProviderSpec
from inventory.providers.huawei_common.options import options_validator
from inventory.providers.huawei_ims import collect, normalize

if TYPE_CHECKING:
    from inventory.config import SourceConfig
    from inventory.http import RetryPolicy
    from inventory.records import ImageRecord


class HuaweiImsV1:
    spec = ProviderSpec(
        name="huawei-ims-v1",
        location_field="region",
        example_location="cn-north-4",
        credential_sets=(("username", "password"),),
        env_prefix="HUAWEI",
        default_page_size=collect.DEFAULT_PAGE_SIZE,
        max_page_size=collect.MAX_PAGE_SIZE,
        # "{region}" is filled in from the source's region.
        default_endpoint=collect.DEFAULT_ENDPOINT,
        validate_filters=collect.validate_filters,
        validate_options=options_validator(
            ("iam_endpoint", "domain_name", "project_id", "project_name")
        ),
    )

    def collector(
        self, source: SourceConfig, policy: RetryPolicy, on_retry: Callable[[], None] | None
    ) -> collect.ImsCollector:
        return collect.ImsCollector(source, policy, on_retry)

    def normalize(self, raw: dict[str, Any]) -> ImageRecord:
        return normalize.normalize(raw)


PROVIDER = HuaweiImsV1()
