"""Tencent Cloud CVM DescribeImages: TC3-HMAC-SHA256, Offset/Limit paging, Response.Error.

What the API does and how it maps: docs/providers/tencent.md. Sources are placed by
``region`` (e.g. ``ap-guangzhou``) and authenticate with ``secret_id`` + ``secret_key``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inventory.providers import ProviderSpec
from inventory.providers.tencent import collect, normalize

if TYPE_CHECKING:
    from inventory.config import SourceConfig
    from inventory.http import RetryPolicy
    from inventory.records import ImageRecord


class Tencent:
    spec = ProviderSpec(
        name="tencent",
        location_field="region",
        example_location="ap-guangzhou",
        credential_sets=(("secret_id", "secret_key"),),
        env_prefix="TC",
        default_page_size=collect.DEFAULT_PAGE_SIZE,
        max_page_size=collect.MAX_PAGE_SIZE,
        default_endpoint=collect.DEFAULT_ENDPOINT,
        validate_filters=collect.validate_filters,
        validate_options=collect.validate_options,
    )

    def collector(
        self, source: SourceConfig, policy: RetryPolicy, on_retry: Callable[[], None] | None
    ) -> collect.TencentCollector:
        return collect.TencentCollector(source, policy, on_retry)

    def normalize(self, raw: dict[str, Any]) -> ImageRecord:
        return normalize.normalize(raw)


PROVIDER = Tencent()
