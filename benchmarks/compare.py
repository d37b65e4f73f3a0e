"""This checkout against an earlier commit, side by side in one invocation.

The earlier commit is checked out into a temporary git worktree, and its own
``benchmarks/bench_sync.py`` runs with its own code, alternating with this checkout's, for
``--rounds`` rounds (old first in odd rounds, new first in even ones, so a load that comes
and goes touches both). It prints each phase's images/s, the median per side, and the
ratio new/old, so every figure is measured on the same machine under the same load. It
prints figures; it never passes or fails on them.

    .venv/bin/python benchmarks/compare.py --against HEAD~1 [--provider qingcloud]
        [--images 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASE = re.compile(
    r"^(initial load|no-change re-sync|churn re-sync \(~1%\))\s+[\d,]+\s+\d+\s+[\d.]+\s+([\d,]+)"
)


def run(tree: Path, provider: str, images: int) -> dict[str, float]:
    """One bench_sync.py run of ``tree`` with ``tree``'s code: images/s per phase."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    script = str(tree / "benchmarks" / "bench_sync.py")
    done = subprocess.run(
        [sys.executable, script, "--images", str(images), "--provider", provider],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: bench_sync.py exited {done.returncode}:\n{done.stderr}")
    return {
        m.group(1): float(m.group(2).replace(",", ""))
        for line in done.stdout.splitlines()
        if (m := PHASE.match(line))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--against", required=True, help="the earlier commit (any git rev)")
    parser.add_argument("--provider", action="append", help="default: qingcloud")
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.against],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    old = Path(tempfile.mkdtemp(prefix="inventory-compare-")) / rev
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(old), rev], cwd=ROOT, check=True
    )
    try:
        print(
            f"{ROOT.name} (this checkout) against {rev}: {args.images:,} images, "
            f"{args.rounds} rounds; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
        )
        for provider in args.provider or ["qingcloud"]:
            figures: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
            for round_ in range(args.rounds):
                sides = [("old", old), ("new", ROOT)]
                for side, tree in sides if round_ % 2 == 0 else reversed(sides):
                    for phase, rate in run(tree, provider, args.images).items():
                        figures[phase][side].append(rate)
            print(f"\n{provider}: images/s per round, median, and new/old")
            for phase, sides in figures.items():
                medians = {side: statistics.median(rates) for side, rates in sides.items()}
                rounds = {s: ", ".join(f"{r:,.0f}" for r in sides[s]) for s in ("old", "new")}
                print(
                    f"  {phase:<22} old {medians['old']:>7,.0f} ({rounds['old']})   "
                    f"new {medians['new']:>7,.0f} ({rounds['new']})   "
                    f"x{medians['new'] / medians['old']:.2f}"
                )
        print(f"\nload after: {os.getloadavg()[0]:.2f}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
        shutil.rmtree(old.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
