"""Huawei Cloud IEC ListImages: AK/SK SDK-HMAC-SHA256 or IAM token, offset paging.

Facts: docs/providers/huawei-iec.md; the signer's known-answer vectors are in
tests/unit/test_huawei_signature.py. Shared Huawei code (signer, IAM tokens, error
envelopes): :mod:`inventory.providers.huawei_common`.
"""

from __future__ import annotations

from inventory.providers import AK_SK, Assembled, ProviderSpec
from inventory.providers.huawei_iec import collect, normalize

# IEC is one global service; the region only places the source (the SDK knows one region
# id, cn-north-4, for it). An access key pair signs, or an IAM user's token authenticates.
SPEC = ProviderSpec.of(
    collect,
    "huawei-iec",
    placed_by=("region", "cn-north-4"),
    credentials=(AK_SK, ("username", "password")),
    env_prefix="HUAWEI",
)
PROVIDER = Assembled(SPEC, collect.IecCollector, normalize.normalize, normalize.ID_FIELD)
