"""The image's own size, its minimum disk and its word size, each in its own column.

``images.size_gb`` meant the image's size for QingCloud and Tencent but the system disk for
Kingsoft (``SysDisk``) and the minimum disk for Huawei IEC and IMS (``min_disk``), while the
IMS image size (``size``, in bytes) was not stored at all; QingCloud's ``processor_type``
(``64bit``/``32bit``, a word size) was stored as the architecture ``x86_64``/``i386``, even
for ARM images. From this revision:

- ``size_gb``: the image's own size in GB of 2**30 bytes (QingCloud ``size``, Tencent
  ``ImageSize``, IMS ``size`` converted exactly from bytes), null where none is given;
- ``min_disk_gb`` (new): the smallest system disk (Kingsoft ``SysDisk``, IEC and IMS
  ``min_disk``);
- ``word_size`` (new, 32 or 64): QingCloud ``processor_type``, IMS ``properties.__os_bit``;
  QingCloud's ``architecture`` comes only from an ``architecture`` field where one is sent
  (the DescribeImages page has none), never from ``processor_type``.

Stored rows are backfilled from ``images.raw`` the way the normalizers now read it, and
their fingerprints recomputed over the new fields, so the first sync after the upgrade sees
no change that is only this migration's. ``report_images`` gains ``word_size`` and
``min_disk_gb``. The downgrade restores the old meanings and fingerprints.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from inventory.migrate import revision_module
from inventory.records import fingerprint

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: The fingerprinted fields as of this revision, and as of the one before it.
FIELDS_0006: tuple[str, ...] = (
    "name", "description", "status", "raw_status", "os_family", "os_name", "platform",
    "architecture", "word_size", "size_gb", "min_disk_gb", "visibility", "owner",
    "image_type", "provider_created_at", "tags",
)  # fmt: skip
FIELDS_0005: tuple[str, ...] = tuple(
    f for f in FIELDS_0006 if f not in ("word_size", "min_disk_gb")
)

#: 2**-30, written out: a whole number of bytes times it is exact in ``numeric``.
_PER_BYTE_GB = "0.000000000931322574615478515625"


def _number(json: str) -> str:
    """SQL: a JSON value read as ``optional_decimal`` reads it (a number, or a string of
    one; negative or anything else is null)."""
    value = (
        f"CASE WHEN jsonb_typeof({json}) = 'number' THEN ({json} #>> '{{}}')::numeric"
        f" WHEN jsonb_typeof({json}) = 'string'"
        f" AND {json} #>> '{{}}' ~ '^\\s*[0-9]+(\\.[0-9]*)?\\s*$'"
        f" THEN btrim({json} #>> '{{}}')::numeric END"
    )
    return f"(CASE WHEN ({value}) >= 0 THEN ({value}) END)"


def _word_size(json: str) -> str:
    """SQL: ``optional_word_size`` of a JSON value (``64bit``, ``32``...; else null)."""
    bits = (
        f"btrim(regexp_replace(regexp_replace(lower(btrim({json} #>> '{{}}')), 'bit$', ''),"
        " '-$', ''))"
    )
    return (
        f"(CASE WHEN jsonb_typeof({json}) IN ('string', 'number')"
        f" AND {bits} IN ('32', '64') THEN {bits}::smallint END)"
    )


def _qingcloud_arch() -> str:
    """SQL: QingCloud's architecture as its normalizer reads it: only an ``architecture``
    field (spellings mapped), never ``processor_type``."""
    arch = "lower(btrim(i.raw ->> 'architecture'))"
    return (
        "(CASE WHEN jsonb_typeof(i.raw -> 'architecture') NOT IN ('string', 'number')"
        f" THEN NULL WHEN {arch} IN ('amd64') THEN 'x86_64'"
        f" WHEN {arch} IN ('arm64') THEN 'aarch64' WHEN {arch} = 'i686' THEN 'i386'"
        f" ELSE nullif({arch}, '') END)"
    )


def _views_0005() -> dict[str, str]:
    return dict(revision_module("0005_missing_before_gone.py")._views())


def _report_images() -> str:
    body = _views_0005()["report_images"]
    old = "i.missing_since, i.missing_runs"
    if old not in body:
        raise RuntimeError(f"0006: the 0005 view text changed; {old!r} not found")
    return body.replace(old, f"{old},\n       i.word_size, i.min_disk_gb")


def _refingerprint(fields: Sequence[str]) -> None:
    """Recompute every stored fingerprint over ``fields``, from the stored columns."""
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "CREATE TEMP TABLE inventory_refingerprint"
            " (id bigint PRIMARY KEY, fingerprint text NOT NULL) ON COMMIT DROP"
        )
    )
    driver = conn.connection.driver_connection
    assert driver is not None
    select = sa.text(
        f"SELECT id, {', '.join(fields)} FROM images WHERE id > :after ORDER BY id LIMIT 20000"
    )
    after = 0
    while rows := conn.execute(select, {"after": after}).mappings().all():
        with (
            driver.cursor() as cursor,
            cursor.copy("COPY inventory_refingerprint (id, fingerprint) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row((row["id"], fingerprint(row, fields)))
        after = rows[-1]["id"]
    conn.execute(
        sa.text(
            "UPDATE images i SET fingerprint = r.fingerprint FROM inventory_refingerprint r"
            " WHERE i.id = r.id AND i.fingerprint <> r.fingerprint"
        )
    )
    conn.execute(sa.text("DROP TABLE inventory_refingerprint"))


def _by_provider(assignments: str, *providers: str) -> None:
    names = ", ".join(f"'{name}'" for name in providers)
    op.execute(
        f"UPDATE images i SET {assignments} FROM sources s"
        f" WHERE s.id = i.source_id AND s.provider IN ({names})"
    )


def upgrade() -> None:
    op.add_column("images", sa.Column("word_size", sa.SmallInteger()))
    op.add_column("images", sa.Column("min_disk_gb", sa.Numeric()))
    sys_disk, min_disk = _number("i.raw -> 'SysDisk'"), _number("i.raw -> 'min_disk'")
    _by_provider(f"min_disk_gb = {sys_disk}, size_gb = NULL", "ksyun")
    _by_provider(f"min_disk_gb = {min_disk}, size_gb = NULL", "huawei-iec")
    size_gb = f"trim_scale({_number('i.raw -> ' + repr('size'))} * {_PER_BYTE_GB})"
    os_bit = _word_size("i.raw -> 'properties' -> '__os_bit'")
    _by_provider(
        f"min_disk_gb = {min_disk}, size_gb = {size_gb}, word_size = {os_bit}", "huawei-ims-v1"
    )
    processor = _word_size("i.raw -> 'processor_type'")
    _by_provider(f"word_size = {processor}, architecture = {_qingcloud_arch()}", "qingcloud")
    _refingerprint(FIELDS_0006)
    op.execute(f"CREATE OR REPLACE VIEW report_images AS {_report_images()}")


def downgrade() -> None:
    conn = op.get_bind()
    # Who may read the view (`inventory grant-readonly`), to grant it again after.
    readers = conn.execute(
        sa.text(
            "SELECT grantee FROM information_schema.role_table_grants"
            " WHERE privilege_type = 'SELECT' AND table_name = 'report_images'"
            " AND grantee <> current_user"
        )
    ).scalars()
    grantees = list(readers)
    op.execute("DROP VIEW report_images")  # CREATE OR REPLACE cannot drop columns
    op.execute(f"CREATE VIEW report_images AS {_views_0005()['report_images']}")
    for grantee in grantees:
        op.execute(f'GRANT SELECT ON report_images TO "{grantee}"')
    _by_provider("size_gb = min_disk_gb", "ksyun", "huawei-iec", "huawei-ims-v1")
    processor = "lower(btrim(i.raw ->> 'processor_type'))"
    _by_provider(
        f"architecture = CASE {processor} WHEN '64bit' THEN 'x86_64' WHEN '32bit' THEN 'i386'"
        f" ELSE nullif({processor}, '') END",
        "qingcloud",
    )
    op.drop_column("images", "min_disk_gb")
    op.drop_column("images", "word_size")
    _refingerprint(FIELDS_0005)
