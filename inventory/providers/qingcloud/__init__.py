"""QingCloud IaaS DescribeImages: signature v1, offset paging, ret_code errors.

Facts: docs/providers/qingcloud.md; known-answer vectors: tests/unit/test_qingcloud_signature.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inventory.providers import ProviderSpec
from inventory.providers.qingcloud import collect, normalize

if TYPE_CHECKING:
    from inventory.config import SourceConfig
    from inventory.http import RetryPolicy
    from inventory.records import ImageRecord


class QingCloud:
    spec = ProviderSpec(
        name="qingcloud",
        location_field="zone",
        example_location="pek3a",
        credential_sets=(("access_key_id", "secret_access_key"),),
        env_prefix="QY",
        default_page_size=collect.DEFAULT_PAGE_SIZE,
        max_page_size=collect.MAX_PAGE_SIZE,
        default_endpoint=collect.DEFAULT_ENDPOINT,
        validate_filters=collect.validate_filters,
    )

    def collector(
        self, source: SourceConfig, policy: RetryPolicy, on_retry: Callable[[], None] | None
    ) -> collect.QingCloudCollector:
        return collect.QingCloudCollector(source, policy, on_retry)

    def normalize(self, raw: dict[str, Any]) -> ImageRecord:
        return normalize.normalize(raw)


PROVIDER = QingCloud()
