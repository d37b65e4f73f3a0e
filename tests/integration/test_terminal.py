"""`inventory sync` as a person sees it: a real process on a pseudo-terminal (issue 13, 7).

The screen is read through a terminal emulator (pyte) at 80 columns, frame by frame as
the bytes arrive: while two sources sync at once each has its own row with images done of
the total, a rate and the time left; the rows are gone at the end, where one table holds
every source (status changes broken down, thousands separators) and each failure is said
once, with the endpoint it could not reach. The same sync piped prints plain lines without
escape codes. Before: one `\\r` line for one source only, no rate, no time left, left on the
screen, "1 pages", each failure twice (a log line and the summary) and no URL in it.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte
import pytest
from sqlalchemy import Engine

from inventory.cli import EXIT_FAILED

from .helpers import Emulator

INVENTORY = Path(sys.executable).parent / "inventory"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "terminal-output.md"
COLUMNS, ROWS = 80, 30
#: Two pairs of sources over one emulator: the same changes reach each pair once, one
#: pair synced on the terminal, the other piped.
TTY, PIPED = ("east", "west"), ("east-piped", "west-piped")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(tmp_path: Path, emu: Emulator, dead: int) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(
        "".join(emu.toml(name) for name in (*TTY, *PIPED))
        + emu.toml("down", endpoint=f"http://127.0.0.1:{dead}/iaas/")
    )
    return path


def unwrap(screen: list[str]) -> str:
    """The screen's text with the terminal's own line wrapping undone (a full row goes on)."""
    text = ""
    for line in screen:
        text += line + ("" if len(line) == COLUMNS else "\n")
    return text


def in_pty(*args: str, config: Path) -> tuple[list[list[str]], bytes, int]:
    """Run the CLI on a pseudo-terminal of COLUMNS x ROWS; every screen it showed (one per
    read), the raw bytes, the exit code."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen(
        [str(INVENTORY), "--config", str(config), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color"},
        close_fds=True,
    )
    os.close(slave)
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    frames, raw = [], b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        raw += data
        stream.feed(data)
        frames.append([line.rstrip() for line in screen.display])
    code = proc.wait(timeout=120)
    os.close(master)
    return frames, raw, code


