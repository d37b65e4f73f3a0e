"""Create the core tables: sources, sync_runs, images, image_status_history, image_events.

image_events is append-only: a trigger refuses UPDATE, and DELETE except when it cascades
from a deleted image or source (pg_trigger_depth() > 1 inside the trigger then).

Revision ID: 0001
Revises:
Create Date: 2026-11-22 21:02:21.395438
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


APPEND_ONLY_FUNCTION = """
CREATE FUNCTION inventory_image_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND pg_trigger_depth() > 1 THEN
        RETURN OLD;  -- cascading from a deleted image or source
    END IF;
    RAISE EXCEPTION 'image_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("account", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "listing_complete", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("incomplete_reason", sa.Text(), nullable=True),
        sa.Column("pages", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("retries", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("images_seen", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("inserted", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("changed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("unchanged", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("disappeared", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("reappeared", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("unknown_statuses", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "disappearance_blocked", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("hostname", sa.Text(), nullable=True),
        sa.Column("warning", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'aborted')",
            name=op.f("ck_sync_runs_status"),
        ),
        sa.CheckConstraint(
            "finished_at IS NULL OR finished_at >= started_at", name=op.f("ck_sync_runs_finished")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_sync_runs_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index(
        "ix_sync_runs_source_id_started_at",
        "sync_runs",
        ["source_id", sa.literal_column("started_at DESC")],
        unique=False,
    )
    op.create_table(
        "images",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_image_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("raw_status", sa.Text(), nullable=True),
        sa.Column("os_family", sa.Text(), nullable=True),
        sa.Column("os_name", sa.Text(), nullable=True),
        sa.Column("platform", sa.Text(), nullable=True),
        sa.Column("architecture", sa.Text(), nullable=True),
        sa.Column("size_gb", sa.Numeric(precision=12, scale=3), nullable=True),
        sa.Column("visibility", sa.Text(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("image_type", sa.Text(), nullable=True),
        sa.Column("provider_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "tags",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen_run_id", sa.BigInteger(), nullable=True),
        sa.Column("last_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_changed_run_id", sa.BigInteger(), nullable=True),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'available', 'deprecated', 'suspended', 'deleted', 'ceased', 'failed', 'unknown')",
            name=op.f("ck_images_status"),
        ),
        sa.ForeignKeyConstraint(
            ["first_seen_run_id"],
            ["sync_runs.id"],
            name=op.f("fk_images_first_seen_run_id_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["last_changed_run_id"],
            ["sync_runs.id"],
            name=op.f("fk_images_last_changed_run_id_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_images_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint(
            "source_id", "provider_image_id", name=op.f("uq_images_source_id_provider_image_id")
        ),
    )
    op.create_index(
        "ix_images_gone_at",
        "images",
        ["gone_at"],
        unique=False,
        postgresql_where=sa.text("gone_at IS NOT NULL"),
    )
    op.create_index("ix_images_status", "images", ["status"], unique=False)
    op.create_table(
        "image_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("old_status", sa.Text(), nullable=True),
        sa.Column("new_status", sa.Text(), nullable=True),
        sa.Column("changed_fields", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.CheckConstraint(
            "kind IN ('appeared', 'status_changed', 'changed', 'disappeared', 'reappeared')",
            name=op.f("ck_image_events_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_events_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_image_events_run_id_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_image_events_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_events")),
    )
    op.create_index(
        "ix_image_events_image_id_occurred_at",
        "image_events",
        ["image_id", "occurred_at"],
        unique=False,
    )
    op.create_index("ix_image_events_occurred_at", "image_events", ["occurred_at"], unique=False)
    op.create_index("ix_image_events_run_id", "image_events", ["run_id"], unique=False)
    op.create_table(
        "image_status_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("raw_status", sa.Text(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_by_run_id", sa.BigInteger(), nullable=True),
        sa.Column("closed_by_run_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'available', 'deprecated', 'suspended', 'deleted', 'ceased', 'failed', 'unknown', 'gone')",
            name=op.f("ck_image_status_history_status"),
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from",
            name=op.f("ck_image_status_history_interval"),
        ),
        sa.ForeignKeyConstraint(
            ["closed_by_run_id"],
            ["sync_runs.id"],
            name=op.f("fk_image_status_history_closed_by_run_id_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_status_history_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["opened_by_run_id"],
            ["sync_runs.id"],
            name=op.f("fk_image_status_history_opened_by_run_id_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_status_history")),
    )
    op.create_index(
        "ix_image_status_history_image_id_valid_from",
        "image_status_history",
        ["image_id", "valid_from"],
        unique=False,
    )
    op.create_index(
        "uq_image_status_history_open",
        "image_status_history",
        ["image_id"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER image_events_append_only BEFORE UPDATE OR DELETE ON image_events "
        "FOR EACH ROW EXECUTE FUNCTION inventory_image_events_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS image_events_append_only ON image_events")
    op.execute("DROP FUNCTION IF EXISTS inventory_image_events_append_only()")
    op.drop_index(
        "uq_image_status_history_open",
        table_name="image_status_history",
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.drop_index("ix_image_status_history_image_id_valid_from", table_name="image_status_history")
    op.drop_table("image_status_history")
    op.drop_index("ix_image_events_run_id", table_name="image_events")
    op.drop_index("ix_image_events_occurred_at", table_name="image_events")
    op.drop_index("ix_image_events_image_id_occurred_at", table_name="image_events")
    op.drop_table("image_events")
    op.drop_index("ix_images_status", table_name="images")
    op.drop_index(
        "ix_images_gone_at", table_name="images", postgresql_where=sa.text("gone_at IS NOT NULL")
    )
    op.drop_table("images")
    op.drop_index("ix_sync_runs_source_id_started_at", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("sources")
