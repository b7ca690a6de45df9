"""Seconds per FedAvg round and controller memory: nbfl beside a raw pyzmq baseline.

Each configuration runs in a fresh controller process with its own client processes
(``--clients`` of them, each returning the weights it received, unchanged), so the
peak RSS printed is that configuration's alone. The baseline is the least a ROUTER/
DEALER echo can do: send the model's buffers zero-copy to every client, receive the
echoes and fold each into a streaming weighted mean with the same arithmetic nbfl
uses. nbfl's rounds are those of one run (``%fl_round 10``), timed from the end of one
round to the end of the next; a run's own start and end (a thread, and giving freed
memory back to the system) are paid once a run, not a round. The ratio is nbfl's median
over the baseline's median from the same run; the peak RSS is the largest of a system's runs.
Each run also reports the CPU time per round of its controller process and of its client
processes, all threads together (``round_floor.py`` prints both).

    python benchmarks/round_overhead.py                      # 1M, 10M, 50M with 8 clients; 10M with 32
    python benchmarks/round_overhead.py --sizes 1 --rounds 3 --repeat 1   # quicker
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import zmq

TENSORS = 4  # the parameters are split over a few tensors, like a small network's layers


def model(params: int) -> dict[str, np.ndarray]:
    sizes = [params // TENSORS] * (TENSORS - 1)
    sizes.append(params - sum(sizes))
    return {f"layer{i}.weight": np.full(n, 0.5, np.float32) for i, n in enumerate(sizes)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def children_cpu(procs: list[subprocess.Popen]) -> float:
    """CPU seconds the client processes have used so far, all their threads (from /proc: Linux;
    NaN elsewhere). Read at the first timed round and after the last one, as the controller's own."""
    try:
        ticks = 0
        for proc in procs:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


# -- nbfl -------------------------------------------------------------------------
def nbfl_controller(
    params: int, clients: int, rounds: int, client: Callable[[str, int], subprocess.Popen] | None = None
) -> dict:
    """nbfl's rounds with ``client(endpoint, index)`` processes (by default ``nbfl.Client`` ones)."""
    import nbfl

    weights = model(params)
    with nbfl.Controller("tcp://127.0.0.1:0", weights) as ctl:
        procs = [(client or nbfl_process)(ctl.endpoint, i) for i in range(clients)]
        ctl.wait_for_clients(clients, timeout=120)
        done: list[float] = []  # when each round ended; the first round warms up connections and allocators
        cpu: list[float] = []  # this process's CPU time (all its threads) then
        clients_cpu: list[float] = []  # the clients' then: after the warm-up round, and after the last

        def on_round(_: object) -> None:
            done.append(time.perf_counter())
            cpu.append(time.process_time())
            if len(done) == 1:
                clients_cpu.append(children_cpu(procs))

        records = ctl.run(rounds + 1, min_clients=clients, timeout=600, on_round=on_round)
        clients_cpu.append(children_cpu(procs))
        assert all(r.ok and len(r.clients) == clients for r in records), records
        assert np.allclose(ctl.weights["layer0.weight"][:10], 0.5)
    reap(procs)
    return {
        "seconds": [b - a for a, b in zip(done, done[1:])],
        "cpu_per_round": (cpu[-1] - cpu[0]) / rounds,
        "clients_cpu_per_round": (clients_cpu[-1] - clients_cpu[0]) / rounds,
        "peak_rss_mib": peak_rss_mib(),
    }


def nbfl_process(endpoint: str, index: int) -> subprocess.Popen:
    return spawn("nbfl-worker", endpoint, index)


def nbfl_worker(endpoint: str, index: int) -> None:
    import nbfl

    nbfl.Client(endpoint, f"bench-{index}", tasks={"train": lambda weights: dict(weights)}).run()


