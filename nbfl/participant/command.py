"""The participant's command line: ``nbfl client`` and ``python -m nbfl.participant``.

Both take the same arguments and run :func:`run`: a client on the built-in digits
trainer that joins a controller (an address, a workshop's join code or a kit), trains
when asked and prints a line per round. ``python -m nbfl.participant`` is what
:mod:`nbfl.launch` starts (and what its warm template forks), so a launched client
needs nothing of the faces (:mod:`nbfl.cli`, :mod:`nbfl.notebook`).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import threading
from typing import Any, Sequence

from ..data import DATASETS, load_split, partition
from ..filters.he import HEDecrypt, HEEncrypt
from ..protocol.joining import JoinCode, Share, is_join_code
from ..transport.provision import load_kit
from .builtin import CHOICES, TRAINER_ENV, built_in_client, built_in_clients, choose
from .client import Client
from .host import Host
from .terminal import ParticipantLines

ENDPOINT = re.compile(r"^tcp://[^:/\s]+:(\d{1,5})$")
HELP = "join a controller and train on a share of digits"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nbfl.participant ARGS``: the same as ``nbfl client ARGS``."""
    parser = argparse.ArgumentParser(prog="nbfl client", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    check(parser, args)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(args)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "endpoint",
        type=endpoint,
        nargs="?",
        help="a workshop's join code nbfl://..., or tcp://HOST:PORT (default: the kit's)",
    )
    p.add_argument(
        "--name", nargs="+", help="how the controller lists this client, spaces allowed (with a kit: the kit's name)"
    )
    security_args(p, "client")
    p.add_argument(
        "--index",
        type=int,
        help="this client's share: 0 .. num-clients - 1, one each (default: a workshop assigns it, else 0)",
    )
    p.add_argument("--num-clients", type=positive, default=1, help="how many shares; the same on every client")
    p.add_argument(
        "--clients",
        type=positive,
        default=1,
        help="simulate this many clients in this one process, with shares --index, --index + 1, ... "
        "named NAME-(share + 1) (nbfl.participant.host)",
    )
    p.add_argument(
        "--names-file",
        help="simulate clients with these names, one a line (as many as there are lines), instead of --name and "
        "--clients: what spawn_clients(..., per_process=K) writes",
    )
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the controller's welcome")
    p.add_argument(
        "--accept-code", action="store_true", help="run task code the controller sends (%%%%fl_task) on this data"
    )
    p.add_argument("--exit-with-parent", action="store_true", help="leave when the process that started this one ends")
    p.add_argument(
        "--device", help="where the built-in trainer trains: cpu, cuda, cuda:1 (default: cuda:0 if there is a GPU)"
    )
    p.add_argument(
        "--trainer",
        choices=CHOICES,
        help=f"the built-in trainer's backend (default: ${TRAINER_ENV}, else auto: torch if installed, else numpy)",
    )
    data_args(p)


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse what cannot work before anything starts; ``--name Grace Hopper``, unquoted, is one name."""
    check_partition(parser, args, args.num_clients)
    if args.index is not None and not 0 <= args.index < args.num_clients:
        parser.error(f"--index must be between 0 and {args.num_clients - 1} (--num-clients {args.num_clients})")
    args.name = " ".join(args.name) if args.name else None
    args.names = None
    if args.names_file is not None:
        try:
            args.names = [line.strip() for line in open(args.names_file, encoding="utf-8") if line.strip()]
        except OSError as exc:
            parser.error(f"--names-file: {exc}")
        args.clients = len(args.names)
    if args.names is not None or args.clients > 1:
        check_host(parser, args)
    elif args.kit is None and (args.endpoint is None or args.name is None):
        parser.error("a client needs ENDPOINT and --name, or --kit DIR")


def check_host(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A host of many clients: each has a share of the command line's and a name of its own."""
    if args.kit is not None or is_join_code(args.endpoint):
        parser.error("--clients simulates clients on shares given here: not with a kit or a join line")
    if args.endpoint is None or (args.name is None and args.names is None):
        parser.error("--clients needs ENDPOINT and --name (their names' stem) or --names-file")
    first = args.index or 0
    if first + args.clients > args.num_clients:
        parser.error(f"--index {first} and --clients {args.clients} run past --num-clients {args.num_clients}")
    if args.names is None:
        args.names = [f"{args.name}-{first + j + 1}" for j in range(args.clients)]


def security_args(p: argparse.ArgumentParser, role: str) -> None:
    p.add_argument("--kit", help=f"this {role}'s startup kit folder (nbfl provision): CurveZMQ")
    p.add_argument(
        "--insecure", action="store_true", help="allow plaintext on a non-loopback address (a network you trust)"
    )


