"""``nbfl controller | client | demo``: the engine from a terminal.

``nbfl demo --clients 4 --rounds 10`` starts a controller in this process and four
client processes on 127.0.0.1, each holding its own Dirichlet share of digits, and
prints the global model's accuracy after every FedAvg round.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbfl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="controller + local client processes doing FedAvg on digits")
    demo.add_argument("--clients", type=int, default=4)
    _round_args(demo)
    _data_args(demo)

    ctl = sub.add_parser("controller", help="run a controller for the digits model and wait for clients")
    ctl.add_argument("--host", default="127.0.0.1")
    ctl.add_argument("--port", type=int, default=5555)
    ctl.add_argument("--min-clients", type=int, default=2)
    _round_args(ctl)

    cli = sub.add_parser("client", help="join a controller and train on a share of digits")
    cli.add_argument("endpoint", help="e.g. tcp://127.0.0.1:5555")
    cli.add_argument("--name", required=True)
    cli.add_argument("--index", type=int, default=0, help="which share of the partition is this client's")
    cli.add_argument("--num-clients", type=int, default=1)
    cli.add_argument(
        "--accept-code", action="store_true", help="run task code the controller sends (%%%%fl_task) on this data"
    )
    cli.add_argument("--exit-with-parent", action="store_true", help="leave when the process that started this one ends")
    _data_args(cli)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "client":
        return _client(args)
    if args.command == "controller":
        return _controller(args, f"tcp://{args.host}:{args.port}", spawn=0)
    return _controller(args, "tcp://127.0.0.1:0", spawn=args.clients)


def _round_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a round waits for results")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="digits", choices=["digits"])
    p.add_argument("--partition", default="dirichlet:0.5", help="iid, dirichlet:ALPHA or shards:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2, help="local epochs per round")


def _controller(args: argparse.Namespace, endpoint: str, spawn: int) -> int:
    import torch

    from .controller import Controller
    from .data import load_digits_split
    from .models import DigitsMLP
    from .spawn import spawn_clients, stop_clients
    from .trainers import evaluator

    torch.manual_seed(args.seed)
    _, _, x_test, y_test = load_digits_split(seed=args.seed)
    model = DigitsMLP()
    procs = []
    with Controller(endpoint, model, evaluate=evaluator(model, x_test, y_test)) as controller:
        print(f"controller at {controller.endpoint}", flush=True)
        if spawn:
            procs = spawn_clients(
                controller.endpoint, spawn, partition=args.partition, seed=args.seed, epochs=args.epochs
            )
        need = spawn or args.min_clients
        controller.wait_for_clients(need, timeout=120)
        print(f"{need} clients joined: {', '.join(c.name for c in controller.live_clients())}", flush=True)
        print(f"{'round':>5} {'accuracy':>9} {'loss':>7} {'clients':>7} {'seconds':>8}", flush=True)
        controller.run(args.rounds, min_clients=need, timeout=args.timeout, on_round=_print_round)
    stop_clients(procs)
    final = controller.history[-1]["global"].get("accuracy") if controller.history else None
    print(f"final accuracy {final:.4f}" if final is not None else "no round completed", flush=True)
    return 0 if final is not None else 1


def _print_round(record: dict) -> None:
    g = record["global"]
    line = f"{record['round']:>5} {g.get('accuracy', float('nan')):>9.4f} {g.get('loss', float('nan')):>7.4f}"
    line += f" {len(record['clients']):>7} {record['seconds']:>8.2f}"
    if record["failed"]:
        line += "  failed: " + ", ".join(f"{k} ({v.splitlines()[0]})" for k, v in record["failed"].items())
    print(line, flush=True)


def _client(args: argparse.Namespace) -> int:
    import torch

    from .client import Client
    from .data import load_digits_split, partition
    from .models import DigitsMLP
    from .trainers import ArrayTrainer

    torch.manual_seed(args.seed + args.index)
    torch.set_num_threads(1)  # many clients share few cores in demos
    x, y, _, _ = load_digits_split(seed=args.seed)
    part = partition(args.partition, y, args.num_clients, args.seed)[args.index]
    trainer = ArrayTrainer(DigitsMLP(), x[part], y[part], epochs=args.epochs, seed=args.seed + args.index)
    client = Client(
        args.endpoint, args.name, trainer, data=(x[part], y[part]), samples=trainer.samples,
        device=trainer.device, accept_code=args.accept_code,
    )  # fmt: skip
    if args.exit_with_parent:
        _watch_parent(client)
    try:
        client.run()
    except KeyboardInterrupt:
        client.stop()
    return 0


def _watch_parent(client) -> None:  # type: ignore[no-untyped-def]
    """Spawned clients leave with the kernel that spawned them, even if it was killed."""
    import os
    import threading

    parent = os.getppid()

    def watch() -> None:
        while not client.wait(1.0):
            if os.getppid() != parent:
                client.stop()

    threading.Thread(target=watch, name="nbfl-parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
