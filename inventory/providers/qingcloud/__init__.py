"""QingCloud IaaS DescribeImages: signature v1, offset paging, ret_code errors.

Facts: docs/providers/qingcloud.md; known-answer vectors: tests/unit/test_qingcloud_signature.py.
"""

from __future__ import annotations

from inventory.providers import AK_SK, Assembled, ProviderSpec
from inventory.providers.qingcloud import collect, normalize

SPEC = ProviderSpec.of(
    collect, "qingcloud", placed_by=("zone", "pek3a"), credentials=(AK_SK,), env_prefix="QY"
)
PROVIDER = Assembled(SPEC, collect.QingCloudCollector, normalize.normalize, normalize.ID_FIELD)
