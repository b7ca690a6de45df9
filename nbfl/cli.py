"""``nbfl controller | client | demo | provision``: the engine from a terminal.

``nbfl demo --clients 4 --rounds 10`` starts a controller in this process and four
client processes on 127.0.0.1, each holding its own Dirichlet share of digits, and
prints the global model's accuracy after every FedAvg round. ``nbfl provision
PROJECT.toml --out DIR`` writes startup kits; ``--kit DIR`` then makes the controller
and clients use CurveZMQ (encrypted, only the project's clients admitted).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Sequence

from .controller.settings import add_arguments, from_arguments
from .data import DATASETS
from .participant import command as client_command
from .participant.command import data_args, positive, security_args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "client":
        client_command.check(parser, args)
    elif args.command != "provision":
        client_command.check_partition(parser, args, args.clients if args.command == "demo" else args.capacity)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "provision":
        return _provision(args)
    if args.command == "client":
        return client_command.run(args)
    if args.command == "controller":
        if args.workshop and args.kit is not None:
            parser.error("--workshop makes its own keys and join line; it does not take --kit")
        if args.workshop and args.data != "digits":
            parser.error("--workshop shares out the digits: participants' clients train on them")
        return _controller(args, _controller_endpoint(parser, args), spawn=0)
    from .transport.threads import is_loopback

    if args.dask and not is_loopback(args.dask, connect=True):  # remote workers: CurveZMQ, a join line
        return _controller(args, "tcp://0.0.0.0:0", spawn=args.clients, workshop=True)
    return _controller(args, "tcp://127.0.0.1:0", spawn=args.clients)


def build_parser() -> argparse.ArgumentParser:
    """The ``nbfl`` command line: its subcommands and their arguments."""
    parser = argparse.ArgumentParser(prog="nbfl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="controller + local client processes doing FedAvg on digits")
    demo.add_argument("--clients", type=positive, default=4)
    demo.add_argument(
        "--dask",
        metavar="SCHEDULER",
        help="run the clients on this Dask cluster (tcp://HOST:8786) instead of local processes; off "
        "this machine they join with a workshop's join line",
    )
    _round_args(demo)
    data_args(demo)

    prov = sub.add_parser("provision", help="write a startup kit (CurveZMQ keys) for the controller and each client")
    prov.add_argument("project", help="the project file (TOML): name, host, port, clients, optionally he = true")
    prov.add_argument("--out", required=True, help="folder for the kits: OUT/controller, OUT/<client> ...")

    ctl = sub.add_parser("controller", help="run a controller for the digits model and wait for clients")
    ctl.add_argument(
        "--host",
        help="address to bind (default: the kit's host, else 127.0.0.1); with --workshop, the "
        "address put in the join line (default: the LAN address; it listens on all)",
    )
    ctl.add_argument("--port", type=int, help="0 picks a free one (printed); default: the kit's port, else 5555")
    security_args(ctl, "controller")
    ctl.add_argument(
        "--workshop",
        action="store_true",
        help="walk-in participants: CurveZMQ, one join line to paste (address, key, token), no kits",
    )
    ctl.add_argument("--capacity", type=positive, default=30, help="workshop: participants at most, and data shares")
    ctl.add_argument("--partition", default="dirichlet:0.5", help="workshop: how the digits are shared out")
    ctl.add_argument("--checkpoint-dir", help="write a checkpoint (model, workflow state, history) after every round")
    ctl.add_argument("--resume", help="continue from the last whole checkpoint in this folder (and keep writing there)")
    ctl.add_argument("--join-wait", type=float, default=600.0, help="seconds to wait for --min-clients to join")
    ctl.add_argument("--min-clients", type=positive, default=2, help="clients to wait for, and results a round needs")
    ctl.add_argument("--seed", type=int, default=0, help="the test split (clients must use the same)")
    ctl.add_argument(
        "--data",
        default="digits",
        choices=DATASETS,
        help="what the model is evaluated on: the digits, or the generated problem (clients: --data synthetic)",
    )
    _round_args(ctl)

    client_command.add_arguments(sub.add_parser("client", help=client_command.HELP))
    return parser


def _controller_endpoint(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """``--host``/``--port`` win; the kit's endpoint fills what they leave out. A workshop
    listens on every interface and puts the LAN address (or ``--host``: a tunnel's or a
    NAT's address) in its join line."""
    port = 5555 if args.port is None else args.port
    if args.workshop:
        return f"tcp://0.0.0.0:{port}"
    if args.kit is None:
        return f"tcp://{args.host or '127.0.0.1'}:{port}"
    from .transport.provision import ProvisionError, load_kit

    try:
        args.kit = load_kit(args.kit)
    except ProvisionError as exc:
        parser.error(f"--kit: {exc}")
    return args.kit.endpoint_with(args.host, args.port)


def _provision(args: argparse.Namespace) -> int:
    from .transport.provision import ProvisionError, provision

    try:
        folders = provision(args.project, args.out)
    except ProvisionError as exc:
        print(f"nbfl provision: {exc}", file=sys.stderr)
        return 1
    clients = [name for name in folders if name != "controller"]
    for name, folder in folders.items():
        if name == "controller":
            run = f"nbfl controller --kit {folder} --min-clients {len(clients)}"
        else:  # the built-in digits trainer: each client its own share
            run = f"nbfl client --kit {folder} --index {clients.index(name)} --num-clients {len(clients)}"
        print(f"{name:>12}: {folder}    {run}", flush=True)
    print("give each party its own folder only (it holds that party's secret key)", flush=True)
    return 0


RUN_HELP = {  # the run settings' help, with the CLI's defaults
    "timeout": "seconds a round waits for results (default: 120)",
    "compress": "the model and the updates on the wire (default: none; with --workshop, int8)",
}


def _round_args(p: argparse.ArgumentParser) -> None:
    from .workflows import ALGORITHMS

    p.add_argument("--rounds", type=positive, default=10)
    p.add_argument("--algorithm", default="fedavg", choices=sorted(ALGORITHMS))
    add_arguments(p.add_argument, help=RUN_HELP, skip=("min_clients",))  # the controller's --min-clients waits too


def _controller(args: argparse.Namespace, endpoint: str, spawn: int, workshop: bool = False) -> int:
    from .controller.controller import Controller
    from .launch.spawn import spawn_clients, stop_clients
    from .participant.builtin import digits_model
    from .workflows import make_workflow

    try:
        model, evaluate_digits = digits_model(args.seed, data=args.data)
    except ValueError as exc:  # $NBFL_TRAINER names no backend, or one that does not import
        print(f"nbfl controller: {exc}", file=sys.stderr)
        return 1
    procs: list = []
    on_dask = None
    need = spawn or args.min_clients
    try:
        settings = from_arguments(args, min_clients=need, timeout=120.0)
    except ValueError as exc:  # a --filter that is not NAME:KEY=VALUE,...
        print(f"nbfl controller: {exc}", file=sys.stderr)
        return 2
    kit, insecure = getattr(args, "kit", None), getattr(args, "insecure", False)
    he_context = kit.he_context() if kit is not None else None
    # under HE the controller holds ciphertexts: it cannot evaluate, the clients report
    evaluate = None if he_context is not None else evaluate_digits
    room = None
    if workshop or getattr(args, "workshop", False):
        from .controller.workshop import Workshop

        room = Workshop(getattr(args, "capacity", spawn), args.partition, args.seed, host=getattr(args, "host", None))
    try:
        controller = Controller(
            endpoint,
            model,
            kit=kit,
            workshop=room,
            insecure=insecure,
            evaluate=evaluate,
            compress=args.compress,
            checkpoint_dir=getattr(args, "checkpoint_dir", None),
            resume=getattr(args, "resume", None),
        )
    except ValueError as exc:  # plaintext off loopback, a bad kit, an address in use, no usable checkpoint
        print(f"nbfl controller: {exc}", file=sys.stderr)
        return 1
    with controller:
        print(f"controller at {controller.endpoint}", flush=True)
        if controller.resumed is not None:
            for damaged in controller.resumed.skipped:
                print(f"skipped a damaged checkpoint: {damaged}", flush=True)
            print(f"resumed from {controller.resumed.path}: {controller.resumed.round} rounds done", flush=True)
        if not spawn:  # a deployment, not the loopback demo: say how connections are protected
            print(controller.security, flush=True)
        where = str(controller.join_code) if controller.join_code is not None else controller.endpoint
        if spawn and getattr(args, "dask", None):
            from .launch.on_dask import spawn_on_dask

            on_dask = spawn_on_dask(
                args.dask,
                spawn,
                endpoint=where,
                partition=args.partition,
                seed=args.seed,
                epochs=args.epochs,
                data=args.data,
            )
            print(
                f"{spawn} clients on the Dask cluster at {args.dask}: {', '.join(sorted(set(on_dask.placement.values())))}"
            )
        elif spawn:
            procs = spawn_clients(
                where, spawn, data=args.data, partition=args.partition, seed=args.seed, epochs=args.epochs
            )
        elif controller.join_code is not None:
            print(
                f"waiting for {need} participant{'s' if need != 1 else ''}; each pastes into a notebook "
                f"(after %load_ext nbfl):\n"
                f"  %fl_join {controller.join_code} --name YOUR_NAME --accept-code\n"
                f"or runs: nbfl client {controller.join_code} --name YOUR_NAME",
                flush=True,
            )
        else:
            how = "--kit KIT_DIR" if kit is not None else f"{controller.endpoint} --name NAME"
            print(f"waiting for {need} clients: nbfl client {how} --index I --num-clients N", flush=True)
        if not _wait_for_clients(controller, need, procs, getattr(args, "join_wait", 120.0)):
            stop_clients(procs)
            if on_dask is not None:
                on_dask.release()
            return 1
        print(f"{need} clients joined: {', '.join(c.name for c in controller.live_clients())}", flush=True)
        workflow = make_workflow(args.algorithm)
        if he_context is not None:
            workflow = make_workflow("he_fedavg")  # with the kit's public context
            print("homomorphic encryption: this controller cannot read the model; accuracy is the clients' own")
        print(f"{'round':>5} {'accuracy':>9} {'loss':>7} {'clients':>7} {'seconds':>8}  ({workflow.name})", flush=True)
        rounds = args.rounds - len(controller.history)  # after a resume, the rest of them
        try:
            if rounds > 0:
                controller.run(rounds, workflow, settings, on_round=_print_round)
        except TimeoutError as exc:  # too few clients left, and none came back
            print(f"stopped: {exc}", flush=True)
        except KeyboardInterrupt:
            print("stopped: clients were told to abort; the global model is the last complete round's", flush=True)
    stop_clients(procs)
    if on_dask is not None:  # the controller said goodbye: their tasks end, the workers are free
        on_dask.release()
    done = [r for r in controller.history if r.ok]
    if not done:
        print("no round completed", flush=True)
        return 1
    accuracy = _accuracy(done[-1])
    print(f"{len(done)} rounds completed; final accuracy {accuracy:.4f}", flush=True)
    return 0


def _wait_for_clients(controller: Any, need: int, procs: list, timeout: float = 120.0) -> bool:
    """Wait for ``need`` clients; give up early, saying why, if a spawned one died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.poll() not in (None, 0)]
        if dead:
            print(
                f"{len(dead)} client process(es) failed at start (exit {dead[0].returncode}); "
                f"{dead[0].log} ends:\n{dead[0].tail()}",
                flush=True,
            )
            return False
        try:
            controller.wait_for_clients(need, timeout=1.0)
            return True
        except TimeoutError:
            continue
    print(f"{len(controller.live_clients())} of {need} clients joined within {timeout:.0f} s", flush=True)
    return False


def _accuracy(record: Any) -> float:
    """The global model's accuracy, or (under HE) the mean of the clients' own on their data;
    NaN for a round that did not update the model."""
    if not record.ok:
        return float("nan")
    if "accuracy" in record.metrics:
        return record.metrics["accuracy"]
    local = [m["local_accuracy"] for m in record.clients.values() if "local_accuracy" in m]
    return sum(local) / len(local) if local else float("nan")


def _print_round(record: Any) -> None:
    line = f"{record.round:>5} {_accuracy(record):>9.4f} {record.metrics.get('loss', float('nan')):>7.4f}"
    line += f" {len(record.clients):>7} {record.seconds:>8.2f}"
    if record.failed:
        line += f"  {record.outcome}: " + ", ".join(
            f"{k} ({v.strip().splitlines()[-1]})" for k, v in record.failed.items()
        )
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
