"""Staging, merge and diff: set-based SQL over a per-run staging table.

Functions here take a SQLAlchemy ``Connection`` and never commit; :mod:`inventory.sync`
owns the transactions. The flow for one run:

1. :func:`create_stage` makes a session-local TEMP table (no WAL, invisible to others);
2. a :class:`Stager` streams each page into it with one COPY, so memory stays flat;
3. :func:`merge`, inside ONE transaction, classifies staged rows against ``images`` by a
   join on (source, provider id) and the fingerprint, and writes only what differs:

   - new: insert image, open a history interval, event ``appeared``;
   - changed (fingerprint differs): update; a status change closes and opens a history
     interval and records ``status_changed``; other field changes record ``changed`` with
     the field names;
   - unchanged: not written at all — no UPDATE, no dead tuple, no WAL;
   - reappeared (was gone, listed again): cleared ``gone_at``, interval reopened, event
     ``reappeared``;
   - disappeared (in the database, absent from the listing): only when the caller says the
     listing was complete, and only when the deletion guard allows it.

All timestamps of one merge are the merge transaction's ``now()``, taken from the database
clock, so history intervals of one source never run backwards.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import socket
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from psycopg import Copy
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from inventory.config import SyncSettings
from inventory.errors import ConfigError, InventoryError
from inventory.records import DURABLE_FIELDS, FLAGGED_STATUSES, GONE, ImageRecord
from inventory.source import SourceConfig

#: Namespace of the per-source advisory locks (the other key is the source id).
LOCK_NAMESPACE = 0x1A6E_0002
STAGE = "inventory_stage"

#: The staged row: its position in the listing, the id, every fingerprinted field (in
#: :data:`~inventory.records.DURABLE_FIELDS` order, as :func:`encode_rows` writes them),
#: the raw record, the fingerprint and the raw record's digest (:func:`raw_digest`).
STAGE_COLUMNS: tuple[str, ...] = (
    "seq",
    "provider_image_id",
    *DURABLE_FIELDS,
    "raw",
    "fingerprint",
    "raw_digest",
)

#: Columns copied from the staging row into ``images`` on insert and update.
IMAGE_DATA_COLUMNS: tuple[str, ...] = STAGE_COLUMNS[1:]

#: Fields compared one by one to name what changed: exactly the fingerprinted ones, so a
#: fingerprint change always names its fields (status fields are reported apart).
COMPARED_FIELDS: tuple[str, ...] = DURABLE_FIELDS


@dataclass(frozen=True, slots=True)
class MergeResult:
    images_seen: int
    duplicates: int
    inserted: int
    changed: int
    unchanged: int
    reappeared: int
    disappeared: int
    disappearance_candidates: int
    disappearance_blocked: bool
    active_before: int
    missing: int = 0  # absent from this complete listing, not yet confirmed gone
    #: A complete listing came back empty for a source with images: trusted for nothing.
    empty_listing: bool = False
    #: The staging ``seq`` of the first item that repeated an earlier one, if any did.
    first_repeat: int | None = None
    #: Of the changed images, those whose status moved: how many went to each status.
    became: dict[str, int] = field(default_factory=dict)


# -- sources, locks, runs -------------------------------------------------------------------


def upsert_source(conn: Connection, source: SourceConfig) -> int:
    """Create or refresh the ``sources`` row of a configured source; return its id."""
    row = conn.execute(
        text("SELECT id, provider, retired_at FROM sources WHERE name = :name"),
        {"name": source.name},
    ).first()
    if row is not None and row.provider != source.provider:
        raise ConfigError(
            f"source {source.name!r} was synced as provider {row.provider!r} and is now "
            f"configured as {source.provider!r}; give the new source another name"
        )
    if row is not None and row.retired_at is not None and source.discovered_by is not None:
        raise ConfigError(retired(source.name, source.provider, source.location, row.retired_at))
    result = conn.execute(
        text(
            """
            INSERT INTO sources (name, provider, account, location, discovered_by)
            VALUES (:name, :provider, :account, :location, :discovered_by)
            ON CONFLICT (name) DO UPDATE
               SET account = EXCLUDED.account, location = EXCLUDED.location,
                   discovered_by = EXCLUDED.discovered_by, updated_at = now(),
                   -- written out now: no longer retired by a discovery
                   retired_at = CASE WHEN EXCLUDED.discovered_by IS NULL THEN NULL
                                     ELSE sources.retired_at END
             WHERE (sources.account, sources.location, sources.discovered_by)
                   IS DISTINCT FROM
                   (EXCLUDED.account, EXCLUDED.location, EXCLUDED.discovered_by)
            RETURNING id
            """
        ),
        {
            "name": source.name,
            "provider": source.provider,
            "account": source.account,
            "location": source.location,
            "discovered_by": source.discovered_by,
        },
    ).scalar()
    if result is None:  # unchanged row: ON CONFLICT ... WHERE false returns nothing
        assert row is not None
        return int(row.id)
    return int(result)


def retired(name: str, provider: str, location: str, since: datetime) -> str:
    """Why a discovered source is not synced (inventory/discovery.py)."""
    return (
        f"source {name!r} is retired: {provider} stopped listing {location!r} for the "
        f"account ({since:%Y-%m-%d %H:%M %Z}); it syncs again once listed"
    )


def try_lock_source(conn: Connection, source_id: int) -> bool:
    """Take the session-level advisory lock of a source; False if another session has it."""
    return bool(
        conn.execute(
            text("SELECT pg_try_advisory_lock(:ns, :id)"),
            {"ns": LOCK_NAMESPACE, "id": source_id},
        ).scalar()
    )


def unlock_source(conn: Connection, source_id: int) -> None:
    conn.execute(
        text("SELECT pg_advisory_unlock(:ns, :id)"), {"ns": LOCK_NAMESPACE, "id": source_id}
    )


def abort_orphaned_runs(conn: Connection, source_id: int) -> int:
    """Mark runs left ``running`` by a dead process as aborted. Call with the lock held.

    Holding the source's lock proves no live process is syncing it, so any ``running`` row
    of that source belongs to a process that died (kill -9, power loss, lost connection).
    """
    result = conn.execute(
        text(
            """
            UPDATE sync_runs
               SET status = 'aborted', finished_at = greatest(clock_timestamp(), started_at),
                   error = 'aborted: the process running this sync stopped before finishing '
                           || '(pid ' || coalesce(pid::text, '?') || ' on '
                           || coalesce(hostname, '?') || '); nothing of it was applied'
             WHERE source_id = :sid AND status = 'running'
            """
        ),
        {"sid": source_id},
    )
    return result.rowcount


def start_run(conn: Connection, source_id: int, trigger: str) -> int:
    return int(
        conn.execute(
            text(
                """
                INSERT INTO sync_runs (source_id, trigger, started_at, status, pid, hostname)
                VALUES (:sid, :trigger, clock_timestamp(), 'running', :pid, :host)
                RETURNING id
                """
            ),
            {
                "sid": source_id,
                "trigger": trigger,
                "pid": os.getpid(),
                "host": socket.gethostname(),
            },
        ).scalar_one()
    )


def finish_run(conn: Connection, run_id: int, status: str, **fields: Any) -> None:
    """Close a run row with its outcome and any counts or messages given."""
    allowed = {
        "listing_complete",
        "incomplete_reason",
        "pages",
        "retries",
        "images_seen",
        "inserted",
        "changed",
        "unchanged",
        "disappeared",
        "reappeared",
        "unknown_statuses",
        "disappearance_blocked",
        "warning",
        "error",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown run fields: {sorted(unknown)}")
    assignments = "".join(f", {name} = :{name}" for name in fields)
    conn.execute(
        text(
            f"UPDATE sync_runs SET status = :status, "
            f"finished_at = greatest(clock_timestamp(), started_at){assignments} WHERE id = :id"
        ),
        {"status": status, "id": run_id, **fields},
    )


# -- staging --------------------------------------------------------------------------------


def create_stage(conn: Connection) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {STAGE}"))
    conn.execute(
        text(
            f"""
            CREATE TEMP TABLE {STAGE} (
                seq bigint NOT NULL,
                provider_image_id text NOT NULL,
                name text, description text,
                status text, raw_status text,
                os_family text, os_name text, platform text, architecture text,
                word_size smallint, size_gb numeric, min_disk_gb numeric,
                visibility text, owner text, image_type text,
                provider_created_at timestamptz,
                tags jsonb, raw jsonb,
                fingerprint text,
                raw_digest bytea
            )
            """
        )
    )


class KnownRowChanged(InventoryError):
    """A row staged as already stored (:class:`Stager`, ``known``) is not stored that way:
    the listing must be staged again in full. Expected once in 10**19 images."""


#: The most rows a source's known keys are read in at once.
_KEY_BATCH = 10_000


def known_keys(conn: Connection, source_id: int, normalized_by: str) -> array[int] | None:
    """The :func:`digest_key` of each image of the source whose raw record, as last
    listed, is known to normalize to what is stored (sorted: 8 bytes an image), so that a
    sync can stage a raw record listed again byte for byte by its id alone, without
    normalizing it; None when the source's images were last checked by other normalizing
    code (``sources.normalized_by``), so that this run normalizes every one.

    Left out: images not listed by the last complete listing (missing, gone), and those
    with no digest (whose normalizing reports something each run, see
    :func:`inventory.staging.normalized`, or not yet checked by this code, see
    :func:`merge`)."""
    stamp = conn.execute(
        text("SELECT normalized_by FROM sources WHERE id = :sid"), {"sid": source_id}
    ).scalar()
    if stamp != normalized_by:
        return None
    driver = conn.connection.driver_connection
    assert driver is not None
    keys: array[int] = array("q")
    with driver.cursor(name="inventory_known_keys") as cursor:
        cursor.itersize = _KEY_BATCH
        cursor.execute(
            """SELECT ('x' || encode(substring(raw_digest for 8), 'hex'))::bit(64)::bigint
                          AS key
                 FROM images
                WHERE source_id = %s AND gone_at IS NULL AND missing_runs = 0
                  AND raw_digest IS NOT NULL
                ORDER BY key""",
            (source_id,),
        )
        for (key,) in cursor:
            keys.append(key)
    return keys


def raw_digest(blob: str) -> bytes:
    """The digest of a raw record's JSON text as staged (16 bytes): the merge compares it
    whole to tell that a row staged by id alone is the one stored."""
    return hashlib.blake2b(blob.encode(), digest_size=16).digest()


def digest_key(digest: bytes) -> int:
    """:func:`known_keys`' key of a :func:`raw_digest`, computed the same way as the SQL
    there: its first 8 bytes as a signed big-endian integer."""
    return int.from_bytes(digest[:8], "big", signed=True)


def holds(keys: Sequence[int], key: int) -> bool:
    """Whether the sorted ``keys`` hold ``key``."""
    at = bisect.bisect_left(keys, key)
    return at < len(keys) and keys[at] == key


def drop_stage(conn: Connection) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {STAGE}"))


class Stager:
    """The staging table's one COPY, open while a listing is read.

    Rows go to the server page by page as they are staged, sent by psycopg's writer thread,
    so PostgreSQL stores a page while the next one is fetched and normalized, and the whole
    listing costs one round trip at its end rather than one per page. Use it inside the
    transaction that ends the collection: an error, or leaving it by an exception, aborts
    the COPY and nothing is staged."""

    def __init__(self, conn: Connection, known: array[int] | None = None) -> None:
        self._keys = known or None
        #: Rows staged by id and fingerprint alone (already stored exactly so).
        self.known = 0
        driver = conn.connection.driver_connection
        assert driver is not None
        self._cursor = driver.cursor()
        self._copy_context = self._cursor.copy(
            f"COPY {STAGE} ({', '.join(STAGE_COLUMNS)}) FROM STDIN",
            writer=QueuedLibpqWriter(self._cursor),
        )
        self._copy: Copy | None = None
        self.count = 0

    def __enter__(self) -> Stager:
        self._copy = self._copy_context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._copy_context.__exit__(*exc)
        finally:
            self._cursor.close()

    @property
    def known_keys(self) -> array[int] | None:
        """The keys of the rows the database holds (:func:`known_keys`), if any."""
        return self._keys

    def write(self, records: Iterable[ImageRecord], raw_json: Sequence[str]) -> int:
        """Stage records in full; return how many. ``raw_json`` holds each record's raw
        object as JSON text, already made storable
        (:meth:`inventory.storable.Storable.raw`)."""
        entries: list[Entry] = [
            (record.provider_image_id, raw_digest(blob), record, blob)
            for record, blob in zip(records, raw_json, strict=True)
        ]
        return self.write_rows(encode_rows(entries, self.count))

    def write_rows(self, rows: Rows) -> int:
        """Stage rows :func:`encode_rows` made (here or in a worker process); return how
        many."""
        copy = self._copy
        assert copy is not None, "use the Stager as a context manager"
        copy.write(rows.text)
        self.count += rows.count
        self.known += rows.known
        return rows.count


@dataclass(slots=True)
class Rows:
    """Staging rows as COPY text, one line each, ``count`` of them, ``known`` of which
    only name the image and its raw record's digest (listed as stored)."""

    text: str
    count: int
    known: int


