"""Sources found by region discovery remember what found them, and when they retired.

A ``[[sources]]`` table with ``regions = "*"`` (or ``zones = "*"``) stands for one source per
region the provider's own API lists for the account (inventory/discovery.py):

- ``sources.discovered_by`` (new, text): the name of that ``[[sources]]`` table; null for a
  source written out in the config;
- ``sources.retired_at`` (new, timestamptz): when the provider last stopped listing the
  source's region. A retired source is not synced and none of its images is marked gone;
  discovery clears it when the region is listed again.

Nothing to backfill: every source so far was written out. The downgrade drops both columns.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("discovered_by", sa.Text()))
    op.add_column("sources", sa.Column("retired_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("sources", "retired_at")
    op.drop_column("sources", "discovered_by")
