"""Images remember the digest of the raw record they were last checked against.

A re-sync of an unchanged catalogue spent most of its time normalizing and fingerprinting
images only to find them stored as they were. From this revision a sync can tell an image
listed exactly as stored before normalizing it (inventory/store.py, ``known_keys``):

- ``images.raw_digest`` (new, bytea, 16 bytes): the digest of the raw record as staged
  (its JSON text) that the stored row was last written from, or checked against, by the
  code named in ``sources.normalized_by``; null when not known (the next write or the next
  run of other normalizing code sets it);
- ``sources.normalized_by`` (new, text): the version of the normalizing code whose last
  complete listing of the source checked every image it listed (the others were then
  missing, and are left out until listed again). Under another version a sync normalizes
  every image, as before this revision, and records the digests it checked.

Nothing is backfilled: the first sync of each source after the upgrade normalizes every
image, as every sync did before, and writes each unchanged image's digest once. The
downgrade drops both columns.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("raw_digest", sa.LargeBinary()))
    op.add_column("sources", sa.Column("normalized_by", sa.Text()))


def downgrade() -> None:
    op.drop_column("sources", "normalized_by")
    op.drop_column("images", "raw_digest")
