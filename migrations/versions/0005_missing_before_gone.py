"""Images missing from a complete listing, not yet confirmed gone.

An image absent from a complete listing is marked gone only once it has been missing from
``[sync] confirm_gone_runs`` consecutive complete listings (inventory/store.py). Until then
``images.missing_runs`` counts those listings and ``images.missing_since`` says since when;
seeing the image again resets both.

The report views show it: ``report_images`` gains ``missing_since`` and ``missing_runs``
(and an image that is missing has no ``last_seen_at`` from the last complete run);
``report_flagged_images`` lists missing images with the status ``missing``, flagged since
they went missing, and gains ``missing_since``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from inventory.migrate import revision_module

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _views_0002() -> dict[str, str]:
    return dict(revision_module("0002_create_report_views.py").VIEWS)


def _replaced(body: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        if old not in body:
            raise RuntimeError(f"0005: the 0002 view text changed; {old!r} not found")
        body = body.replace(old, new)
    return body


def _views() -> dict[str, str]:
    views = _views_0002()
    images = _replaced(
        views["report_images"],
        (
            "CASE WHEN i.gone_at IS NULL THEN seen.finished_at END AS last_seen_at",
            "CASE WHEN i.gone_at IS NULL AND i.missing_since IS NULL THEN seen.finished_at END"
            " AS last_seen_at,\n       i.missing_since, i.missing_runs",
        ),
    )
    flagged = _replaced(
        views["report_flagged_images"],
        (
            "CASE WHEN i.gone_at IS NULL THEN i.status ELSE 'gone' END AS status",
            "CASE WHEN i.gone_at IS NOT NULL THEN 'gone'"
            " WHEN i.missing_since IS NOT NULL AND i.status NOT IN ('deprecated', 'suspended',"
            " 'deleted', 'ceased', 'failed') THEN 'missing' ELSE i.status END AS status",
        ),
        (
            "fs.valid_from AS flagged_since, fs.opened_by_run_id AS flagged_run_id",
            "coalesce(fs.valid_from, i.missing_since) AS flagged_since,"
            " fs.opened_by_run_id AS flagged_run_id",
        ),
        ("i.first_seen_at, i.gone_at\n", "i.first_seen_at, i.gone_at, i.missing_since\n"),
        (
            "WHERE i.gone_at IS NOT NULL OR i.status IN",
            "WHERE i.gone_at IS NOT NULL OR i.missing_since IS NOT NULL OR i.status IN",
        ),
    )
    return {"report_images": images, "report_flagged_images": flagged}


def upgrade() -> None:
    op.add_column(
        "images", sa.Column("missing_runs", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("images", sa.Column("missing_since", sa.TIMESTAMP(timezone=True)))
    for name, body in _views().items():
        op.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")


def downgrade() -> None:
    views = _views_0002()
    for name in ("report_flagged_images", "report_images"):
        op.execute(f"DROP VIEW {name}")  # columns cannot be dropped by CREATE OR REPLACE
    for name in ("report_images", "report_flagged_images"):
        op.execute(f"CREATE VIEW {name} AS {views[name]}")
    op.drop_column("images", "missing_since")
    op.drop_column("images", "missing_runs")
