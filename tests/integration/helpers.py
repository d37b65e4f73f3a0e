"""Helpers for integration tests: reading rows back, and driving the QingCloud emulator."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Row, text

from inventory.config import SecretRef, Settings, SourceConfig, SyncSettings
from inventory.emulation import EmulatorServer, FaultRule
from inventory.providers.qingcloud.emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_OWNER,
    DEFAULT_SECRET_ACCESS_KEY,
    QingCloudApp,
    QingCloudCatalogue,
)

#: Settings for tests of what one listing changes: a missing image is gone at once. How
#: gone is confirmed over several complete listings has its own tests (test_sync.py).
AT_ONCE = Settings(path=None, sync=SyncSettings(confirm_gone_runs=1))


def fetch_all(engine: Engine, sql: str, **params: Any) -> list[Row[Any]]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def history_of(engine: Engine, provider_image_id: str) -> list[tuple[str, bool]]:
    """(status, closed?) for each history interval of an image, oldest first."""
    rows = fetch_all(
        engine,
        """SELECT h.status, h.valid_to IS NOT NULL AS closed
             FROM image_status_history h JOIN images i ON i.id = h.image_id
            WHERE i.provider_image_id = :id ORDER BY h.valid_from, h.id""",
        id=provider_image_id,
    )
    return [(r.status, r.closed) for r in rows]


def row_versions(engine: Engine) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of the image tables with its physical version (ctid) and writer (xmin).

    Equal before and after an operation means the operation wrote no row version there: no
    INSERT, no UPDATE (not even one that sets the same values), no DELETE.
    """
    out: dict[str, set[tuple[Any, ...]]] = {}
    for table in ("images", "image_status_history", "image_events"):
        rows = fetch_all(engine, f"SELECT id, ctid::text, xmin::text, t::text FROM {table} t")
        out[table] = {tuple(r) for r in rows}
    return out


class Emulator:
    """A QingCloud emulator on loopback plus the source config that points at it."""

    ACCESS_KEY_ENV = "INVENTORY_TEST_QY_ACCESS_KEY_ID"
    SECRET_ENV = "INVENTORY_TEST_QY_SECRET_ACCESS_KEY"
    WRONG_SECRET_ENV = "INVENTORY_TEST_QY_WRONG_SECRET"

    def __init__(self) -> None:
        self.server: EmulatorServer | None = None
        self.app: QingCloudApp | None = None
        self.page_size = 100

    def reset(self, *, images: int, page_size: int = 100, seed: int = 11) -> Emulator:
        self.stop()
        catalogue = QingCloudCatalogue.generate(images, seed)
        # Every image owned by the caller, so the default listing shows the whole catalogue.
        for image_id in catalogue.ids():
            catalogue.edit(image_id, owner=catalogue.owner, provider="self", visibility="private")
        self.app = QingCloudApp(catalogue)
        self.server = EmulatorServer(self.app).start()
        self.page_size = page_size
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def catalogue(self) -> QingCloudCatalogue:
        assert self.app is not None
        return self.app.catalogue

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/iaas/"

    def source(self, name: str = "qy-test", *, secret: str | None = None) -> SourceConfig:
        import os

        os.environ[self.ACCESS_KEY_ENV] = DEFAULT_ACCESS_KEY_ID
        os.environ[self.SECRET_ENV] = DEFAULT_SECRET_ACCESS_KEY
        secret_env = self.SECRET_ENV
        if secret is not None:
            os.environ[self.WRONG_SECRET_ENV] = secret
            secret_env = self.WRONG_SECRET_ENV
        return SourceConfig(
            name=name,
            provider="qingcloud",
            location="pek3a",
            endpoint=self.endpoint,
            page_size=self.page_size,
            timeout_s=5.0,
            credentials={
                "access_key_id": SecretRef("env", self.ACCESS_KEY_ENV, "test"),
                "secret_access_key": SecretRef("env", secret_env, "test"),
            },
        )

    def toml(self, name: str, *, endpoint: str | None = None, extra: str = "") -> str:
        """A ``[[sources]]`` table for this emulator (or ``endpoint``), its credentials
        read from the variables :meth:`source` exports; ``extra``: more of its fields."""
        return f"""
[[sources]]
name = "{name}"
provider = "qingcloud"
zone = "pek3a"
endpoint = "{endpoint or self.endpoint}"
page_size = {self.page_size}
max_attempts = 2
{extra}
[sources.credentials]
access_key_id = "${{{self.ACCESS_KEY_ENV}}}"
secret_access_key = "${{{self.SECRET_ENV}}}"
"""

    def visible_ids(self) -> set[str]:
        return {i["image_id"] for i in self.catalogue.listing((("owner", DEFAULT_OWNER),))}

    def mutate(self, *, seed: int, **counts: int) -> dict[str, list[str]]:
        return self.catalogue.mutate(seed=seed, **counts)

    def edit(self, image_id: str, /, **fields: Any) -> None:
        self.catalogue.edit(image_id, **fields)

    def restore(self, image_id: str, **fields: Any) -> None:
        self.catalogue.restore(image_id, **fields)

    def fail(
        self, *, page: int | None, kind: str, times: int | None = None, latency_s: float = 0.0
    ) -> None:
        assert self.app is not None
        self.app.faults.add(FaultRule(kind=kind, page=page, times=times, latency_s=latency_s))

    def remove_after_page(self, *, page: int, count: int = 1) -> None:
        self.fail(page=page, kind="shrink", times=count)

    def wait_for_requests(self, count: int) -> None:
        assert self.server is not None
        assert self.server.wait_for_requests(count), "the emulator saw no request"
