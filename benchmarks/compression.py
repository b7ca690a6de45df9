"""Bytes on the wire and what they cost: float32 beside float16 and int8 (nbfl.protocol.compress).

Part 1, the digits setup: a controller in this process and ``--clients`` client
processes (``%fl_spawn``'s, the built-in digits MLP of 4,810 parameters, a
Dirichlet(0.5) split), ``--rounds`` FedAvg rounds per codec, from the same initial
model. For each codec: the bytes a round moved (sent and received, headers included,
median over rounds, from ``RoundRecord.traffic``) and the final test accuracy, each
beside float32's from the same run.

Part 2, a slow shared link: the clients connect through a relay on loopback that lets
``--mbit`` megabits a second through, all connections together (one access point for
the room). The clients return what they get (no training), so the round time is the
network's; the model has ``--params`` float32 parameters (4 MB by default, as in the
workshop of the issue). Median seconds a round, float32 and int8, interleaved.

    python benchmarks/compression.py                   # 8 clients, 20 rounds; 100 Mbit/s, 1M parameters
    python benchmarks/compression.py --rounds 5 --link-rounds 2
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import torch

import nbfl
from nbfl.data import load_digits_split
from nbfl.launch.spawn import spawn_clients, stop_clients
from nbfl.participant.models import DigitsMLP
from nbfl.participant.trainers import evaluator

CODECS = ("none", "float16", "int8")
ECHO = "import nbfl, sys; nbfl.Client(sys.argv[1], sys.argv[2], tasks={'train': lambda w: dict(w)}).run()"


def digits_run(codec: str, clients: int, rounds: int) -> tuple[float, float, float]:
    """(median bytes a round moved, final accuracy, final loss) of ``rounds`` rounds with ``codec``."""
    torch.manual_seed(0)
    model = DigitsMLP()
    _, _, x_test, y_test = load_digits_split()
    with nbfl.Controller("tcp://127.0.0.1:0", model, evaluate=evaluator(model, x_test, y_test), compress=codec) as ctl:
        procs = spawn_clients(ctl.endpoint, clients, partition="dirichlet:0.5", seed=0)
        try:
            ctl.wait_for_clients(clients, timeout=300)
            records = ctl.run(rounds, min_clients=clients, timeout=600)
        finally:
            ctl.close()
            stop_clients(procs)
    assert all(r.ok and len(r.clients) == clients for r in records), [r.outcome for r in records]
    last = records[-1].metrics
    return statistics.median(sum(r.traffic) for r in records), last["accuracy"], last["loss"]


class Throttle:
    """A TCP relay on loopback whose connections share ``mbit`` megabits a second, each way
    together: a crowded access point. Each chunk waits for its turn on the shared link."""

    def __init__(self, target: str, mbit: float):
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        self.target, self.rate = (host, int(port)), mbit * 1e6 / 8
        self.server = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.free_at, self.lock = time.monotonic(), threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                with self.lock:  # reserve this chunk's time on the link
                    start = max(time.monotonic(), self.free_at)
                    self.free_at = start + len(data) / self.rate
                time.sleep(max(0.0, self.free_at - time.monotonic()))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        self.server.close()


def link_rounds(codec: str, params: int, clients: int, rounds: int, mbit: float) -> tuple[list[float], list[int]]:
    """Seconds and bytes of each of ``rounds`` rounds through the throttled relay."""
    weights = {"w": np.random.default_rng(0).normal(size=params).astype(np.float32)}
    ctl = nbfl.Controller("tcp://127.0.0.1:0", weights, compress=codec, heartbeat_timeout=120.0)
    link = Throttle(ctl.endpoint, mbit)
    procs = [subprocess.Popen([sys.executable, "-c", ECHO, link.endpoint, f"site-{i}"]) for i in range(clients)]
    try:
        ctl.wait_for_clients(clients, timeout=300)
        times, moved = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            (record,) = ctl.run(1, min_clients=clients, timeout=3600)
            times.append(time.perf_counter() - start)
            moved.append(sum(record.traffic))
            assert record.ok and len(record.clients) == clients, record.outcome
    finally:
        ctl.close()
        for proc in procs:
            proc.wait(60)
        link.close()
    return times, moved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--mbit", type=float, default=100.0, help="the shared link's rate, in megabits a second")
    parser.add_argument("--params", type=int, default=1_000_000, help="the model over the slow link")
    parser.add_argument("--link-rounds", type=int, default=3, help="rounds per codec over the slow link, each repeat")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repeats over the slow link")
    args = parser.parse_args()

    digits = {codec: digits_run(codec, args.clients, args.rounds) for codec in CODECS}
    base_bytes, base_accuracy, _ = digits["none"]
    print(f"digits: {args.clients} client processes, {args.rounds} FedAvg rounds, DigitsMLP (4,810 parameters)")
    print(
        f"{'codec':>8} {'kB a round':>11} {'ratio':>6} {'final accuracy':>15} {'points from float32':>20} {'final loss':>11}"
    )
    for codec, (moved, accuracy, loss) in digits.items():
        print(
            f"{codec if codec != 'none' else 'float32':>8} {moved / 1000:>11.1f} {moved / base_bytes:>6.3f} "
            f"{accuracy:>15.4f} {100 * (accuracy - base_accuracy):>+20.2f} {loss:>11.5f}"
        )

    slow: dict[str, list[float]] = {"none": [], "int8": []}
    sizes: dict[str, list[int]] = {"none": [], "int8": []}
    for _ in range(args.repeat):
        for codec in slow:
            times, moved = link_rounds(codec, args.params, args.clients, args.link_rounds, args.mbit)
            slow[codec] += times
            sizes[codec] += moved
    base, base_size = statistics.median(slow["none"]), statistics.median(sizes["none"])
    print(
        f"\nover a {args.mbit:g} Mbit/s link shared by {args.clients} clients (a relay on loopback), "
        f"{args.params:,} float32 parameters, clients echo the model ({len(slow['none'])} rounds each, interleaved)"
    )
    print(f"{'codec':>8} {'MB a round':>11} {'ratio':>6} {'seconds a round':>16} {'ratio':>6}")
    for codec, times in slow.items():
        median, size = statistics.median(times), statistics.median(sizes[codec])
        print(
            f"{codec if codec != 'none' else 'float32':>8} {size / 1e6:>11.2f} {size / base_size:>6.3f} "
            f"{median:>16.2f} {median / base:>6.2f}"
        )
    ratio = digits["int8"][0] / base_bytes
    points = 100 * abs(digits["int8"][1] - base_accuracy)
    print(f"\ntarget: int8 at most 0.27x float32's bytes ({ratio:.3f}) and within 0.5 points ({points:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
