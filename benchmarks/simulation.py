"""Simulation at research scale: nbfl beside Flower's simulation engine, in the same run.

Both sides run the same experiment: ``--clients`` clients (1000) on a generated 64-feature,
10-class problem (:func:`nbfl.data.load_synthetic_split`, 60 points each, split by
``--partition``), ``--sample`` of them (10) trained per round for ``--rounds`` rounds (30)
with FedAvg, each sampled client running one local epoch of SGD on the digits MLP
(64-64-10, :class:`nbfl.participant.numpy_trainer.NumpyTrainer`: the same code, data and
seeds on both sides), the global model evaluated on the same test set after each round.

- **nbfl**: a controller and ``--clients / --per-process`` host processes (250 logical
  clients each, :mod:`nbfl.participant.host`), each client its own at the controller, the
  clients of a process on one shared connection.
- **Flower** (``flwr.simulation.run_simulation`` with Ray, ``FedAvg(fraction_train=...)``),
  installed by this script in a venv of its own (``benchmarks/.flwr-venv``) with nbfl's
  trainer: ``--no-flower`` skips it.

Each run of a side is a fresh process (and nbfl's once more with 10 clients, for the
controller's RSS with few clients). The sides take turns, ``--repeat`` runs each, with
seeds ``--seed``, ``--seed + 1``, ...: the accuracy after 30 rounds of 10 sampled
clients depends on which were sampled, so one run of each says little. This script
samples the memory of each run's whole process tree (PSS, so pages that forked
processes share count once; RSS beside it) every 0.1 s and prints wall time (start to
finish, startup included), time until the first round was done and seconds per round
(medians over the runs), the peak (the largest), and the final accuracy (the mean, and
its spread), with nbfl's ratio to Flower; then the controller's own RSS with 10 clients
and with all of them, for the claim that it stays flat.

    python benchmarks/simulation.py                      # 1000 clients, 10 sampled, 30 rounds
    python benchmarks/simulation.py --clients 100 --partition dirichlet:0.3
    python benchmarks/simulation.py --dask               # nbfl's hosts as tasks on a Dask LocalCluster
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FLWR_VENV = HERE / ".flwr-venv"
FLWR = "flwr[simulation]==1.42.0"


# -- measuring a process tree -------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_memory(root: int) -> tuple[float, float]:
    """(PSS, RSS) in MiB of ``root`` and all its descendants."""
    tree, todo, pss, rss = _children(), [root], 0, 0
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss / 1024, rss / 1024


def measured(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` (a side, which prints one JSON line last); add its wall time and the peak
    memory of its process tree."""
    peak = [0.0, 0.0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            pss, rss = tree_memory(proc.pid)
            peak[0], peak[1] = max(peak[0], pss), max(peak[1], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed with {proc.returncode}:\n{out[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "wall": wall, "peak_pss": peak[0], "peak_rss": peak[1]}


# -- the nbfl side --------------------------------------------------------------------------
def _rss_self() -> float:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def run_nbfl(args: argparse.Namespace) -> dict:
    import nbfl
    from nbfl.participant.builtin import digits_model

    start = time.perf_counter()
    weights, evaluate = digits_model(args.seed, "numpy", "synthetic")
    controller = nbfl.Controller("tcp://127.0.0.1:0", weights, evaluate=evaluate)
    common = {"data": "synthetic", "partition": args.partition, "seed": args.seed, "epochs": 1}
    procs, dask = [], None
    if args.dask:  # the hosts as Dask tasks, one a worker process of a LocalCluster
        from distributed import LocalCluster

        from nbfl.launch.on_dask import spawn_on_dask

        workers = -(-args.clients // args.per_process)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        controller.expect_joins(args.clients)
        dask = spawn_on_dask(
            cluster.scheduler_address,
            args.clients,
            endpoint=controller.endpoint,
            per_process=args.per_process,
            **common,
        )
    else:
        procs = nbfl.spawn_clients(controller, args.clients, per_process=args.per_process, template=False, **common)
    controller.wait_for_clients(args.clients, timeout=600)
    done: list[float] = []
    run = controller.start(
        args.rounds, sample=args.sample, sample_seed=args.seed, on_round=lambda _: done.append(time.perf_counter())
    )
    run.wait()
    controller_rss = _rss_self()  # every client still connected, each having beaten and one in 100 trained
    history = controller.history
    controller.close()
    if dask is not None:
        dask.release()
        cluster.close()
    nbfl.stop_clients(procs)
    return {
        "first_round": done[0] - start,
        "per_round": statistics.median(b - a for a, b in zip(done, done[1:])),
        "accuracy": history[-1].metrics["accuracy"],
        "rounds": len(history),
        "controller_rss": controller_rss,
    }


# -- the Flower side ------------------------------------------------------------------------
def flower_python() -> str:
    """The venv's python, made on first use: Flower with Ray, and nbfl's core dependencies for its
    trainer (this nbfl is put on its PYTHONPATH)."""
    python = FLWR_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing {FLWR} into {FLWR_VENV} (once)", file=sys.stderr, flush=True)
        venv.create(FLWR_VENV, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", FLWR, "numpy", "pyzmq", "safetensors"], check=True)
    return str(python)


def run_flower(args: argparse.Namespace) -> dict:
    from flower_app import run  # in Flower's venv: a module, so Ray's workers import it rather than unpickle it

    start = time.perf_counter()
    done, result = run(args.clients, args.sample, args.rounds, args.partition, args.seed)
    trained = len(result.train_metrics_clientapp)  # the rounds for which clients sent results
    if trained != args.rounds:
        raise SystemExit(f"Flower's clients answered in {trained} of {args.rounds} rounds (see above)")
    return {
        "first_round": done[0][0] - start,
        "per_round": statistics.median(b[0] - a[0] for a, b in zip(done, done[1:])),
        "accuracy": done[-1][1],
        "rounds": len(done),
    }


# -- the table ------------------------------------------------------------------------------
def combined(runs: list[dict]) -> dict:
    """A side's runs as one row: medians of the times, the largest peak, the mean accuracy (and its spread)."""
    row = {key: statistics.median(r[key] for r in runs) for key in ("wall", "first_round", "per_round")}
    row.update({key: max(r[key] for r in runs) for key in ("peak_pss", "peak_rss")})
    accuracies = [r["accuracy"] for r in runs]
    row["accuracy"] = statistics.mean(accuracies)
    row["spread"] = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    row["controller_rss"] = max(r.get("controller_rss") or 0 for r in runs)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--sample", type=int, default=10)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--per-process", type=int, default=250)
    p.add_argument("--partition", default="iid")
    p.add_argument("--seed", type=int, default=0, help="of the data, its split, the first model and the sampling")
    p.add_argument(
        "--repeat", type=int, default=3, help="runs of each side, with seeds --seed, --seed + 1, ..., interleaved"
    )
    p.add_argument("--dask", action="store_true", help="nbfl's hosts as tasks on a Dask LocalCluster")
    p.add_argument("--no-flower", action="store_true", help="nbfl alone")
    p.add_argument("--side", choices=["nbfl", "flower"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side == "nbfl":
        print(json.dumps(run_nbfl(args)))
        return
    if args.side == "flower":
        print(json.dumps(run_flower(args)))
        return
    same = ["--clients", str(args.clients), "--sample", str(args.sample), "--rounds", str(args.rounds)]
    same += ["--per-process", str(args.per_process), "--partition", args.partition] + (["--dask"] if args.dask else [])
    env = {"NBFL_TRAINER": "numpy", "PYTHONPATH": str(ROOT)}
    commands = {"nbfl": ([sys.executable, __file__], env)}
    if not args.no_flower:
        commands["flower"] = (
            [flower_python(), __file__],
            {"PYTHONPATH": f"{ROOT}:{HERE}", "RAY_USAGE_STATS_ENABLED": "0"},
        )
    runs: dict[str, list[dict]] = {side: [] for side in commands}
    for seed in range(args.seed, args.seed + args.repeat):  # interleaved: drift on a busy machine hits both
        for side, (cmd, side_env) in commands.items():
            runs[side].append(measured([*cmd, *same, "--seed", str(seed), "--side", side], side_env))
    sides = {side: combined(done) for side, done in runs.items()}
    # the controller's RSS with 10 clients, in a fresh process of its own, for the ratio below
    ten = ["--clients", "10", "--per-process", "10", "--rounds", "2", "--sample", "2", "--partition", "iid"]
    few = measured([sys.executable, __file__, *ten, *(["--dask"] if args.dask else []), "--side", "nbfl"], env)
    where = f"{-(-args.clients // args.per_process)} {'Dask workers' if args.dask else 'processes'}"
    print(
        f"\n{args.clients} clients ({args.partition}; nbfl on {where}), {args.sample} sampled per round, "
        f"{args.rounds} rounds, one local epoch each; {args.repeat} runs a side (seeds {args.seed} to "
        f"{args.seed + args.repeat - 1}), {os.cpu_count()} CPUs\n"
    )
    rows = [
        ("wall time, s (median)", "wall", "{:.1f}"),
        ("first round done, s (median)", "first_round", "{:.1f}"),
        ("seconds per round (median)", "per_round", "{:.3f}"),
        ("peak memory, PSS MiB (max)", "peak_pss", "{:.0f}"),
        ("peak memory, RSS MiB (max)", "peak_rss", "{:.0f}"),
        ("final accuracy (mean)", "accuracy", "{:.3f}"),
    ]
    head = f"| {'':30} | {'nbfl':>8} |" + (" flower | nbfl/flower |" if "flower" in sides else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for label, key, fmt in rows:
        line = f"| {label:30} | {fmt.format(sides['nbfl'][key]):>8} |"
        if "flower" in sides:
            ratio = sides["nbfl"][key] / sides["flower"][key] if key != "accuracy" else None
            diff = f"{100 * (sides['nbfl'][key] - sides['flower'][key]):+.1f} pts"
            line += f" {fmt.format(sides['flower'][key]):>6} | {diff if ratio is None else f'{ratio:.2f}':>11} |"
        print(line)
    spread = ", ".join(f"{side} {100 * row['spread']:.1f}" for side, row in sides.items())
    print(f"\nfinal accuracy's standard deviation over the seeds, points: {spread}")
    print(
        f"nbfl's controller process, RSS: {few['controller_rss']:.0f} MiB with 10 clients connected, "
        f"{sides['nbfl']['controller_rss']:.0f} MiB with {args.clients} "
        f"({sides['nbfl']['controller_rss'] / few['controller_rss']:.2f}x)"
    )


if __name__ == "__main__":
    main()
