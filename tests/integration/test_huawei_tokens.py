"""The IAM token flow shared by huawei-iec and huawei-ims-v1, over real HTTP into PostgreSQL.

Reuse across pages and runs (counted at the emulator's IAM), renewal shortly before expiry,
one renewal on a 401, a clear failure on a second 401, a wrong password never hidden by a
cached token, and no token or password in any log line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from inventory.config import SecretRef, Settings, SourceConfig
from inventory.emulation import EmulatorServer
from inventory.http import RetryPolicy
from inventory.providers.huawei_common.emulator_iam import (
    DEFAULT_DOMAIN_NAME,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    IamService,
)
from inventory.providers.huawei_common.token import TOKEN_CACHE
from inventory.providers.huawei_iec.emulator import IecApp, IecCatalogue
from inventory.providers.huawei_ims.emulator import ImsApp, ImsCatalogue
from inventory.sync import RunResult, sync_source

from .helpers import fetch_all

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
PROVIDERS = ("huawei-iec", "huawei-ims-v1")


class Emu:
    """An IEC or IMS emulator (each with its own IAM) and a token source for it."""

    def __init__(self, provider: str, images: int = 120) -> None:
        self.provider = provider
        self.iam = IamService()
        app: IecApp | ImsApp
        if provider == "huawei-iec":
            app = IecApp(IecCatalogue.generate(images, 41), iam=self.iam)
        else:
            owner = self.iam.projects["cn-north-4"]
            app = ImsApp(ImsCatalogue.generate(images, 41, owner), iam=self.iam)
        self.server = EmulatorServer(app).start()

    def source(self, password: str = DEFAULT_PASSWORD, page_size: int = 30) -> SourceConfig:
        os.environ["INVENTORY_TEST_HW_USER"] = DEFAULT_USERNAME
        os.environ["INVENTORY_TEST_HW_TOKEN_PASSWORD"] = password
        return SourceConfig(
            name="hw-token",
            provider=self.provider,
            location="cn-north-4",
            endpoint=self.server.url,
            page_size=page_size,
            timeout_s=5.0,
            credentials={
                "username": SecretRef("env", "INVENTORY_TEST_HW_USER", "test"),
                "password": SecretRef("env", "INVENTORY_TEST_HW_TOKEN_PASSWORD", "test"),
            },
            options={"domain_name": DEFAULT_DOMAIN_NAME, "iam_endpoint": self.server.url},
        )


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    TOKEN_CACHE.clear()
    yield
    TOKEN_CACHE.clear()


@pytest.fixture(params=PROVIDERS)
def emu(request: pytest.FixtureRequest) -> Iterator[Emu]:
    emulator = Emu(request.param)
    yield emulator
    emulator.server.stop()


def sync(engine: Engine, source: SourceConfig) -> RunResult:
    return sync_source(engine, Settings(path=None), source, policy=FAST)


def test_token_reused_across_pages_and_runs(engine: Engine, emu: Emu) -> None:
    first = sync(engine, emu.source())
    assert first.status == "succeeded", first.error
    assert first.pages >= 3
    second = sync(engine, emu.source())  # a new collector and client, same process
    assert second.status == "succeeded", second.error
    assert emu.iam.issued == 1
    # One token request; a marker listing (IMS) asks once more per run to confirm its end.
    end_checks = 2 if emu.provider == "huawei-ims-v1" else 0
    assert emu.server.request_count == 1 + first.pages + second.pages + end_checks


def test_token_refreshed_shortly_before_expiry(
    engine: Engine, emu: Emu, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sync(engine, emu.source()).status == "succeeded"
    assert emu.iam.issued == 1
    # 24 h tokens; move the cache's clock to 2 minutes before expires_at.
    later = datetime.now(UTC) + timedelta(hours=24) - timedelta(minutes=2)
    monkeypatch.setattr(TOKEN_CACHE, "clock", lambda: later)
    result = sync(engine, emu.source())
    assert result.status == "succeeded", result.error
    assert emu.iam.issued == 2
    assert sync(engine, emu.source()).status == "succeeded"
    assert emu.iam.issued == 2  # the renewed token is reused in turn


def test_revoked_token_is_renewed_once_and_the_run_succeeds(engine: Engine, emu: Emu) -> None:
    assert sync(engine, emu.source()).status == "succeeded"
    emu.iam.revoke_all()  # e.g. the password changed: the cached token is refused now
    result = sync(engine, emu.source())
    assert result.status == "succeeded", result.error
    assert emu.iam.issued == 2
    assert result.retries == 0  # a renewal is not a retry of a transient failure


def test_second_401_fails_the_run_with_a_clear_message(engine: Engine, emu: Emu) -> None:
    emu.iam.refuse_all_tokens = True  # IAM issues tokens, the API refuses every one
    result = sync(engine, emu.source())
    assert result.status == "failed"
    error = result.error or ""
    assert "refused a freshly issued IAM token" in error and "after one refresh" in error
    assert "APIGW.0301" in error and "page 1" in error
    assert "may call this API in" in error  # names the scope to check
    assert emu.iam.issued == 2  # the first token and exactly one renewal
    assert result.retries == 0


def test_wrong_password_is_not_hidden_by_a_cached_token(engine: Engine, emu: Emu) -> None:
    assert sync(engine, emu.source()).status == "succeeded"
    result = sync(engine, emu.source(password="not-the-password"))
    assert result.status == "failed"
    assert "IAM refused the user name or password" in (result.error or "")
    assert "credentials.password" in (result.error or "")
    assert emu.iam.issued == 1
    assert sync(engine, emu.source()).status == "succeeded"  # the good token still serves
    assert emu.iam.issued == 1


def test_no_token_or_password_in_any_log_line(
    engine: Engine, emu: Emu, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert sync(engine, emu.source()).status == "succeeded"  # issue
        assert sync(engine, emu.source()).status == "succeeded"  # reuse
        emu.iam.revoke_all()
        assert sync(engine, emu.source()).status == "succeeded"  # 401, renew, retry
        emu.iam.refuse_all_tokens = True
        assert sync(engine, emu.source()).status == "failed"  # second 401
        failed = sync(engine, emu.source(password="wrong-password-value"))
        assert failed.status == "failed"
    tokens = emu.iam.issued_tokens()
    assert len(tokens) == 3  # first, renewed after the revocation, renewed after refusal
    lines = [record.getMessage() for record in caplog.records]
    lines += [record.exc_text or "" for record in caplog.records]
    assert any("issued an IAM token" in line for line in lines)  # the flow did log
    assert any("reusing the cached IAM token" in line for line in lines)
    assert any("answered 401" in line for line in lines)
    for line in lines:
        for secret in (*tokens, DEFAULT_PASSWORD, "wrong-password-value"):
            assert secret not in line
    stored = fetch_all(engine, "SELECT coalesce(error, '') AS error FROM sync_runs")
    for row in stored:
        assert not any(token in row.error for token in tokens)
        assert DEFAULT_PASSWORD not in row.error


def test_one_iam_serves_both_emulators(engine: Engine) -> None:
    """Both providers' tokens come from one shared IAM; each identity is cached apart."""
    iam = IamService()
    iec = EmulatorServer(IecApp(IecCatalogue.generate(40, 1), iam=iam)).start()
    owner = iam.projects["cn-north-4"]
    ims = EmulatorServer(ImsApp(ImsCatalogue.generate(40, 1, owner), iam=iam)).start()
    try:
        sources: list[Any] = []
        for provider, server in (("huawei-iec", iec), ("huawei-ims-v1", ims)):
            emu = Emu.__new__(Emu)
            emu.provider, emu.server, emu.iam = provider, server, iam
            source = emu.source()
            # Both point at the IEC server's IAM: one IAM endpoint, two scopes.
            sources.append(
                SourceConfig(
                    **{
                        **{f: getattr(source, f) for f in source.__dataclass_fields__},
                        "name": provider,
                        "options": {"domain_name": DEFAULT_DOMAIN_NAME, "iam_endpoint": iec.url},
                    }
                )
            )
        for source in sources:
            assert sync(engine, source).status == "succeeded"
        assert iam.issued == 2  # a domain-scoped token for IEC, a project one for IMS
        for source in sources:
            assert sync(engine, source).status == "succeeded"
        assert iam.issued == 2
    finally:
        iec.stop()
        ims.stop()
