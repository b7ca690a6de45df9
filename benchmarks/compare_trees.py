"""Round overhead of this tree beside another commit's, in one run: did a change cost time?

    git worktree add /tmp/before 9ba7050        # the commit to compare with
    python benchmarks/compare_trees.py /tmp/before --sizes 0.01 1 --repeat 3

Each repeat runs ``benchmarks/round_overhead.py`` (this tree's copy, so both sides are
measured alike) once with the other tree's nbfl first on ``PYTHONPATH`` and once with
this tree's, the first of the two alternating from repeat to repeat, and reads nbfl's ratio to the raw ZeroMQ baseline that the same
invocation measured. The table gives each tree's median ratio per model size and their
quotient (this tree over the other): 1.00 is no change.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROW = re.compile(r"^\s*([\d.]+)M\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")


def ratios(tree: Path, sizes: list[str], clients: int, rounds: int) -> dict[str, tuple[float, float, float]]:
    """``{size: (raw s/round, nbfl s/round, ratio)}`` from one run of round_overhead.py against ``tree``'s nbfl."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(HERE / "round_overhead.py"), "--sizes", *sizes, "--clients", str(clients)]
    cmd += ["--rounds", str(rounds), "--repeat", "1", "--rss-clients", "0"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return {m[1]: (float(m[3]), float(m[4]), float(m[5])) for line in out.splitlines() if (m := ROW.match(line))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other tree (a git worktree of the commit to compare with)")
    parser.add_argument("--sizes", nargs="+", default=["0.01", "1"], help="millions of float32 parameters")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tree, alternating")
    args = parser.parse_args()
    trees = {"other": args.other.resolve(), "this": HERE.parent}
    seen: dict[str, list[dict[str, tuple[float, float, float]]]] = {k: [] for k in trees}
    for repeat in range(args.repeat):  # which tree goes first alternates: a drift favours neither
        for name, tree in sorted(trees.items(), reverse=repeat % 2 == 1):
            seen[name].append(ratios(tree, args.sizes, args.clients, args.rounds))
    print(f"{'params':>7} {'clients':>7} {'other: nbfl/raw':>15} {'this: nbfl/raw':>14} {'this/other':>10}")
    for size in args.sizes:
        key = f"{float(size):g}"
        other, this = (statistics.median(run[key][2] for run in seen[k]) for k in ("other", "this"))
        print(f"{key:>6}M {args.clients:>7} {other:>15.2f} {this:>14.2f} {this / other:>10.2f}")
    print(f"(medians of {args.repeat} runs per tree; each ratio from one round_overhead.py run: its own raw baseline)")
    print("(the noise: compare a tree with a worktree of itself, git worktree add /tmp/same HEAD)")


if __name__ == "__main__":
    main()
