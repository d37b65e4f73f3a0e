"""Code shared by the Huawei Cloud providers (IEC ListImages, IMS OpenStack v1.1).

- :mod:`.signer`: the ``SDK-HMAC-SHA256`` AK/SK request signature, as an httpx.Auth;
- :mod:`.token`: Keystone v3 / Huawei IAM password tokens (``POST /v3/auth/tokens``), as an
  httpx.Auth with a process-wide cache, one refresh on a 401 and nothing secret in logs;
- :mod:`.errors`: reading Huawei's several error envelopes and classifying a response as
  transient (429, ``APIGW.0308``, 5xx) or terminal;
- :mod:`.registration`: ``__isregistered``, which makes an active image usable or not yet;
- :mod:`.options`: validation of the non-secret ``[sources.options]`` both providers take;
- :mod:`.emulator`: the API gateway both Huawei emulators sit behind (errors, throttling,
  token check) and their catalogue base;
- :mod:`.emulator_iam`: the emulated IAM token endpoint both Huawei emulators serve.

Facts: docs/providers/huawei-iec.md and docs/providers/huawei-ims-v1.md.
"""
