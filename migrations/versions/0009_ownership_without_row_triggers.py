"""Which source an image belongs to, and which image a history row or event belongs to, is
kept without a foreign-key trigger per row written.

After 0008, a first sync of 100,000 images still spent 1.3 s of its 3.6 s insert in the
three ownership keys' triggers (``images.source_id``, ``image_status_history.image_id``,
``image_events.image_id``), 100,000 firings each, each looking up a row the same statement
had just written or that the merge holds locked. This revision drops those constraints and
keeps what they promised another way:

- on insert: the merge locks its source's row (``FOR KEY SHARE``) before it writes images,
  and the rows of the images whose history and events it writes (the new ones are its own
  uncommitted rows, which nothing else can see or delete), so each stays until it commits;
- on delete: statement-level triggers do what ``ON DELETE CASCADE`` did, set-based over the
  deleted rows: deleting sources deletes their images, deleting images deletes their
  history and events (``image_events`` stays append-only otherwise);
- on update: a source's or an image's id cannot change (nothing changes them; a row
  trigger refuses it, and fires only for an UPDATE that sets ``id``);
- on TRUNCATE: truncating ``sources`` while ``images`` keeps rows, or ``images`` while the
  history or events keep rows, is refused, as the constraints refused it: truncate them
  together (``TRUNCATE ... CASCADE`` no longer follows these three keys).

Every other constraint stays. The downgrade drops the triggers and adds the three
constraints back (checked against the rows there are).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: (table, column, referred table) of the constraints this revision drops (ON DELETE CASCADE).
DROPPED: tuple[tuple[str, str, str], ...] = (
    ("images", "source_id", "sources"),
    ("image_status_history", "image_id", "images"),
    ("image_events", "image_id", "images"),
)

FUNCTIONS = """
CREATE FUNCTION inventory_sources_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM images WHERE source_id IN (SELECT id FROM deleted_sources);
    RETURN NULL;
END
$$;

CREATE FUNCTION inventory_images_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM image_status_history WHERE image_id IN (SELECT id FROM deleted_images);
    DELETE FROM image_events WHERE image_id IN (SELECT id FROM deleted_images);
    RETURN NULL;
END
$$;

CREATE FUNCTION inventory_id_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION '%.id cannot change (other rows name it)', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION inventory_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    child text;
    kept boolean;
BEGIN
    -- After a TRUNCATE, which has emptied every table it names: none may keep rows that
    -- name the truncated one.
    FOREACH child IN ARRAY TG_ARGV LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM %I)', child) INTO STRICT kept;
        IF kept THEN
            RAISE EXCEPTION 'cannot truncate % alone: % keeps rows that name it; truncate them together',
                TG_TABLE_NAME, child
                USING ERRCODE = 'feature_not_supported';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
"""

#: (trigger, table, when, what it runs) of the triggers this revision creates.
TRIGGERS: tuple[tuple[str, str, str, str], ...] = (
    (
        "sources_deleted",
        "sources",
        "AFTER DELETE",
        "REFERENCING OLD TABLE AS deleted_sources"
        " FOR EACH STATEMENT EXECUTE FUNCTION inventory_sources_deleted()",
    ),
    (
        "images_deleted",
        "images",
        "AFTER DELETE",
        "REFERENCING OLD TABLE AS deleted_images"
        " FOR EACH STATEMENT EXECUTE FUNCTION inventory_images_deleted()",
    ),
    (
        "sources_id_kept",
        "sources",
        "BEFORE UPDATE OF id",
        "FOR EACH ROW EXECUTE FUNCTION inventory_id_kept()",
    ),
    (
        "images_id_kept",
        "images",
        "BEFORE UPDATE OF id",
        "FOR EACH ROW EXECUTE FUNCTION inventory_id_kept()",
    ),
    (
        "sources_truncated",
        "sources",
        "AFTER TRUNCATE",
        "FOR EACH STATEMENT EXECUTE FUNCTION inventory_truncated('images')",
    ),
    (
        "images_truncated",
        "images",
        "AFTER TRUNCATE",
        "FOR EACH STATEMENT EXECUTE FUNCTION"
        " inventory_truncated('image_status_history', 'image_events')",
    ),
)
FUNCTION_NAMES = (
    "inventory_sources_deleted",
    "inventory_images_deleted",
    "inventory_id_kept",
    "inventory_truncated",
)


def _name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def upgrade() -> None:
    for table, column, referred in DROPPED:
        op.drop_constraint(_name(table, column, referred), table, type_="foreignkey")
    op.execute(FUNCTIONS)
    for trigger, table, when, what in TRIGGERS:
        op.execute(f"CREATE TRIGGER {trigger} {when} ON {table} {what}")


def downgrade() -> None:
    for trigger, table, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in FUNCTION_NAMES:
        op.execute(f"DROP FUNCTION {function}()")
    for table, column, referred in DROPPED:
        op.create_foreign_key(
            _name(table, column, referred), table, referred, [column], ["id"], ondelete="CASCADE"
        )