#: One image to stage: its id, its raw record's digest (None: not to be known by one), and
#: its record and raw JSON text, or (None, None) for an image listed exactly as stored,
#: staged by id and digest alone.
Entry = tuple[str, bytes | None, ImageRecord | None, str | None]


def encode_rows(entries: Iterable[Entry], first_seq: int) -> Rows:
    """Entries as staging rows numbered from ``first_seq``, in COPY's text format
    (PostgreSQL's escapes, ``\\N`` for null)."""
    lines: list[str] = []
    known = 0
    seq = first_seq
    for image_id, digest, record, raw in entries:
        head = f"{seq}\t{_copy_text(image_id)}\t"
        seq += 1
        if record is None:
            assert digest is not None
            lines.append(f"{head}{_SHORT_NULLS}\\\\x{digest.hex()}\n")
            known += 1
            continue
        created = record.provider_created_at
        lines.append(
            head
            + "\t".join(
                (
                    _copy_text(record.name),
                    _copy_text(record.description),
                    record.status.value,
                    _copy_text(record.raw_status),
                    _copy_text(record.os_family),
                    _copy_text(record.os_name),
                    _copy_text(record.platform),
                    _copy_text(record.architecture),
                    _NULL if record.word_size is None else str(record.word_size),
                    _NULL if record.size_gb is None else str(record.size_gb),
                    _NULL if record.min_disk_gb is None else str(record.min_disk_gb),
                    _copy_text(record.visibility),
                    _copy_text(record.owner),
                    _copy_text(record.image_type),
                    _NULL if created is None else created.isoformat(),
                    _copy_text(orjson.dumps(record.tags, option=orjson.OPT_SORT_KEYS).decode()),
                    _copy_text(raw),
                    record.fingerprint,
                    _NULL if digest is None else f"\\\\x{digest.hex()}",
                )
            )
            + "\n"
        )
    return Rows("".join(lines), seq - first_seq, known)


