"""What the Federation panel costs a run, and how fast a controller answers it mid-round.

A controller in this process (a model of ``--params`` float32 parameters) and
``--clients`` client processes that return the weights they get. Rounds are timed in
three settings, interleaved ``--repeat`` times: nobody asking, the panel's own pace (a
status request every second, as JupyterLab's panel polls), and a status request back
to back without pause (far more than any number of open panels). Each status request
goes over the controller's control socket (``nbfl.transport.control``), as the Jupyter server
extension sends it; its round trip is timed and set beside a bare ZeroMQ REQ/REP echo of
the same size on loopback, measured in the same run.

    python benchmarks/panel.py                         # 10M parameters, 4 clients
    python benchmarks/panel.py --params 1000000 --rounds 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import zmq

import nbfl
from nbfl.transport import control

WORKER = "import nbfl, sys; nbfl.Client(sys.argv[1], sys.argv[2], tasks={'train': lambda w: dict(w)}).run()"


def poller(entry: dict, pause: float | None, stop: threading.Event, latencies: list[float]) -> threading.Thread:
    """A thread asking for the status every ``pause`` seconds (None: back to back), like the panel."""

    def ask() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            control.request(entry, "status")
            latencies.append(time.perf_counter() - start)
            if pause is not None:
                stop.wait(pause)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread


def timed_rounds(ctl: nbfl.Controller, clients: int, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        record = ctl.run(1, min_clients=clients, timeout=600)[0]
        times.append(time.perf_counter() - start)
        assert record.ok and len(record.clients) == clients, record
    return times


def echo_baseline(size: int, trials: int = 200) -> list[float]:
    """Round trips of a bare REQ/REP echo of ``size`` bytes on loopback: the least a request costs."""
    ctx = zmq.Context.instance()
    rep, req = ctx.socket(zmq.REP), ctx.socket(zmq.REQ)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    req.connect(f"tcp://127.0.0.1:{port}")
    payload = b"x" * size

    def serve() -> None:
        for _ in range(trials):
            rep.send(rep.recv())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    times = []
    for _ in range(trials):
        start = time.perf_counter()
        req.send(payload)
        req.recv()
        times.append(time.perf_counter() - start)
    thread.join()
    rep.close()
    req.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=20, help="rounds per setting and repeat")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    weights = {"w": np.full(args.params, 0.5, np.float32)}
    settings = {"nobody asking": 0.0, "panel's pace (1 request/s)": 1.0, "back to back": None}
    times: dict[str, list[float]] = {name: [] for name in settings}
    latencies: dict[str, list[float]] = {name: [] for name in settings}
    ctl = nbfl.Controller("tcp://127.0.0.1:0", weights)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, ctl.endpoint, f"bench-{i}"]) for i in range(args.clients)]
    try:
        ctl.wait_for_clients(args.clients, timeout=120)
        timed_rounds(ctl, args.clients, 2)  # warm up connections and allocators
        entry = next(e for e in control.registered() if e["id"] == ctl.control.id)
        status_bytes = len(json.dumps(control.request(entry, "status")))
        for _ in range(args.repeat):
            for name, pause in settings.items():
                stop = threading.Event()
                thread = poller(entry, pause, stop, latencies[name]) if pause != 0.0 else None
                times[name] += timed_rounds(ctl, args.clients, args.rounds)
                stop.set()
                if thread is not None:
                    thread.join()
    finally:
        ctl.close()  # says bye: the clients leave
        for proc in procs:
            proc.wait(30)
    echo = statistics.median(echo_baseline(status_bytes))
    base = statistics.median(times["nobody asking"])
    print(
        f"{args.clients} clients (processes), {args.params:,} float32 parameters, "
        f"{args.rounds} rounds x {args.repeat} per setting, interleaved"
    )
    print(
        f"{'':>28} {'round s (median)':>17} {'ratio':>6} {'requests':>9} {'status ms (median)':>19} {'ratio to echo':>14}"
    )
    for name in settings:
        rounds = statistics.median(times[name])
        lat = latencies[name]
        ms = f"{statistics.median(lat) * 1000:.3f}" if lat else "-"
        to_echo = f"{statistics.median(lat) / echo:.1f}" if lat else "-"
        print(f"{name:>28} {rounds:>17.4f} {rounds / base:>6.2f} {len(lat):>9} {ms:>19} {to_echo:>14}")
    print(f"{'REQ/REP echo (baseline)':>28} {'':>17} {'':>6} {'':>9} {echo * 1000:>19.3f} {1.0:>14.1f}")
    print(f"a status reply is {status_bytes} bytes of JSON here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
