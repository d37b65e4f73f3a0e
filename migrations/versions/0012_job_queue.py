"""The job queue of queue mode (procrastinate), and the request budgets shared by workers.

- procrastinate's own schema (``procrastinate_*`` tables, types, functions and triggers),
  as the pinned version ships it (``procrastinate.schema.SchemaManager.get_schema``):
  ``inventory worker`` runs the sync jobs queued there (inventory/queue.py). Installing it
  for every database keeps one migration path; a single-process user never writes to it.
  A later procrastinate with schema migrations of its own comes with a revision of ours
  that applies them (tests/unit/test_queue_schema.py fails until then);
- ``rate_windows`` (new, UNLOGGED: a crash only forgets the last second of pacing): per
  provider account and region (a digest of the key, never the key id itself), the times
  of the latest calls any process made to it, so workers on many machines stay within one
  account's limit together (inventory/http.py, ``SharedRateLimiter``).

The downgrade drops both.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Many statements, with dollar-quoted bodies and '%' signs: sent as is, without
    # parameters, on the migration's own connection (and transaction).
    op.get_bind().connection.driver_connection.execute(SchemaManager.get_schema())
    op.create_table(
        "rate_windows",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("sent", ARRAY(sa.DateTime(timezone=True)), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_windows")),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("rate_windows")
    bind = op.get_bind()
    for kind, names in (
        ("TABLE", "SELECT tablename FROM pg_tables WHERE tablename LIKE :prefix"),
        ("FUNCTION", "SELECT oid::regprocedure::text FROM pg_proc WHERE proname LIKE :prefix"),
        # Left once its tables are gone: its enums and the composite type of a defer.
        ("TYPE", "SELECT typname FROM pg_type WHERE typname LIKE :prefix"),
    ):  # each list is read once the drops before it are done
        for name in bind.execute(sa.text(names), {"prefix": "procrastinate%"}).scalars():
            bind.execute(sa.text(f"DROP {kind} IF EXISTS {name} CASCADE"))
