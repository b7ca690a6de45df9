"""Where a small model's round goes: raw ZeroMQ, nbfl's threads with no work in them, the
same threads with nbfl's wire format, and nbfl itself, measured in one run.

``round_overhead.py`` compares nbfl with the least a ROUTER/DEALER echo can do. This
benchmark adds the steps between, each a fresh controller process with its own client
processes, so the gap can be split into what each layer costs:

- ``raw``: round_overhead's baseline. The controller sends the model to each client
  and folds the echoes into a mean; a client echoes in its main thread.
- ``threads``: nbfl's thread layout and nothing else. The controller's IO thread owns
  the ROUTER and hands each result to the round's thread through a queue; a client's IO
  thread owns the DEALER, hands each task to a worker thread through a queue, and sends
  what the worker queues back, woken through a socket pair, as nbfl's threads do
  (``nbfl.transport.threads``). Messages are the model's frames with an empty header.
- ``threads+wire``: the same with nbfl's messages: the controller encodes the task once
  and a header per client, and decodes each result; a client decodes its task and
  encodes its result (``nbfl.protocol.wire``, every check included).
- ``threads+wire, task on IO thread``: the same, but a client's IO thread runs the task
  itself, without the worker: what nbfl's rule that an IO thread never runs user code
  (so beats flow and an abort is read while a task trains) costs a small model.
- ``nbfl controller, bare clients``: nbfl's controller with the ``threads+wire``
  clients, which also join and beat as nbfl's do: what nbfl's controller adds.
- ``nbfl``: ``Controller.run`` with ``nbfl.Client`` processes (round_overhead's).

Beside each system's median time a round: its controller process's CPU a round (all its
threads, libzmq's included), the part of the work that does not spread over clients; its
client processes' CPU a round, all of them together; and how many cores the round kept
busy (both CPU times over the mean time a round). Where that is near the machine's core
count, the round is bound by the total CPU of its processes, not by waiting on one another.

    python benchmarks/round_floor.py                       # 10k parameters, 8 clients
    python benchmarks/round_floor.py --clients 2 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import round_overhead  # noqa: E402 - a sibling script: its raw baseline and nbfl measurement

from nbfl.protocol import wire  # noqa: E402
from nbfl.transport.threads import receive_all, send_all  # noqa: E402

TASK_FIELDS = {"task_name": "train", "round": 1, "kind": "WEIGHTS", "direct": True, "meta": {}, "global_metrics": None}
RESULT_META = {"metrics": {}, "num_samples": 60}
BARE = "nbfl controller, bare clients"
LAYOUTS = {  # name: (nbfl's messages, the task on the client's IO thread)
    "threads": (False, False),
    "threads+wire": (True, False),
    "threads+wire, task on IO thread": (True, True),
}


class Loop(threading.Thread):
    """An IO thread as nbfl's: it owns ``sock``, polls it and a wake-up pipe, runs calls queued
    by other threads, and hands each message it reads to ``on_frames``."""

    def __init__(self, sock: zmq.Socket, on_frames: Callable[[list], None]):
        super().__init__(daemon=True)
        self.sock, self.on_frames = sock, on_frames
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        self.calls.put((fn, args))
        try:
            self.wake_w.send(b"x")
        except BlockingIOError:  # the pipe is full: the thread is awake already
            pass

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        while True:
            ready = dict(poller.poll(1000))
            if self.wake_r.fileno() in ready:
                self.wake_r.recv(4096)
            while not self.calls.empty():
                fn, args = self.calls.get_nowait()
                fn(*args)
            while self.sock.get(zmq.EVENTS) & zmq.POLLIN:
                self.on_frames(receive_all(self.sock))


def layout_controller(params: int, clients: int, rounds: int, layout: str) -> dict:
    use_wire, _ = LAYOUTS[layout]
    weights = round_overhead.model(params)
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    procs = [spawn("layout-worker", f"tcp://127.0.0.1:{port}", layout) for _ in range(clients)]
    peers = [sock.recv_multipart()[0] for _ in range(clients)]  # each worker says hello
    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def on_frames(frames: list) -> None:  # the IO thread: decode, then hand over, as nbfl's does
        inbox.put(wire.decode(frames[1:]).tensors if use_wire else frames[1:])

    loop = Loop(sock, on_frames)
    loop.start()
    times, cpu, clients_cpu = [], [], []
    try:
        for _ in range(rounds + 1):
            if len(times) == 1:  # the warm-up round is done
                clients_cpu.append(round_overhead.children_cpu(procs))
            start = time.perf_counter()
            cpu.append(time.process_time())
            if use_wire:
                specs, buffers = wire.encode_tensors(weights)
                shared = [zmq.Frame(b) for b in buffers]
                sends = [
                    [p, wire.encode_header("task", {"task_id": f"{i:032x}", **TASK_FIELDS}, specs), *shared]
                    for i, p in enumerate(peers)
                ]
            else:
                sends = [[p, b"{}", *weights.values()] for p in peers]
            loop.call(lambda: [send_all(sock, frames) for frames in sends])
            acc = {n: np.zeros_like(a) for n, a in weights.items()}
            for _ in peers:
                got = inbox.get()
                arrays = got.values() if use_wire else (np.frombuffer(f.buffer, np.float32) for f in got[1:])
                for name, arr in zip(acc, arrays):
                    np.add(acc[name], arr, out=acc[name])
            weights = {n: a / clients for n, a in acc.items()}
            times.append(time.perf_counter() - start)
        cpu_per_round = (time.process_time() - cpu[1]) / rounds
        clients_cpu_per_round = (round_overhead.children_cpu(procs) - clients_cpu[0]) / rounds
    finally:  # a failure must not leave workers holding the caller's output pipe
        loop.call(lambda: [send_all(sock, [p, b""]) for p in peers])
        round_overhead.reap(procs)
    return {"seconds": times[1:], "cpu_per_round": cpu_per_round, "clients_cpu_per_round": clients_cpu_per_round}


def layout_worker(endpoint: str, layout: str) -> None:
    """A client of ``layout``: echo each task's model. With ``join``, a client of nbfl's
    controller: it joins, beats every second, and leaves when the controller says bye."""
    join = layout == BARE
    use_wire, inline = LAYOUTS["threads+wire" if join else layout]
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(endpoint)
    tasks: queue.SimpleQueue = queue.SimpleQueue()

    def answer(task: Any) -> list:  # the task: echo the model
        if not use_wire:
            return task
        result = wire.message("result", task.tensors, task_id=task.get("task_id"), kind="WEIGHTS", meta=RESULT_META)
        return wire.encode(result)

    def on_frames(frames: list) -> None:  # the IO thread: decode, then hand over, as nbfl's client does
        if len(frames) == 1 and not frames[0].bytes:  # the layout controller's bye
            tasks.put(None)
            return
        task: Any = wire.decode(frames) if use_wire else frames
        if join and task.kind != "task":
            if task.kind == "bye":
                tasks.put(None)
        elif inline:
            send_all(sock, answer(task))
        else:
            tasks.put(task)

    loop = Loop(sock, on_frames)
    loop.start()
    if join:
        loop.call(send_all, sock, wire.encode(wire.message("join", name=f"bare-{os.getpid()}", codecs=[])))

        def beat() -> None:  # nbfl's controller drops a client it has not heard from in 6 s
            while True:
                time.sleep(1)
                loop.call(send_all, sock, wire.encode(wire.message("heartbeat")))

        threading.Thread(target=beat, daemon=True).start()
    else:
        loop.call(send_all, sock, [b"hello"])
    while (task := tasks.get()) is not None:  # the worker thread
        loop.call(send_all, sock, answer(task))


def spawn(role: str, endpoint: str, layout: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, role, endpoint, layout])


def measure(system: str, params: int, clients: int, rounds: int) -> dict:
    """``{"seconds": [...], "cpu_per_round": s, "clients_cpu_per_round": s}`` of one run of ``system``
    in fresh processes."""
    if system in ("raw", "nbfl"):
        return round_overhead.measure(system, params, clients, rounds)
    return round_overhead.run_json(__file__, "layout-controller", str(params), str(clients), str(rounds), system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=0.01, help="millions of float32 parameters")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=300, help="timed rounds per run, after one warm-up round")
    parser.add_argument("--repeat", type=int, default=3, help="runs per system, interleaved")
    args = parser.parse_args()
    systems = ["raw", *LAYOUTS, BARE, "nbfl"]
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    for _ in range(args.repeat):  # interleaved, so drift on a shared machine hits all alike
        for system in systems:
            runs[system].append(measure(system, int(args.size * 1e6), args.clients, args.rounds))
    raw = statistics.median(s for r in runs["raw"] for s in r["seconds"])
    print(f"{args.size:g}M parameters, {args.clients} clients: median of {args.repeat} x {args.rounds} rounds each")
    print(f"{'':<34} {'':>8} {'':>6} {'CPU ms/round':^21} {'cores':>6}")
    print(f"{'system':<34} {'ms/round':>8} {'x raw':>6} {'controller':>10} {'clients':>10} {'busy':>6}")
    for system in systems:
        median = statistics.median(s for r in runs[system] for s in r["seconds"])
        cpu, clients = (
            statistics.median(r[k] for r in runs[system]) for k in ("cpu_per_round", "clients_cpu_per_round")
        )
        busy = statistics.median(
            (r["cpu_per_round"] + r["clients_cpu_per_round"]) / statistics.fmean(r["seconds"]) for r in runs[system]
        )
        print(
            f"{system:<34} {median * 1e3:>8.2f} {median / raw:>6.2f} {cpu * 1e3:>10.2f} {clients * 1e3:>10.2f} {busy:>6.2f}"
        )


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "layout-controller":
        params, clients, rounds, system = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        if system == BARE:
            found = round_overhead.nbfl_controller(
                params, clients, rounds, lambda ep, _: spawn("layout-worker", ep, BARE)
            )
        else:
            found = layout_controller(params, clients, rounds, system)
        print(json.dumps({k: found[k] for k in ("seconds", "cpu_per_round", "clients_cpu_per_round")}))
    elif role == "layout-worker":
        layout_worker(sys.argv[2], sys.argv[3])
    else:
        main()
