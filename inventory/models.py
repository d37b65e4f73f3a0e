"""SQLAlchemy 2.0 typed models: the schema, with every constraint named.

The migrations in migrations/versions create exactly this (``alembic check`` reports no
drift); the application never calls ``create_all``. Vocabularies are TEXT with CHECK
constraints rather than PostgreSQL enum types, so adding a value is a one-line migration.

Tables:

- ``sources``: one row per configured source.
- ``sync_runs``: one row per sync attempt with its outcome and counts.
- ``images``: the current state of each image, unique on (source, provider image id).
- ``image_status_history``: SCD2 intervals; the partial unique index
  ``uq_image_status_history_open`` lets at most one interval per image be open.
- ``image_events``: append-only change log (a trigger refuses UPDATE and DELETE).
- ``alert_outbox``, ``alert_attempts``, ``source_health``: alert delivery (docs/alerts.md).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from inventory.records import GONE, ImageStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_STATUSES = ("running", "succeeded", "failed", "aborted")
EVENT_KINDS = ("appeared", "status_changed", "changed", "disappeared", "reappeared")
IMAGE_STATUSES = tuple(s.value for s in ImageStatus)
HISTORY_STATUSES = (*IMAGE_STATUSES, GONE)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


TSTZ = DateTime(timezone=True)


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    provider: Mapped[str] = mapped_column(Text)
    account: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TSTZ, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TSTZ, server_default=func.now())
    #: The normalizing code whose last complete listing checked the source's images, so
    #: that their raw digests can be trusted (0010; inventory/store.py, known_keys).
    normalized_by: Mapped[str | None] = mapped_column(Text)
    #: The ``[[sources]]`` table whose region discovery found the source, and when the
    #: provider stopped listing its region (0011; inventory/discovery.py).
    discovered_by: Mapped[str | None] = mapped_column(Text)
    retired_at: Mapped[datetime | None] = mapped_column(TSTZ)


class RateWindow(Base):
    """The latest calls to one provider account and region, by any process (0012)."""

    __tablename__ = "rate_windows"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    #: A digest of the limiter's key (provider, endpoint, account id, region).
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    sent: Mapped[list[datetime]] = mapped_column(ARRAY(TSTZ))


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        CheckConstraint("finished_at IS NULL OR finished_at >= started_at", name="finished"),
        Index("ix_sync_runs_source_id_started_at", "source_id", text("started_at DESC")),
        # A source's last success without walking back through a failure streak (0002).
        Index(
            "ix_sync_runs_source_id_started_at_succeeded",
            "source_id",
            text("started_at DESC"),
            postgresql_where=text("status = 'succeeded'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sources.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(TSTZ)
    finished_at: Mapped[datetime | None] = mapped_column(TSTZ)
    status: Mapped[str] = mapped_column(Text)
    listing_complete: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    incomplete_reason: Mapped[str | None] = mapped_column(Text)
    pages: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    retries: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    images_seen: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    inserted: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    changed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    unchanged: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    disappeared: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    reappeared: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    unknown_statuses: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    disappearance_blocked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    pid: Mapped[int | None] = mapped_column(Integer)
    hostname: Mapped[str | None] = mapped_column(Text)
    warning: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("source_id", "provider_image_id"),
        CheckConstraint(_in("status", IMAGE_STATUSES), name="status"),
        Index("ix_images_status", "status"),
        Index("ix_images_gone_at", "gone_at", postgresql_where=text("gone_at IS NOT NULL")),
        # `inventory history IMAGE_ID` looks an image up by provider id alone (0002).
        Index("ix_images_provider_image_id", "provider_image_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The source it belongs to: kept by triggers, not a foreign key (migration 0009).
    source_id: Mapped[int] = mapped_column(BigInteger)
    provider_image_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    raw_status: Mapped[str | None] = mapped_column(Text)
    os_family: Mapped[str | None] = mapped_column(Text)
    os_name: Mapped[str | None] = mapped_column(Text)
    platform: Mapped[str | None] = mapped_column(Text)
    architecture: Mapped[str | None] = mapped_column(Text)
    word_size: Mapped[int | None] = mapped_column(SmallInteger)
    size_gb: Mapped[Decimal | None] = mapped_column(Numeric)
    min_disk_gb: Mapped[Decimal | None] = mapped_column(Numeric)
    visibility: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    image_type: Mapped[str | None] = mapped_column(Text)
    provider_created_at: Mapped[datetime | None] = mapped_column(TSTZ)
    tags: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB)
    fingerprint: Mapped[str] = mapped_column(Text)
    #: The digest of the raw record the row was last written from or checked against
    #: (0010), by which a sync knows an image listed exactly as stored.
    raw_digest: Mapped[bytes | None] = mapped_column(LargeBinary)
    first_seen_at: Mapped[datetime] = mapped_column(TSTZ)
    # The runs that saw the image first, changed it last and flagged it: provenance with
    # no foreign key (a trigger per written row); deleting a run nulls them (0008).
    first_seen_run_id: Mapped[int | None] = mapped_column(BigInteger)
    last_changed_at: Mapped[datetime] = mapped_column(TSTZ)
    last_changed_run_id: Mapped[int | None] = mapped_column(BigInteger)
    gone_at: Mapped[datetime | None] = mapped_column(TSTZ)
    #: Since when the image's current run of flagged statuses (gone included) lasts, and
    #: the run that opened it; null while its status is not a flagged one (0007).
    flagged_since: Mapped[datetime | None] = mapped_column(TSTZ)
    flagged_run_id: Mapped[int | None] = mapped_column(BigInteger)
    #: Consecutive complete listings the image was missing from, not yet confirmed gone.
    missing_runs: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    missing_since: Mapped[datetime | None] = mapped_column(TSTZ)


class ImageStatusHistory(Base):
    __tablename__ = "image_status_history"
    __table_args__ = (
        CheckConstraint(_in("status", HISTORY_STATUSES), name="status"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="interval"),
        Index(
            "uq_image_status_history_open",
            "image_id",
            unique=True,
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index("ix_image_status_history_image_id_valid_from", "image_id", "valid_from"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The image it belongs to: kept by triggers, not a foreign key (migration 0009).
    image_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text)
    raw_status: Mapped[str | None] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(TSTZ)
    valid_to: Mapped[datetime | None] = mapped_column(TSTZ)
    # Provenance with no foreign key, as on images (migration 0008).
    opened_by_run_id: Mapped[int | None] = mapped_column(BigInteger)
    closed_by_run_id: Mapped[int | None] = mapped_column(BigInteger)


class ImageEvent(Base):
    __tablename__ = "image_events"
    __table_args__ = (
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
        Index("ix_image_events_image_id_occurred_at", "image_id", "occurred_at"),
        Index("ix_image_events_run_id", "run_id"),
        Index("ix_image_events_occurred_at", "occurred_at"),
        # "Changes of source X since T", and a cheap cascade when a source is deleted (0002).
        Index("ix_image_events_source_id_occurred_at", "source_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The image it belongs to (migration 0009), its source and the run that saw it (0008):
    # kept by triggers and the merge's locks, not foreign keys.
    image_id: Mapped[int] = mapped_column(BigInteger)
    source_id: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(TSTZ)
    kind: Mapped[str] = mapped_column(Text)
    old_status: Mapped[str | None] = mapped_column(Text)
    new_status: Mapped[str | None] = mapped_column(Text)
    changed_fields: Mapped[list[str] | None] = mapped_column(ARRAY(Text))


OUTBOX_STATUSES = ("pending", "sent", "dead")
OUTBOX_KINDS = ("event", "digest", "health")
ATTEMPT_OUTCOMES = ("started", "sent", "failed")


class AlertOutbox(Base):
    """One message to one channel, written in the transaction of the events it reports.

    ``event_ids`` holds one event (kind ``event``) or all of a run's matching events for the
    channel (kind ``digest``); ``health`` rows carry their text in ``payload``.
    """

    __tablename__ = "alert_outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        CheckConstraint(_in("status", OUTBOX_STATUSES), name="status"),
        CheckConstraint(_in("kind", OUTBOX_KINDS), name="kind"),
        # The dispatcher's claim query: due pending rows of one channel, oldest first.
        Index(
            "ix_alert_outbox_channel_next_attempt_at",
            "channel",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_alert_outbox_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sync_runs.id", ondelete="CASCADE")
    )
    source_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sources.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(Text)
    event_ids: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), server_default=text("'{}'::bigint[]")
    )
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    idempotency_key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(TSTZ, server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(TSTZ, server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(TSTZ)
    last_error: Mapped[str | None] = mapped_column(Text)


class AlertAttempt(Base):
    """Every delivery attempt; ``started`` left behind means the dispatcher died mid-send."""

    __tablename__ = "alert_attempts"
    __table_args__ = (
        CheckConstraint(_in("outcome", ATTEMPT_OUTCOMES), name="outcome"),
        Index("ix_alert_attempts_outbox_id", "outbox_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    outbox_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("alert_outbox.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(TSTZ, server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(TSTZ)
    outcome: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class SourceHealth(Base):
    """The alerting state of each source, so a failing source alerts once, then on recovery."""

    __tablename__ = "source_health"
    __table_args__ = (CheckConstraint(_in("state", ("ok", "failing")), name="state"),)

    source_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(TSTZ, server_default=func.now())
