"""How long a stop takes to reach every client: from ``Run.stop()`` to the last client's
acknowledgement that it stopped its task, with the built-in trainer.

A controller in this process and ``--clients`` client processes (``nbfl client``, the
built-in digits trainer with many local epochs, so a round trains for many seconds).
Each trial starts a round, waits until every client is training and a moment more, then
stops the run and times, on the controller's clock, until each client's ``aborted``
message has arrived. The trainer checks the abort signal before every batch, so a
client stops within one batch (plus the messages' way there and back).

The baseline, measured in the same run: one batch of the same trainer here, about the
most a client can take to notice the signal (it finishes the batch it is in).

    python benchmarks/abort.py                  # 4 clients, 7 trials
    python benchmarks/abort.py --clients 8 --trials 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import nbfl
from nbfl.data import load_digits_split
from nbfl.launch.spawn import spawn_clients, stop_clients
from nbfl.participant.executor import Signal
from nbfl.participant.models import DigitsMLP
from nbfl.participant.trainers import ArrayTrainer


def batch_seconds(repeats: int = 200) -> float:
    """The median time of one training batch of the built-in trainer (32 digits), here."""
    torch.set_num_threads(1)
    x, y, _, _ = load_digits_split()
    trainer = ArrayTrainer(DigitsMLP(), x[: 32 * repeats], y[: 32 * repeats], epochs=1)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        steps, _ = trainer.train(Signal())
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def trial(ctl: nbfl.Controller, clients: int) -> float:
    """Seconds from stop() to the last client's acknowledgement."""
    run = ctl.start(1, timeout=3600)
    deadline = time.monotonic() + 300
    while sum(c.state == "training" for c in ctl.clients) < clients:
        if time.monotonic() > deadline:
            raise RuntimeError(f"clients never all trained: {[(c.name, c.state) for c in ctl.clients]}")
        time.sleep(0.01)
    time.sleep(0.5)  # well into the local epochs
    stopped = time.monotonic()
    run.stop()
    run.wait(60)
    while True:
        acks = [c.aborted_at for c in ctl.clients]
        if all(a is not None and a >= stopped for a in acks):
            return max(acks) - stopped
        if time.monotonic() - stopped > 60:
            raise RuntimeError("not every client acknowledged the abort within 60 s")
        time.sleep(0.001)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--trials", type=int, default=7)
    args = parser.parse_args()

    batch = batch_seconds()
    torch.manual_seed(0)
    ctl = nbfl.Controller("tcp://127.0.0.1:0", DigitsMLP())
    procs = spawn_clients(ctl.endpoint, args.clients, epochs=10_000)  # a round that would train for minutes
    try:
        ctl.wait_for_clients(args.clients, timeout=300)
        times = [trial(ctl, args.clients) for _ in range(args.trials)]
    finally:
        ctl.close()
        stop_clients(procs)
    median, worst = statistics.median(times), max(times)
    print(f"{args.clients} clients (separate processes, built-in digits trainer), {args.trials} trials")
    print(f"{'':>34} {'seconds':>9} {'ratio to a batch':>17}")
    print(f"{'one training batch (baseline)':>34} {batch:>9.4f} {1.0:>17.1f}")
    print(f"{'stop -> last acknowledgement, median':>34} {median:>9.4f} {median / batch:>17.1f}")
    print(f"{'stop -> last acknowledgement, worst':>34} {worst:>9.4f} {worst / batch:>17.1f}")
    print(f"trials: {', '.join(f'{t:.3f}' for t in times)}")
    target = 1.0
    print(f"target: under {target} s -> {'met' if worst < target else 'NOT met'}")
    return 0 if worst < target else 1


if __name__ == "__main__":
    sys.exit(main())
