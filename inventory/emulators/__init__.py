"""Local HTTP servers that speak each provider's real image-listing API, on loopback.

Used by ``inventory demo``, the integration tests and the benchmarks, and runnable alone
with ``inventory emulate PROVIDER``. Machinery shared by all of them is in :mod:`.base`.
"""
