"""Final accuracy of each algorithm beside a centrally trained model, on digits.

The seed's comparison: ``--clients`` client processes on a Dirichlet(alpha) split of
scikit-learn's digits, the same initial model, seeds and client batches for every
algorithm, ``--rounds`` rounds each. The baseline, measured in the same run, is the same
network trained centrally on the pooled training data; each row gives the gap to it in
points and the ratio of accuracies. The table is printed and written to ``--out``.

    python benchmarks/accuracy.py                         # fedavg fedprox fedopt scaffold, alpha 0.1 and 0.5
    python benchmarks/accuracy.py --algorithms fedavg median krum --alphas 0.5
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from nbfl.experiments import COMPARED, central_accuracy, compare, final_table
from nbfl.workflows import ALGORITHMS


def markdown(table: list[dict], args: argparse.Namespace, seconds: float) -> str:
    lines = [
        f"digits, {args.clients} clients, {args.rounds} rounds, {args.epochs} local epochs, seed {args.seed} "
        f"({seconds:.0f} s)",
        "",
        "| alpha | algorithm | final accuracy | central | gap (points) | ratio |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for row in table:
        lines.append(
            f"| {row['alpha']} | {row['algorithm']} | {row['accuracy']:.4f} | {row['central']:.4f} "
            f"| {row['gap_points']:+.2f} | {row['accuracy'] / row['central']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=list(COMPARED), choices=sorted(ALGORITHMS))
    parser.add_argument("--alphas", nargs="+", type=float, default=[0.1, 0.5])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/accuracy.md")
    args = parser.parse_args()
    started = time.perf_counter()
    central = central_accuracy(args.seed)
    rows = compare(
        args.algorithms, args.alphas, clients=args.clients, rounds=args.rounds, epochs=args.epochs, seed=args.seed
    )
    text = markdown(final_table(rows, central), args, time.perf_counter() - started)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text + f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