_NULL = "\\N"
#: The columns of a short row between its id and its raw record's digest: all null.
_SHORT_NULLS = (_NULL + "\t") * (len(STAGE_COLUMNS) - 3)


def _copy_text(value: str | None) -> str:
    """A text value in COPY's text format: null as ``\\N``; backslash, newline, carriage
    return and tab escaped (NUL cannot occur: :class:`~inventory.storable.Storable`)."""
    if value is None:
        return _NULL
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\n" in value:
        value = value.replace("\n", "\\n")
    if "\r" in value:
        value = value.replace("\r", "\\r")
    if "\t" in value:
        value = value.replace("\t", "\\t")
    return value


# -- merge ----------------------------------------------------------------------------------

_CHANGED_FIELDS_SQL = (
    "array_remove(ARRAY["
    + ", ".join(f"CASE WHEN s.{f} IS DISTINCT FROM i.{f} THEN '{f}' END" for f in COMPARED_FIELDS)
    + "]::text[], NULL)"
)

_STATUS_MOVED = (
    "(d.status IS DISTINCT FROM d.old_status OR d.raw_status IS DISTINCT FROM d.old_raw_status)"
)
_OTHER_FIELDS = "array_remove(array_remove(d.changed_fields, 'status'), 'raw_status')"

#: The statuses of a flagged streak (``images.flagged_since``), gone included, as SQL.
_FLAGGED_SQL = "(" + ", ".join(f"'{s}'" for s in sorted([*FLAGGED_STATUSES, GONE])) + ")"
#: ``images.flagged_since`` and ``flagged_run_id`` for an image whose new history interval
#: has status ``{status}``: a flagged one goes on with the streak it is in (or opens one
#: now); any other status ends it.
_STREAK = (
    "flagged_since = CASE WHEN {status} IN " + _FLAGGED_SQL
    + " THEN coalesce(i.flagged_since, now()) END,"
    " flagged_run_id = CASE WHEN {status} IN " + _FLAGGED_SQL
    + " THEN CASE WHEN i.flagged_since IS NULL THEN :run ELSE i.flagged_run_id END END"
)  # fmt: skip


