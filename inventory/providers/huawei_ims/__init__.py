"""Huawei IMS OpenStack-native ``GET /v1.1/images/detail``: IAM token, Glance v1 paging.

Shared Huawei code (IAM tokens, error envelopes): :mod:`inventory.providers.huawei_common`.
There is no request signature here (the token is a bearer credential), so there is no
signing known-answer test.
"""

from __future__ import annotations

from inventory.providers import Assembled, ProviderSpec
from inventory.providers.huawei_ims import collect, normalize

# The region also picks the endpoint: collect.DEFAULT_ENDPOINT has "{region}" in it.
SPEC = ProviderSpec.of(
    collect,
    "huawei-ims-v1",
    placed_by=("region", "cn-north-4"),
    credentials=(("username", "password"),),
    env_prefix="HUAWEI",
)
PROVIDER = Assembled(SPEC, collect.ImsCollector, normalize.normalize, normalize.ID_FIELD)
