"""Alembic environment: one advisory lock, bounded timeouts, one transaction per run.

Two processes migrating at once (a deploy and a cron sync, say) queue on the advisory lock
instead of racing. ``lock_timeout`` keeps a migration from waiting forever behind a long
reader while it holds locks that block everybody else.

The URL comes from ``config.attributes["connection"]`` when the application passes an open
connection (inventory/migrate.py), else from the same resolution the application uses.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from inventory.migrate import ours
from inventory.models import Base

MIGRATION_LOCK_KEY = 0x1A6E_0001  # arbitrary, fixed: "inventory migrations"

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=False,
        include_object=ours,
    )
    connection.execute(text("SET lock_timeout = '10s'"))
    connection.execute(text("SET statement_timeout = '15min'"))
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    from inventory.config import load_settings
    from inventory.db import make_engine, resolve_target

    engine = make_engine(resolve_target(load_settings()).url, pool_size=1)
    try:
        with engine.begin() as conn:
            run_with(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
