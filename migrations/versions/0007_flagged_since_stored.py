"""Each image keeps the start of its flagged streak, so the flagged report reads one row.

``report_flagged_images.flagged_since`` was worked out per image from the history (the
first interval after the image's last unflagged one), two history lookups for each of what
can be hundreds of thousands of flagged images: counting them over all sources took seconds
at 1,000,000 images. From this revision the merge keeps it on the image, in the same
statements that open the history intervals, with the same timestamp:

- ``images.flagged_since`` (new): when the image's current run of flagged statuses
  (deprecated, suspended, deleted, ceased, failed, gone) began; null while its status is
  not a flagged one. Deprecated -> ceased -> gone is one streak, flagged since it became
  deprecated; coming back as available ends it;
- ``images.flagged_run_id`` (new): the run that opened that streak (the history interval's
  ``opened_by_run_id``), set to null if that run is deleted.

The upgrade backfills both from the history exactly as the view computed them, and
``report_flagged_images`` reads them (its columns and their meaning are unchanged; an image
missing from listings but not yet gone is still flagged since it went missing). The
downgrade restores the view of 0005 and drops the columns.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from inventory.migrate import revision_module

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Written out rather than imported: a migration keeps meaning what it meant when written.
FLAGGED = "('deprecated', 'suspended', 'deleted', 'ceased', 'failed', 'gone')"
FLAGGED_STATUSES = "('deprecated', 'suspended', 'deleted', 'ceased', 'failed')"

REPORT_FLAGGED_IMAGES = f"""
SELECT i.id AS image_id,
       s.id AS source_id, s.name AS source, s.provider, s.location,
       i.provider_image_id, i.name,
       CASE WHEN i.gone_at IS NOT NULL THEN 'gone'
            WHEN i.missing_since IS NOT NULL AND i.status NOT IN {FLAGGED_STATUSES}
            THEN 'missing' ELSE i.status END AS status,
       i.raw_status,
       coalesce(i.flagged_since, i.missing_since) AS flagged_since,
       i.flagged_run_id,
       -- Looked up only when asked for: a count or a filter never touches the history.
       (SELECT h.valid_from FROM image_status_history h
         WHERE h.image_id = i.id AND h.valid_to IS NULL) AS status_since,
       (SELECT h.opened_by_run_id FROM image_status_history h
         WHERE h.image_id = i.id AND h.valid_to IS NULL) AS status_run_id,
       i.first_seen_at, i.gone_at, i.missing_since
  FROM images i
  JOIN sources s ON s.id = i.source_id
 WHERE i.gone_at IS NOT NULL OR i.missing_since IS NOT NULL OR i.status IN {FLAGGED}
"""

#: The streak's first interval per image, as the view of 0005 found it: the earliest
#: interval after the image's last unflagged one (none while the current one is unflagged).
BACKFILL = f"""
UPDATE images i SET flagged_since = fs.valid_from, flagged_run_id = fs.opened_by_run_id
  FROM (SELECT DISTINCT ON (f.image_id) f.image_id, f.valid_from, f.opened_by_run_id
          FROM image_status_history f
          LEFT JOIN (SELECT image_id, max(valid_from) AS last_unflagged
                       FROM image_status_history WHERE status NOT IN {FLAGGED}
                      GROUP BY image_id) n ON n.image_id = f.image_id
         WHERE f.valid_from > coalesce(n.last_unflagged, '-infinity')
         ORDER BY f.image_id, f.valid_from, f.id) fs
 WHERE fs.image_id = i.id
"""


def upgrade() -> None:
    op.add_column("images", sa.Column("flagged_since", sa.TIMESTAMP(timezone=True)))
    op.add_column(
        "images",
        sa.Column(
            "flagged_run_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "sync_runs.id", name="fk_images_flagged_run_id_sync_runs", ondelete="SET NULL"
            ),
        ),
    )
    op.execute(BACKFILL)
    op.execute(f"CREATE OR REPLACE VIEW report_flagged_images AS {REPORT_FLAGGED_IMAGES}")


def downgrade() -> None:
    old = revision_module("0005_missing_before_gone.py")._views()["report_flagged_images"]
    op.execute(f"CREATE OR REPLACE VIEW report_flagged_images AS {old}")
    op.drop_column("images", "flagged_run_id")
    op.drop_column("images", "flagged_since")
