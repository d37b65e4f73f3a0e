"""Kingsoft Cloud (KSyun) KEC DescribeImages: AWS SigV4, one response, Error envelope.

Facts: docs/providers/ksyun.md; known-answer vectors: tests/unit/test_ksyun_signature.py.
"""

from __future__ import annotations

from inventory.providers import AK_SK, Assembled, ProviderSpec
from inventory.providers.ksyun import collect, normalize

# DescribeImages has no page size: collect's 1..1 lets the config accept nothing else, and
# the collector never sends it.
SPEC = ProviderSpec.of(
    collect, "ksyun", placed_by=("region", "cn-beijing-6"), credentials=(AK_SK,), env_prefix="KS"
)
PROVIDER = Assembled(SPEC, collect.KsyunCollector, normalize.normalize, normalize.ID_FIELD)
