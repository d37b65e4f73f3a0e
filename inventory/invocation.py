"""How to type the ``inventory`` command here, for messages that tell people what to run.

``inventory`` when that name on PATH is this program (an activated virtualenv, an installed
package); otherwise the path it was started by, relative to the current folder when inside
it (``.venv/bin/inventory`` after ``make demo``), so a printed command works as printed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def command() -> str:
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is None or started.name != "inventory":
        return "inventory"  # python -m, tests: the installed name
    on_path = shutil.which("inventory")
    if on_path and Path(on_path).resolve() == started.resolve():
        return "inventory"
    here = Path.cwd()
    absolute = started if started.is_absolute() else here / started
    try:
        return os.path.relpath(absolute, here) if absolute.is_relative_to(here) else str(absolute)
    except ValueError:  # another drive (Windows)
        return str(absolute)
