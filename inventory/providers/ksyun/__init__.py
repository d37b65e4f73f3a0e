"""Kingsoft Cloud (KSyun) KEC DescribeImages: AWS SigV4, one response, Error envelope.

Facts: docs/providers/ksyun.md; known-answer vectors: tests/unit/test_ksyun_signature.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inventory.providers import ProviderSpec
from inventory.providers.ksyun import collect, normalize

if TYPE_CHECKING:
    from inventory.config import SourceConfig
    from inventory.http import RetryPolicy
    from inventory.records import ImageRecord


class Ksyun:
    spec = ProviderSpec(
        name="ksyun",
        location_field="region",
        example_location="cn-beijing-6",
        credential_sets=(("access_key_id", "secret_access_key"),),
        env_prefix="KS",
        # DescribeImages has no page size: 1..1 lets the config accept nothing else, and
        # the collector never sends it (see collect.MAX_PAGE_SIZE).
        default_page_size=collect.DEFAULT_PAGE_SIZE,
        max_page_size=collect.MAX_PAGE_SIZE,
        default_endpoint=collect.DEFAULT_ENDPOINT,
        validate_filters=collect.validate_filters,
    )

    def collector(
        self, source: SourceConfig, policy: RetryPolicy, on_retry: Callable[[], None] | None
    ) -> collect.KsyunCollector:
        return collect.KsyunCollector(source, policy, on_retry)

    def normalize(self, raw: dict[str, Any]) -> ImageRecord:
        return normalize.normalize(raw)


PROVIDER = Ksyun()