def merge(
    conn: Connection,
    *,
    source_id: int,
    run_id: int,
    listing_complete: bool,
    guard: SyncSettings,
    allow_mass_disappearance: bool,
    normalized_by: str | None = None,
    refresh_digests: bool = False,
) -> MergeResult:
    """Apply the staged listing to the source's images. Run inside one transaction.

    Raw digests (:func:`known_keys`): with ``refresh_digests`` (a run that normalized
    every image under code that had not checked this source), an image listed with another
    raw record than the one its digest is of, but stored the same, gets the new digest;
    so does an image listed again after it went missing. A complete listing records
    ``normalized_by`` on the source: from then on its runs may stage what is listed as
    stored by id alone."""
    p = {"sid": source_id, "run": run_id}
    ex = conn.execute

    # Every row written below names this run and this source, which no foreign key checks
    # row by row (migrations 0008, 0009): their rows are locked once instead, so they exist
    # until this commits (a concurrent delete waits, then its triggers delete what this
    # wrote).
    if ex(text("SELECT FROM sync_runs WHERE id = :run FOR KEY SHARE"), p).first() is None:
        raise InventoryError(f"run {run_id} was deleted while it ran; nothing was applied")
    if ex(text("SELECT FROM sources WHERE id = :sid FOR KEY SHARE"), p).first() is None:
        raise InventoryError(f"source {source_id} was deleted while it ran; nothing was applied")

    # A listing can repeat an item (offset paging while the catalogue moves): keep the last.
    # Rare, so the index that the joins below need anyway is built unique: it is refused
    # only when an id repeats, and only then are the repeats found and deleted.
    # (The index keeps those joins fast when the images' statistics lag behind a large
    # first insert, no analyze yet: without it, they ran as nested loops over the stage,
    # 20,000 x 20,000 rows.)
    duplicates, first_repeat = 0, None
    try:
        with conn.begin_nested():
            ex(text(f"CREATE UNIQUE INDEX ON {STAGE} (provider_image_id)"))
        repeated = False
    except IntegrityError:
        repeated = True
        ex(text(f"CREATE INDEX ON {STAGE} (provider_image_id, seq)"))
    if repeated:
        duplicates, first_repeat = ex(
            text(
                f"""
                WITH repeats AS (
                    DELETE FROM {STAGE} s USING {STAGE} t
                     WHERE s.provider_image_id = t.provider_image_id AND s.seq < t.seq
                    RETURNING t.seq
                )
                SELECT count(*), min(seq) FROM repeats
                """
            )
        ).one()
    seen = int(ex(text(f"SELECT count(*) FROM {STAGE}")).scalar_one())
    active_before, missing_before, held = (
        int(n)
        for n in ex(
            text(
                "SELECT count(*) FILTER (WHERE gone_at IS NULL),"
                " count(*) FILTER (WHERE gone_at IS NULL AND missing_runs > 0), count(*)"
                " FROM images WHERE source_id = :sid"
            ),
            p,
        ).one()
    )
    # A source's first listing (it holds no image, listed or gone): every row is new, so
    # they are inserted from the stage as they are, with no diff to build (nor a row
    # staged short: there was no key to match).
    first_listing = held == 0
    counts: dict[str, int] = {"new": seen}
    if not first_listing:
        # Temp tables are never auto-analyzed; the joins below need only these columns'
        # stats.
        ex(text(f"ANALYZE {STAGE} (provider_image_id, fingerprint)"))
        # Only rows that need a write: new, fingerprint differs, or coming back.
        ex(
            text(
                f"""
                CREATE TEMP TABLE inventory_diff ON COMMIT DROP AS
                SELECT s.*, i.id AS image_id, i.status AS old_status,
                       i.raw_status AS old_raw_status,
                       CASE WHEN i.id IS NULL THEN 'new'
                            WHEN i.gone_at IS NOT NULL THEN 'reappeared'
                            WHEN s.raw IS NULL OR i.fingerprint <> s.fingerprint
                            THEN 'changed'
                            ELSE 'digest' END AS outcome,
                       CASE WHEN i.id IS NULL THEN NULL ELSE {_CHANGED_FIELDS_SQL} END
                           AS changed_fields
                  FROM {STAGE} s
                  LEFT JOIN images i
                    ON i.source_id = :sid AND i.provider_image_id = s.provider_image_id
                 WHERE i.id IS NULL OR i.gone_at IS NOT NULL OR i.fingerprint <> s.fingerprint
                    OR i.raw_digest IS DISTINCT FROM s.raw_digest
                """
            ),
            p,
        )
        outcomes = ex(
            text(
                "SELECT outcome, count(*) AS n, count(*) FILTER (WHERE raw IS NULL) AS unsent"
                " FROM inventory_diff GROUP BY outcome"
            )
        ).all()
        counts = {row.outcome: int(row.n) for row in outcomes}
        # A row staged as already stored must be: else its data was never sent.
        if any(row.unsent for row in outcomes):
            raise KnownRowChanged(
                "an image staged as unchanged is not stored so (a key collision); staging again"
            )
    inserted = int(counts.get("new", 0))
    changed = int(counts.get("changed", 0))
    reappeared = int(counts.get("reappeared", 0))

    data_cols = ", ".join(IMAGE_DATA_COLUMNS)
    if inserted:
        new_rows = STAGE if first_listing else "inventory_diff WHERE outcome = 'new'"
        ex(
            text(
                f"""
                WITH ins AS (
                    INSERT INTO images (source_id, {data_cols}, first_seen_at,
                                        first_seen_run_id, last_changed_at, last_changed_run_id,
                                        flagged_since, flagged_run_id)
                    SELECT :sid, {data_cols}, now(), :run, now(), :run,
                           CASE WHEN status IN {_FLAGGED_SQL} THEN now() END,
                           CASE WHEN status IN {_FLAGGED_SQL} THEN :run END
                      FROM {new_rows} ORDER BY seq
                    RETURNING id, status, raw_status
                ), hist AS (
                    INSERT INTO image_status_history
                           (image_id, status, raw_status, valid_from, opened_by_run_id)
                    SELECT id, status, raw_status, now(), :run FROM ins
                )
                INSERT INTO image_events (image_id, source_id, run_id, occurred_at, kind,
                                          new_status)
                SELECT id, :sid, :run, now(), 'appeared', status FROM ins
                """
            ),
            p,
        )

    became: dict[str, int] = {}
    if changed:
        became = {
            str(row.status): int(row.n)
            for row in ex(
                text(
                    "SELECT d.status, count(*) AS n FROM inventory_diff d"
                    " WHERE d.outcome = 'changed' AND d.status IS DISTINCT FROM d.old_status"
                    " GROUP BY d.status ORDER BY d.status"
                )
            )
        }

    if changed or reappeared:
        # Their history and events are written below: lock the images first (the new ones
        # are this transaction's own), so none is deleted before this commits (0009).
        ex(
            text(
                """
                SELECT FROM images i
                 WHERE i.id IN (SELECT d.image_id FROM inventory_diff d
                                 WHERE d.outcome IN ('changed', 'reappeared'))
                   FOR KEY SHARE OF i
                """
            )
        )
        moved = f"(d.outcome = 'reappeared' OR {_STATUS_MOVED})"
        ex(
            text(
                f"""
                UPDATE image_status_history h
                   SET valid_to = now(), closed_by_run_id = :run
                  FROM inventory_diff d
                 WHERE h.image_id = d.image_id AND h.valid_to IS NULL
                   AND d.image_id IS NOT NULL AND {moved}
                """
            ),
            p,
        )
        ex(
            text(
                f"""
                INSERT INTO image_status_history
                       (image_id, status, raw_status, valid_from, opened_by_run_id)
                SELECT d.image_id, d.status, d.raw_status, now(), :run
                  FROM inventory_diff d
                 WHERE d.image_id IS NOT NULL AND {moved}
                """
            ),
            p,
        )
        ex(
            text(
                f"""
                INSERT INTO image_events (image_id, source_id, run_id, occurred_at, kind,
                                          old_status, new_status, changed_fields)
                SELECT d.image_id, :sid, :run, now(), 'reappeared', '{GONE}', d.status,
                       d.changed_fields
                  FROM inventory_diff d WHERE d.outcome = 'reappeared'
                UNION ALL
                SELECT d.image_id, :sid, :run, now(), 'status_changed', d.old_status, d.status,
                       NULL
                  FROM inventory_diff d
                 WHERE d.outcome = 'changed' AND d.status IS DISTINCT FROM d.old_status
                UNION ALL
                SELECT d.image_id, :sid, :run, now(), 'changed', NULL, NULL, fields
                  FROM (SELECT d.*,
                               CASE WHEN d.status IS DISTINCT FROM d.old_status
                                    THEN {_OTHER_FIELDS} ELSE d.changed_fields END AS fields
                          FROM inventory_diff d WHERE d.outcome = 'changed') d
                 WHERE cardinality(d.fields) > 0
                """
            ),
            p,
        )
        assignments = ", ".join(f"{c} = d.{c}" for c in IMAGE_DATA_COLUMNS)
        ex(
            text(
                f"""
                UPDATE images i
                   SET {assignments}, gone_at = NULL,
                       last_changed_at = now(), last_changed_run_id = :run,
                       {_STREAK.format(status="d.status")}
                  FROM inventory_diff d
                 WHERE i.id = d.image_id AND d.outcome IN ('changed', 'reappeared')
                """
            ),
            p,
        )

    # Stored the same, listed otherwise (a field outside the fingerprint, or a digest not
    # known yet): code that had not checked the source records the digest it checked the
    # image against. Other runs write nothing for it: its digest is still of a record
    # this code checked (a short row's mismatch is "changed", and refused above).
    if counts.get("digest") and refresh_digests:
        ex(
            text(
                """
                UPDATE images i SET raw_digest = d.raw_digest
                  FROM inventory_diff d
                 WHERE i.id = d.image_id AND d.outcome = 'digest'
                """
            )
        )

    # Listed again, by any listing, whole or not: the image exists, so it is not missing.
    # (With none listed before, none was missing, and none of those listed now is absent.)
    # It was normalized (a missing image has no known key): its digest is of what this
    # code checked, where the one it had may be of what older code did.
    had_images = active_before > 0
    if missing_before:  # some were missing: those listed now are not
        ex(
            text(
                f"""
                UPDATE images i SET missing_runs = 0, missing_since = NULL,
                       raw_digest = s.raw_digest
                  FROM {STAGE} s
                 WHERE i.source_id = :sid AND i.missing_runs > 0
                   AND s.provider_image_id = i.provider_image_id
                """
            ),
            p,
        )

    disappeared = candidates = missing = 0
    blocked = False
    # A repeated id means items moved between pages, so others may have been skipped; an
    # empty answer for a source with images is an API's hiccup far more often than a purge.
    empty = listing_complete and not seen and active_before > 0 and not allow_mass_disappearance
    # Each row staged is one image (repeats were deleted): a new one, one coming back, or
    # one listed before. When those last are all the images listed before, none is absent.
    absent = active_before - (seen - inserted - reappeared)
    if listing_complete and not duplicates and not empty and had_images and absent:
        # Absent from this whole listing: gone once absent from confirm_gone_runs in a row.
        ex(
            text(
                f"""
                CREATE TEMP TABLE inventory_absent ON COMMIT DROP AS
                SELECT i.id, i.status, i.raw_status, i.missing_runs + 1 AS missing_runs
                  FROM images i
                 WHERE i.source_id = :sid AND i.gone_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM {STAGE} s
                                    WHERE s.provider_image_id = i.provider_image_id)
                """
            ),
            p,
        )
        ex(
            text(
                """
                CREATE TEMP TABLE inventory_gone ON COMMIT DROP AS
                SELECT id, status, raw_status FROM inventory_absent
                 WHERE missing_runs >= :confirm
                """
            ),
            {"confirm": guard.confirm_gone_runs},
        )
        candidates = int(ex(text("SELECT count(*) FROM inventory_gone")).scalar_one())
        blocked = (
            candidates > 0
            and not allow_mass_disappearance
            and active_before >= guard.guard_min_images
            and candidates > guard.max_disappearance_share * active_before
        )
        if candidates and not blocked:
            ex(
                text(
                    f"""
                    UPDATE images i SET gone_at = now(), last_changed_at = now(),
                           last_changed_run_id = :run, missing_runs = 0, missing_since = NULL,
                           {_STREAK.format(status=repr(GONE))}
                      FROM inventory_gone g WHERE i.id = g.id
                    """
                ),
                p,
            )
            ex(
                text(
                    """
                    UPDATE image_status_history h SET valid_to = now(), closed_by_run_id = :run
                      FROM inventory_gone g WHERE h.image_id = g.id AND h.valid_to IS NULL
                    """
                ),
                p,
            )
            ex(
                text(
                    f"""
                    WITH hist AS (
                        INSERT INTO image_status_history
                               (image_id, status, raw_status, valid_from, opened_by_run_id)
                        SELECT g.id, '{GONE}', g.raw_status, now(), :run FROM inventory_gone g
                    )
                    INSERT INTO image_events (image_id, source_id, run_id, occurred_at, kind,
                                              old_status, new_status)
                    SELECT g.id, :sid, :run, now(), 'disappeared', g.status, '{GONE}'
                      FROM inventory_gone g
                    """
                ),
                p,
            )
            disappeared = candidates
        # The others (and those the guard held back) were missing from one more listing.
        missing = ex(
            text(
                """
                UPDATE images i SET missing_runs = a.missing_runs,
                       missing_since = coalesce(i.missing_since, now())
                  FROM inventory_absent a WHERE i.id = a.id AND i.gone_at IS NULL
                """
            ),
            p,
        ).rowcount

    # Every image of the source was listed and checked, or is missing (left out of the
    # keys until listed again): what this code normalizes may from now on be known by its
    # raw record's digest.
    if normalized_by is not None and listing_complete and not duplicates and not empty:
        ex(
            text(
                "UPDATE sources SET normalized_by = :v"
                " WHERE id = :sid AND normalized_by IS DISTINCT FROM :v"
            ),
            {"v": normalized_by, "sid": source_id},
        )

    return MergeResult(
        images_seen=seen,
        duplicates=duplicates,
        first_repeat=first_repeat,
        inserted=inserted,
        changed=changed,
        unchanged=seen - inserted - changed - reappeared,
        reappeared=reappeared,
        disappeared=disappeared,
        disappearance_candidates=candidates,
        disappearance_blocked=blocked,
        active_before=active_before,
        missing=missing,
        empty_listing=empty,
        became=became,
    )