def data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default="digits",
        choices=DATASETS,
        help="the 1,797 digits, or a generated problem of the same shape sized for --num-clients",
    )
    p.add_argument(
        "--partition", default="dirichlet:0.5", help="iid, dirichlet:ALPHA, shards:N, classes:K or quantity:BETA"
    )
    p.add_argument("--seed", type=int, default=0, help="the split; the same on every process")
    p.add_argument("--epochs", type=positive, default=2, help="local epochs per round")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def endpoint(text: str) -> str:
    if is_join_code(text):
        try:
            JoinCode.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    match = ENDPOINT.match(text)
    if not match or not 0 < int(match.group(1)) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not tcp://HOST:PORT with a port from 1 to 65535")
    return text


def check_partition(parser: argparse.ArgumentParser, args: argparse.Namespace, clients: int) -> None:
    """Refuse a bad --partition into ``clients`` shares here, before any process is started with it."""
    try:
        partition(args.partition, load_split(args.data, clients, args.seed)[1], clients, args.seed)
    except ValueError as exc:
        parser.error(f"--partition {args.partition}: {exc}")


def run(args: argparse.Namespace) -> int:
    """Join, train when asked, and print a line per share, round and error until the controller says bye."""
    if args.names is not None:  # check_host made the names of a host's clients
        return run_host(args)
    assigned = args.index is None and is_join_code(args.endpoint)  # the workshop's controller assigns the share
    share = None if assigned else Share(args.index or 0, args.num_clients, args.partition, args.seed)
    lines = ParticipantLines()  # a line per share, round and error: a terminal has no status to update
    try:
        trainer = choose(args.trainer)
        # one thread: many clients share few cores in demos
        local = built_in_client(share, args.epochs, args.device, trainer, single_thread=True, data=args.data)
        client = Client(
            args.endpoint,
            args.name,
            kit=args.kit,
            insecure=args.insecure,
            accept_code=args.accept_code,
            on_update=lines,
            **local,
            **_he_filters(args.kit),
        )
    except ValueError as exc:  # no such trainer or device, plaintext off loopback, a bad kit or join code
        print(f"nbfl client: {exc}", file=sys.stderr)
        return 1
    if not _started(client, args):
        return 1
    lines.joined(f"joined {client.endpoint} as {client.name}; training with {trainer} when the controller asks")
    try:
        while not client.wait(0.5):  # short waits keep Ctrl-C prompt
            pass
    except KeyboardInterrupt:
        client.stop()
    print(lines.exit_line(client), flush=True)
    return 0


def run_host(args: argparse.Namespace) -> int:
    """``--clients K``: K logical clients in this process (:class:`~nbfl.participant.host.Host`),
    with a line when they have joined and one when they have left: a line per client and
    round would drown the log."""
    first = args.index or 0
    shares = [Share(first + j, args.num_clients, args.partition, args.seed) for j in range(args.clients)]
    try:
        trainer = choose(args.trainer)
        local = built_in_clients(shares, args.epochs, args.device, trainer, single_thread=True, data=args.data)
        host = Host(args.endpoint, args.names, local.__getitem__, insecure=args.insecure, accept_code=args.accept_code)
    except ValueError as exc:
        print(f"nbfl client: {exc}", file=sys.stderr)
        return 1
    if not _started(host, args):
        return 1
    print(f"{len(host.joined)} of {args.clients} clients joined {args.endpoint} in process {os.getpid()}", flush=True)
    try:
        while not host.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    host.stop()
    done = sum(c.rounds_done for c in host.clients)
    print(f"{args.clients} clients left; {done} tasks done", flush=True)
    return 0


def _started(party: Client | Host, args: argparse.Namespace) -> bool:
    """Start a client or a host (leaving with the parent process if asked); False, said on
    stderr, if it could not join."""
    if args.exit_with_parent:
        _watch_parent(party)
    try:
        party.start(wait=args.wait)
    except ConnectionError as exc:
        print(f"nbfl client: {exc}", file=sys.stderr)
        return False
    return True


def _he_filters(kit: Any) -> dict[str, Any]:
    """A ``he = true`` kit's client encrypts what it sends and decrypts what it gets."""
    context = load_kit(kit).he_context() if kit is not None else None
    if context is None:
        return {}
    return {"filters": [HEEncrypt(context)], "task_filters": [HEDecrypt(context)]}


def _watch_parent(client: Client | Host) -> None:
    """Spawned clients leave with the kernel that spawned them, even if it was killed."""
    parent = os.getppid()

    def watch() -> None:
        while not client.wait(1.0):
            if os.getppid() != parent:
                client.stop()

    threading.Thread(target=watch, name="nbfl-parent-watch", daemon=True).start()
