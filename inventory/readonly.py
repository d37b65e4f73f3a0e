"""A read-only role for dashboards and analysts (``inventory grant-readonly``).

The role may SELECT from the report views, the tables behind them and ``alembic_version``
(the schema's version) and EXECUTE the as-of function; it gets no other privilege. It is
created NOLOGIN when missing, so it is a group role: give it to login roles (``GRANT
inventory_reader TO grafana``) rather than handing out one shared password. Running the
command again is harmless and picks up objects that later migrations added.

What PostgreSQL grants to PUBLIC by default is not taken away here (it would change every
other role too): temporary tables, and on PostgreSQL 14 and older CREATE in the ``public``
schema. docs/reporting.md says how to revoke those server-wide.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from inventory.config import check_role_name
from inventory.reports import AS_OF_FUNCTION, REPORT_TABLES, REPORT_VIEWS

DEFAULT_ROLE = "inventory_reader"


def grant_readonly(conn: Connection, role: str = DEFAULT_ROLE) -> bool:
    """Create ``role`` if missing and grant it read access; True when it was created.

    Runs in the caller's transaction (the caller commits). Needs CREATEROLE (to create it)
    and ownership of the inventory's objects (to grant on them).
    """
    check_role_name(role, "grant-readonly")
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    if exists is None:
        conn.execute(text(f"CREATE ROLE {role} NOLOGIN"))
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    quoted = schema.replace('"', '""')
    conn.execute(text(f'GRANT USAGE ON SCHEMA "{quoted}" TO {role}'))
    for relation in (*REPORT_VIEWS, *REPORT_TABLES):
        conn.execute(text(f"GRANT SELECT ON {relation} TO {role}"))
    conn.execute(text(f"GRANT EXECUTE ON FUNCTION {AS_OF_FUNCTION} TO {role}"))
    # The schema's version, so a reader (the dashboard) can tell it is current.
    conn.execute(text(f"GRANT SELECT ON alembic_version TO {role}"))
    return exists is None