@pytest.fixture
def churned(engine: Engine, emulator: Emulator, tmp_path: Path) -> Path:
    emulator.reset(images=3000, page_size=100)
    emulator.source()  # exports the credential variables
    config = write_config(tmp_path, emulator, closed_port())
    first = subprocess.run(
        [str(INVENTORY), "--config", str(config), "sync", *TTY, *PIPED],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    emulator.mutate(seed=3, deprecate=5, cease=2, add=1200)
    emulator.fail(page=None, kind="latency", latency_s=0.03)  # slow enough to be watched
    return config


def test_a_terminal_sync_shows_live_rows_then_one_table(churned: Path, emulator: Emulator):
    frames, raw, code = in_pty("sync", "--jobs", "3", *TTY, "down", config=churned)
    assert code == EXIT_FAILED  # down cannot be reached

    # Live: both reachable sources in flight at once, each with images of the total, the
    # page, the rate and the time left. (A read may end mid-row: such frames do not match.)
    live_row = re.compile(r" (east|west) +\S+ [\d,]+/4,200 images p\.\d+ [\d,]+/s \d+:\d\d")

    def rows(frame: list[str]) -> set[str]:
        return {m.group(1) for line in frame if (m := live_row.search(line))}

    both = [f for f in frames if rows(f) == {"east", "west"}]
    assert both, "never saw both sources' rows at once:\n" + "\n".join(
        line for f in frames for line in f if " p." in line
    )
    assert any("/3 sources" in line for line in both[-1]), both[-1]

    final = frames[-1]
    text = unwrap(final)
    assert " p." not in text and "/3 sources" not in text  # the live rows are gone
    header = next(line for line in final if line.startswith("SOURCE"))
    assert header.split() == [
        "SOURCE",
        "OUTCOME",
        "SEEN",
        "NEW",
        "CHANGED",
        "DEPRECATED",
        "CEASED",
        "GONE",
        "TIME",
    ]
    for source in TTY:
        counts = next(line for line in final if line.startswith(f"{source} ")).split()
        assert counts[1:8] == ["succeeded", "4,200", "1,200", "7", "5", "2", "0"], counts
    assert next(line for line in final if line.startswith("down ")).split()[1] == "failed"
    # The failure once, naming the endpoint; no log line repeating it, no traceback.
    assert text.count("Connection refused") == 1, text
    assert "down: failed: DescribeImages page 1: gave up after 2 attempts" in text
    assert re.search(r"reaching http://127\.0\.0\.1:\d+/iaas/", text), text
    assert "Traceback" not in text and "WARNING" not in text and "ERROR" not in text
    assert b"\x1b[" in raw  # colour and cursor movement: this is a terminal

    piped = subprocess.run(
        [str(INVENTORY), "--config", str(churned), "sync", "--verbose", *PIPED, "down"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == EXIT_FAILED
    assert "\x1b[" not in piped.stdout  # plain and stable when piped
    lines = piped.stdout.splitlines()
    for source in PIPED:
        [line] = [line for line in lines if line.startswith(f"{source}: succeeded")]
        assert "42 pages, 4,200 seen, 1,200 new, 7 changed, 2 ceased, 5 deprecated," in line
    assert [line for line in lines if line.startswith("down: failed")], piped.stdout
    assert piped.stdout.count("Connection refused") == 1

    if os.environ.get("INVENTORY_WRITE_DOCS"):
        under_way = [f for f in both if "4,200/4,200" not in unwrap(f)] or both
        write_capture(under_way[len(under_way) // 2], final, piped.stdout)


def write_capture(live: list[str], final: list[str], piped: str) -> None:
    """docs/terminal-output.md, from this test's own screens (INVENTORY_WRITE_DOCS=1)."""

    def block(lines: list[str]) -> str:
        while lines and not lines[-1]:
            lines = lines[:-1]
        return "```\n" + "\n".join(lines) + "\n```\n"

    DOCS.write_text(
        "# What `inventory sync` prints\n\n"
        "Captured by `tests/integration/test_terminal.py` (run with `INVENTORY_WRITE_DOCS=1`)\n"
        "from a real sync of three sources, `--jobs 3`, on an 80-column pseudo-terminal,\n"
        "read through a terminal emulator: two emulated QingCloud sources after a round of\n"
        "changes (1,200 images added, 5 deprecated, 2 ceased), and one whose endpoint refuses\n"
        "connections. Colours are left out here. The piped run is of two more sources of\n"
        "the same emulator, so that it meets the same changes.\n\n"
        "## On a terminal, while it runs (stderr)\n\n"
        "One row per source in flight: images listed of the total the provider announced,\n"
        "the page, the rate over the last pages, the time left; the latest retry, if any.\n\n"
        + block(live)
        + "\n## On a terminal, at the end (stdout)\n\n"
        "The rows are gone; one table remains, with each failure or warning under it, once.\n\n"
        + block(final)
        + "\n## Piped (`inventory sync --verbose | cat`), the same changes\n\n"
        "Plain lines, no escape codes, the same words run after run (cron mails, scripts);\n"
        "without `--verbose` only failures, guard refusals and warnings are printed. For\n"
        "machines, `--json` prints one JSON object per source.\n\n" + block(piped.splitlines())
    )


def test_report_health_reads_at_80_columns_with_the_error_in_full(churned: Path):
    """Before: fifteen columns cut to fit, headers such as LAST_RUN_... four times, and
    the error, the one thing wanted, cut off."""
    failed = subprocess.run(
        [str(INVENTORY), "--config", str(churned), "sync", "down"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failed.returncode == EXIT_FAILED
    error = failed.stdout.split("): ", 1)[1].strip()  # "down: failed (run N): <error>"
    frames, _raw, code = in_pty("report", "health", config=churned)
    assert code == 0
    screen = frames[-1]
    header = next(line for line in screen if line.startswith("SOURCE"))
    assert "…" not in header and header.count("LAST") == 2, header
    expected = "SOURCE LAST RUN FINISHED LAST SUCCESS FAILS STALE"
    assert header.split() == expected.split(), header
    down = next(line for line in screen if line.startswith("down "))
    assert down.split()[1] == "failed" and "…" not in down
    words = " ".join(unwrap(screen).split())  # wrapped at word breaks, never cut
    assert f"down: last error: {error}" in words, words
    assert all(len(line) <= COLUMNS for line in screen)
