"""Tencent Cloud CVM DescribeImages: TC3-HMAC-SHA256, Offset/Limit paging, Response.Error.

What the API does and how it maps: docs/providers/tencent.md. Sources are placed by
``region`` (e.g. ``ap-guangzhou``) and authenticate with ``secret_id`` + ``secret_key``.
"""

from __future__ import annotations

from inventory.providers import Assembled, ProviderSpec
from inventory.providers.tencent import collect, normalize

#: The one credential set: a SecretId and SecretKey pair, signed with TC3-HMAC-SHA256.
TC3 = ("secret_id", "secret_key")
SPEC = ProviderSpec.of(
    collect, "tencent", placed_by=("region", "ap-guangzhou"), credentials=(TC3,), env_prefix="TC"
)
PROVIDER = Assembled(SPEC, collect.TencentCollector, normalize.normalize, normalize.ID_FIELD)
