"""Run the Alembic migrations from inside the application (``inventory migrate``).

The migrations live in the repository's top-level ``migrations/`` folder; a wheel carries
them as ``inventory/_migrations``. Both are looked for, the packaged copy first.

Alembic is imported only to migrate: every other command checks the schema against
:data:`HEAD` with one query (importing Alembic and reading the revision scripts took a
fifth of a second of each `inventory sync`'s start).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from inventory.errors import InventoryError, UsageError

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest revision in migrations/versions (a test checks it is Alembic's head).
HEAD = "0012"

_PACKAGE = Path(__file__).resolve().parent


def migrations_dir() -> Path:
    for candidate in (_PACKAGE / "_migrations", _PACKAGE.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise InventoryError("the migrations folder is missing from this installation")


def revision_module(filename: str) -> ModuleType:
    """An earlier revision script (``migrations/versions/<filename>``) as a module, for a
    later one that rebuilds what it defined (its report views, say)."""
    path = migrations_dir() / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"inventory_revision_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise InventoryError(f"the migration {path} is missing from this installation")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at (None: not migrated)."""
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except ProgrammingError as err:
            if getattr(err.orig, "sqlstate", None) == "42501":  # insufficient privilege
                raise UsageError(
                    "cannot read the schema's version (alembic_version): permission denied; "
                    "a read-only role made before the dashboard existed lacks it: run "
                    "`inventory grant-readonly --role ROLE` again as the database owner"
                ) from None
            return None  # no alembic_version table: nothing migrated yet


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def ensure_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not at head."""
    current, head = current_revision(engine), HEAD
    if current != head:
        raise UsageError(
            f"the database schema is at {current or 'nothing'} but this version needs {head}; "
            "run `inventory migrate`"
        )


def ours(_obj: object, name: str | None, _type: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's ``include_object``: autogenerate (``alembic check``) compares the models
    with every object but procrastinate's, whose schema 0012 installs as it ships it."""
    return not (reflected and compare_to is None and (name or "").startswith("procrastinate"))
