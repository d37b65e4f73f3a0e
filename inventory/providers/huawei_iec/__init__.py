"""Huawei Cloud IEC ListImages: AK/SK SDK-HMAC-SHA256 or IAM token, offset paging.

Facts: docs/providers/huawei-iec.md; the signer's known-answer vectors are in
tests/unit/test_huawei_signature.py. Shared Huawei code (signer, IAM tokens, error
envelopes): :mod:`inventory.providers.huawei_common`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inventory.providers import ProviderSpec
from inventory.providers.huawei_common.options import options_validator
from inventory.providers.huawei_iec import collect, normalize

if TYPE_CHECKING:
    from inventory.config import SourceConfig
    from inventory.http import RetryPolicy
    from inventory.records import ImageRecord


class HuaweiIec:
    spec = ProviderSpec(
        name="huawei-iec",
        # IEC is one global service; the region only places the source (the SDK knows one
        # region id, cn-north-4, for it).
        location_field="region",
        example_location="cn-north-4",
        credential_sets=(("access_key_id", "secret_access_key"), ("username", "password")),
        env_prefix="HUAWEI",
        default_page_size=collect.DEFAULT_PAGE_SIZE,
        max_page_size=collect.MAX_PAGE_SIZE,
        default_endpoint=collect.DEFAULT_ENDPOINT,
        validate_filters=collect.validate_filters,
        validate_options=options_validator(
            ("iam_endpoint", "domain_name", "domain_id", "project_id", "project_name")
        ),
    )

    def collector(
        self, source: SourceConfig, policy: RetryPolicy, on_retry: Callable[[], None] | None
    ) -> collect.IecCollector:
        return collect.IecCollector(source, policy, on_retry)

    def normalize(self, raw: dict[str, Any]) -> ImageRecord:
        return normalize.normalize(raw)


PROVIDER = HuaweiIec()