# -- raw pyzmq baseline -----------------------------------------------------------
def raw_controller(params: int, clients: int, rounds: int) -> dict:
    weights = model(params)
    names = list(weights)
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    procs = [spawn("raw-worker", f"tcp://127.0.0.1:{port}", i) for i in range(clients)]
    peers = [sock.recv_multipart()[0] for _ in range(clients)]  # each worker says hello
    scratch = np.empty(max(a.size for a in weights.values()), np.float32)
    times, cpu, clients_cpu = [], [], []
    for _ in range(rounds + 1):
        if len(times) == 1:  # the warm-up round is done
            clients_cpu.append(children_cpu(procs))
        start = time.perf_counter()
        cpu.append(time.process_time())
        for peer in peers:
            sock.send_multipart([peer, *(weights[n] for n in names)], copy=False)
        acc = {n: np.zeros_like(a) for n, a in weights.items()}
        for _ in peers:
            frames = sock.recv_multipart(copy=False)
            for name, frame in zip(names, frames[1:]):
                arr = np.frombuffer(frame.buffer, np.float32)
                tmp = scratch[: arr.size]
                np.multiply(arr, 1.0, out=tmp)
                np.add(acc[name], tmp, out=acc[name])
        weights = {n: a / clients for n, a in acc.items()}
        times.append(time.perf_counter() - start)
    cpu_per_round = (time.process_time() - cpu[1]) / rounds
    clients_cpu_per_round = (children_cpu(procs) - clients_cpu[0]) / rounds
    for peer in peers:
        sock.send_multipart([peer, b""])
    reap(procs)
    sock.close(0)
    return {
        "seconds": times[1:],
        "cpu_per_round": cpu_per_round,
        "clients_cpu_per_round": clients_cpu_per_round,
        "peak_rss_mib": peak_rss_mib(),
    }


def raw_worker(endpoint: str, index: int) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(endpoint)
    sock.send(b"hello")
    while True:
        frames = sock.recv_multipart(copy=False)
        if len(frames) == 1 and not frames[0].bytes:
            return
        sock.send_multipart(frames, copy=False)


# -- driver -------------------------------------------------------------------------
def spawn(role: str, endpoint: str, index: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, role, endpoint, str(index)])


def reap(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(system: str, params: int, clients: int, rounds: int) -> dict:
    return run_json(__file__, f"{system}-controller", str(params), str(clients), str(rounds))


def run_json(script: str, *args: str) -> dict:
    """Run ``script`` in a fresh Python process and read the JSON object its last line prints."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 10, 50], help="millions of float32 parameters")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds per run, after one warm-up round")
    parser.add_argument("--repeat", type=int, default=2, help="runs per system and size, interleaved")
    parser.add_argument(
        "--rss-clients", type=int, default=32, help="second client count for the memory check (0: no memory check)"
    )
    parser.add_argument("--rss-size", type=float, default=10)
    args = parser.parse_args()

    print(
        f"{'params':>7} {'clients':>7} {'raw s/round':>11} {'nbfl s/round':>12} {'ratio':>6} "
        f"{'raw RSS MiB':>11} {'nbfl RSS MiB':>12}",
        flush=True,
    )
    rows = [(size, args.clients) for size in args.sizes] + (
        [(args.rss_size, args.rss_clients)] if args.rss_clients else []
    )
    nbfl_rss = {}
    for size, clients in rows:
        params = int(size * 1e6)
        runs: dict[str, list[dict]] = {"raw": [], "nbfl": []}
        for _ in range(args.repeat):  # interleaved, so drift on a shared machine hits both alike
            for system in runs:
                runs[system].append(measure(system, params, clients, args.rounds))
        raw_med, ours_med = (statistics.median(s for r in runs[k] for s in r["seconds"]) for k in ("raw", "nbfl"))
        raw_rss, ours_rss = (max(r["peak_rss_mib"] for r in runs[k]) for k in ("raw", "nbfl"))
        nbfl_rss[(size, clients)] = ours_rss
        print(
            f"{size:>6g}M {clients:>7} {raw_med:>11.3f} {ours_med:>12.3f} {ours_med / raw_med:>6.2f} "
            f"{raw_rss:>11.0f} {ours_rss:>12.0f}",
            flush=True,
        )
    small, big = nbfl_rss.get((args.rss_size, args.clients)), nbfl_rss.get((args.rss_size, args.rss_clients))
    if small is not None and big is not None and args.rss_clients:
        model_mib = args.rss_size * 1e6 * 4 / 2**20
        growth = (big - small) / model_mib
        print(
            f"\nnbfl controller peak RSS at {args.rss_size:g}M params: {small:.0f} MiB with {args.clients} clients, "
            f"{big:.0f} MiB with {args.rss_clients}: a change of {big - small:+.0f} MiB = {growth:+.2f}x the "
            f"model's {model_mib:.0f} MiB (target: less than +2x)"
        )


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role in ("nbfl-controller", "raw-controller"):
        run = nbfl_controller if role == "nbfl-controller" else raw_controller
        print(json.dumps(run(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
    elif role in ("nbfl-worker", "raw-worker"):
        (nbfl_worker if role == "nbfl-worker" else raw_worker)(sys.argv[2], int(sys.argv[3]))
    else:
        main()
