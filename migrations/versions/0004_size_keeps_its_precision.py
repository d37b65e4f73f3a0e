"""Store an image's size with the precision the provider gave it.

``images.size_gb`` was ``numeric(12, 3)``: a size of 0.0004 GB was stored as 0.000 while
the fingerprint kept 0.0004, and a size of a million terabytes overflowed the column and
failed the whole run. It becomes plain ``numeric``. The report views select the column, so
they are dropped and created again, as 0002 defines them, and granted again to the roles
that could read them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from inventory.migrate import revision_module

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _views() -> dict[str, str]:
    return dict(revision_module("0002_create_report_views.py").VIEWS)


def _retype(column_type: sa.types.TypeEngine[object]) -> None:
    views = _views()
    # Who may read each view (`inventory grant-readonly`), to grant it again after.
    readers = op.get_bind().execute(
        sa.text(
            "SELECT table_name, grantee FROM information_schema.role_table_grants"
            " WHERE privilege_type = 'SELECT' AND table_name = ANY(:views)"
            " AND grantee <> current_user"
        ),
        {"views": list(views)},
    )
    grants = [(row.table_name, row.grantee) for row in readers]
    for name in reversed(views):
        op.execute(f"DROP VIEW {name}")
    op.alter_column("images", "size_gb", type_=column_type, existing_nullable=True)
    for name, body in views.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
    for name, grantee in grants:
        op.execute(f'GRANT SELECT ON {name} TO "{grantee}"')


def upgrade() -> None:
    _retype(sa.Numeric())


def downgrade() -> None:
    _retype(sa.Numeric(12, 3))  # sizes of a billion GB or more, or finer than 0.001, fail
