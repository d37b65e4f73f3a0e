"""Migration 0012 installs procrastinate's schema as the pinned release ships it; a release
with a schema migration of its own needs a revision of ours that applies it."""

from __future__ import annotations

from pathlib import Path

from procrastinate.schema import SchemaManager

from inventory.queue import SCHEMA_MIGRATION


def test_the_installed_procrastinate_needs_no_schema_migration_beyond_ours() -> None:
    shipped = sorted(p.name for p in Path(SchemaManager.get_migrations_path()).glob("*.sql"))
    assert shipped[-1] == SCHEMA_MIGRATION, (
        f"procrastinate ships schema migrations after {SCHEMA_MIGRATION} "
        f"({', '.join(shipped[shipped.index(SCHEMA_MIGRATION) + 1 :])}): add a revision "
        "applying them, then update inventory.queue.SCHEMA_MIGRATION"
    )
