"""Which run wrote a row is kept without a foreign-key trigger per row written.

A first sync of 100,000 images spent more than half of its merge in ten foreign-key
triggers, 100,000 firings each: every image, history interval and event checked, one row at
a time, that the run and the source it names exist, though the statement writing them takes
those ids from the run it belongs to. Seven of those keys only say which run did something
(``images.first_seen_run_id``, ``last_changed_run_id``, ``flagged_run_id``,
``image_status_history.opened_by_run_id``, ``closed_by_run_id``, ``image_events.run_id``)
or repeat the image's own source (``image_events.source_id``). This revision drops those
seven constraints and keeps what they promised another way:

- on insert: the merge locks its run's row (``FOR KEY SHARE``, once per merge) before it
  writes, so the run it names exists until the merge commits, and the source's images are
  written under the source's own key (``images.source_id`` keeps its constraint);
- on delete: one statement-level trigger on ``sync_runs`` does what ``ON DELETE`` did, set
  based over the deleted runs: the run columns of images and history become null and the
  runs' events are deleted (before, each deleted run scanned ``images`` and the history
  once per key, as none of those columns is indexed);
- ``image_events.source_id`` is the source of the event's image, which is kept by
  ``image_events.image_id`` (deleting a source deletes its images, and so their events).

The ownership keys stay as they were: ``images.source_id``, ``image_status_history.image_id``
and ``image_events.image_id``, each ``ON DELETE CASCADE``. The downgrade drops the trigger
and adds the seven constraints back (checked against the rows there are).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: (table, column, referred table, ON DELETE) of the constraints this revision drops.
DROPPED: tuple[tuple[str, str, str, str], ...] = (
    ("images", "first_seen_run_id", "sync_runs", "SET NULL"),
    ("images", "last_changed_run_id", "sync_runs", "SET NULL"),
    ("images", "flagged_run_id", "sync_runs", "SET NULL"),
    ("image_status_history", "opened_by_run_id", "sync_runs", "SET NULL"),
    ("image_status_history", "closed_by_run_id", "sync_runs", "SET NULL"),
    ("image_events", "run_id", "sync_runs", "CASCADE"),
    ("image_events", "source_id", "sources", "CASCADE"),
)

RUNS_DELETED = """
CREATE FUNCTION inventory_sync_runs_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- What ON DELETE SET NULL / CASCADE did for each key, once for all deleted runs.
    UPDATE images SET first_seen_run_id = NULL
     WHERE first_seen_run_id IN (SELECT id FROM deleted_runs);
    UPDATE images SET last_changed_run_id = NULL
     WHERE last_changed_run_id IN (SELECT id FROM deleted_runs);
    UPDATE images SET flagged_run_id = NULL
     WHERE flagged_run_id IN (SELECT id FROM deleted_runs);
    UPDATE image_status_history SET opened_by_run_id = NULL
     WHERE opened_by_run_id IN (SELECT id FROM deleted_runs);
    UPDATE image_status_history SET closed_by_run_id = NULL
     WHERE closed_by_run_id IN (SELECT id FROM deleted_runs);
    DELETE FROM image_events WHERE run_id IN (SELECT id FROM deleted_runs);
    RETURN NULL;
END
$$
"""


def _name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def upgrade() -> None:
    for table, column, referred, _ in DROPPED:
        op.drop_constraint(_name(table, column, referred), table, type_="foreignkey")
    op.execute(RUNS_DELETED)
    op.execute(
        "CREATE TRIGGER sync_runs_deleted AFTER DELETE ON sync_runs"
        " REFERENCING OLD TABLE AS deleted_runs"
        " FOR EACH STATEMENT EXECUTE FUNCTION inventory_sync_runs_deleted()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER sync_runs_deleted ON sync_runs")
    op.execute("DROP FUNCTION inventory_sync_runs_deleted()")
    for table, column, referred, on_delete in DROPPED:
        op.create_foreign_key(
            _name(table, column, referred), table, referred, [column], ["id"], ondelete=on_delete
        )
