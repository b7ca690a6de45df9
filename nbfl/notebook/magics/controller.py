"""``%fl_controller``, ``%fl_spawn`` and ``%%fl_task``: the controller this notebook runs, the
clients it starts on this machine or a Dask cluster, and the task code it sends them."""

from __future__ import annotations

import html
import socket
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ...controller.controller import Controller
from ...controller.workshop import Workshop
from ...data import DATASETS
from ...launch.spawn import spawn_clients
from ...protocol.compress import CODECS
from ...transport.provision import load_kit
from ..dashboard import (
    LivePart,
    clients_html,
    join_html,
    security_html,
)
from ..text import Html
from .session import TopicMagics


@magics_class
class ControllerMagics(TopicMagics):
    """Start, stop and show this notebook's controller; start clients for it; define tasks."""

    @magic_arguments()
    @argument(
        "action",
        choices=["start", "stop", "status", "wait", "rotate", "remove"],
        help="start, stop or show the controller; wait N: until N clients joined, showing who has; "
        "in a workshop, rotate the join token or remove NAME",
    )
    @argument("name", nargs="?", help="remove: the participant to disconnect and keep out; wait: how many clients")
    @argument(
        "--host",
        help="address to bind (default: the kit's host, else 127.0.0.1); in a workshop, the address "
        "put in the join line (default: this machine's LAN address; it listens on all of them)",
    )
    @argument("--port", type=int, help="0 picks a free port (default: the kit's port, else 0)")
    @argument("--kit", help="the controller's startup kit folder (nbfl provision): CurveZMQ, only its clients admitted")
    @argument(
        "--workshop",
        action="store_true",
        help="walk-in participants: CurveZMQ with a join line to paste (address, key, token); no kits",
    )
    @argument("--capacity", type=int, default=30, help="workshop: participants at most, and data shares")
    @argument("--partition", default="dirichlet:0.5", help="workshop: how the built-in data is shared out")
    @argument("--token-hours", type=float, default=12.0, help="workshop: how long the join line admits newcomers")
    @argument(
        "--compress",
        choices=["none", *CODECS],
        help="the model and the updates on the wire, in runs that do not choose (default: none; a workshop's int8)",
    )
    @argument("--insecure", action="store_true", help="allow plaintext on a non-loopback --host (a trusted network)")
    @argument("--checkpoint-dir", help="write a checkpoint (model, workflow state, history) after every round")
    @argument("--resume", help="continue from the last whole checkpoint in this folder (and keep writing there)")
    @argument("--model", help="name of a torch module or dict of arrays in this notebook (default: digits MLP)")
    @argument("--evaluate", help="name of a function weights -> {'accuracy': ...} (default: --data's test split)")
    @argument(
        "--data",
        default="digits",
        choices=DATASETS,
        help="the built-in model's test data: the digits, or the generated problem %%fl_spawn --data synthetic trains on",
    )
    @argument("--min-clients", type=int, default=1, help="results a round needs to update the model")
    @argument("--timeout", type=float, default=300.0, help="seconds a round waits for results")
    @line_magic
    def fl_controller(self, line: str) -> None:
        """Start, stop or show the controller this notebook runs."""
        args = parse_argstring(self.fl_controller, line)
        if args.action == "start":
            self._start_controller(args)
        elif args.action in ("rotate", "remove"):
            self._admit(args)
        elif args.action == "wait":
            self._wait_for_room(args)
        elif args.action == "stop":
            going = self.session.controller is not None and self.session.controller.active_run is not None
            self.session.stop_all()
            run = f" (its run {html.escape(self.session.run.summary())})" if going and self.session.run else ""
            display(Html(f"controller stopped{run}; its clients were told goodbye"))
        else:
            self.session.board_for(self.session.require_controller()).show(
                controls=False
            )  # with the join line, in a workshop

    def _wait_for_room(self, args: Any) -> None:
        """``wait N``: block until N clients are connected, the line saying who has joined
        as they join; Ctrl-C (the stop button) stops waiting. A workshop whose shares are
        mostly empty is then told why its accuracy will stay low."""
        if not (args.name or "").isdigit():
            raise UsageError("usage: %fl_controller wait N (the number of clients to wait for), e.g. wait 30")
        ctl, need = self.session.require_controller(), int(args.name)
        shown = _room_text(ctl, need)
        line = self.session.room_line = LivePart(
            Html(shown), widget=False
        )  # the cell runs meanwhile: its updates arrive
        try:
            while True:  # short waits on the registry: the line follows arrivals and departures
                try:
                    ctl.wait_for_clients(need, timeout=0.5)
                    break
                except TimeoutError:
                    if (text := _room_text(ctl, need)) != shown:
                        line.set(Html(text))  # in a terminal, printed anew
                        shown = text
        except KeyboardInterrupt:
            pass
        line.set(Html(_room_text(ctl, need, done=True)))
        if ctl.workshop is not None and len(ctl.live_clients()) < ctl.workshop.capacity:
            joined = len(ctl.live_clients())
            display(
                Html(
                    f"<span style='color:#a60'>{joined} of {ctl.workshop.capacity} shares are taken: the model "
                    f"trains on about {joined / ctl.workshop.capacity:.0%} of the digits, so its accuracy stays "
                    "low until more join (for a dry run with a few laptops, start with --capacity "
                    f"{max(joined, 1)})</span>"
                )
            )

    def _admit(self, args: Any) -> None:
        """``rotate``: a new join line; ``remove NAME``: disconnect a participant and keep them out."""
        ctl = self.session.require_controller()
        if args.action == "remove":
            if not args.name:
                raise UsageError("usage: %fl_controller remove NAME")
            try:
                ctl.remove(args.name)
            except KeyError as exc:
                raise UsageError(str(exc.args[0])) from None
            display(Html(f"removed {html.escape(args.name)}: it cannot join again"))
        elif ctl.workshop is None:
            raise UsageError("only a workshop has a join token to rotate: %fl_controller start --workshop")
        else:
            ctl.workshop.rotate(args.token_hours * 3600)
        if ctl.join_code is not None:
            display(Html("the old join line no longer admits newcomers; the new one:<br>" + join_html(ctl.join_code)))

    def _start_controller(self, args: Any) -> None:
        if self.session.controller is not None:
            raise UsageError(
                f"a controller already runs at {self.session.controller.endpoint}; %fl_controller stop first"
            )
        weights, evaluate = self._model(args.model, args.evaluate, args.data)
        kit = workshop = None
        endpoint = f"tcp://{args.host or '127.0.0.1'}:{args.port or 0}"
        try:
            if args.kit is not None:
                kit = load_kit(args.kit)
                endpoint = kit.endpoint_with(args.host, args.port)
            elif args.workshop:
                workshop = Workshop(args.capacity, args.partition, token_ttl=args.token_hours * 3600, host=args.host)
                endpoint = f"tcp://0.0.0.0:{args.port or 0}"  # the line may name a tunnel's or a NAT's address
            self.session.controller = Controller(
                endpoint,
                weights,
                kit=kit,
                workshop=workshop,
                insecure=args.insecure,
                evaluate=evaluate,
                checkpoint_dir=args.checkpoint_dir,
                resume=args.resume,
                compress=args.compress,
            )
        except ValueError as exc:  # plaintext off loopback, a bad kit or workshop setting
            raise UsageError(str(exc)) from None
        self.session.controller.task_code.update(self.session.task_code)
        self.shell.user_ns["nbfl_controller"] = self.session.controller  # the Python API, for what magics do not cover
        self.session.min_clients = args.min_clients
        self.session.round_timeout = args.timeout
        endpoint = self.session.controller.endpoint
        if self.session.controller.join_code is not None:
            how = join_html(self.session.controller.join_code)
        else:
            join = endpoint.replace("0.0.0.0", socket.gethostname())
            how = "--kit YOUR_KIT_FOLDER" if kit is not None else f"{html.escape(join)} --name YOUR_NAME"
            how = f"<code>%fl_join {how}</code><br>"  # the join line's own block ends its line
        resumed = self.session.controller.resumed
        if resumed is not None:
            damaged = "".join(f"<br>skipped a damaged checkpoint: {html.escape(d)}" for d in resumed.skipped)
            display(Html(f"resumed from {html.escape(str(resumed.path))}: {resumed.round} rounds done{damaged}"))
            if resumed.spawned:  # they were children of the old kernel: nothing else tells the instructor
                sites, n = html.escape(", ".join(resumed.spawned)), len(resumed.spawned)
                display(
                    Html(
                        f"The local sites {sites} ended with the previous controller: "
                        f"<code>%fl_spawn {n}</code> starts them again under the same names."
                    )
                )
        display(
            Html(
                f"<b>controller listening on {html.escape(endpoint)}</b><br>"
                f"participants join from their notebook (after <code>%load_ext nbfl</code>) with:<br>{how}"
                f"{security_html(self.session.controller.security)}"
            )
        )

    def _model(self, model_name: str | None, evaluate_name: str | None, data: str) -> tuple[Any, Any]:
        ns = self.shell.user_ns
        for name in (model_name, evaluate_name):
            if name is not None and name not in ns:
                raise UsageError(f"no variable {name!r} in this notebook")
        if model_name is not None:
            return ns[model_name], ns.get(evaluate_name) if evaluate_name else None
        from ...participant.builtin import digits_model

        # numpy's: the controller never trains, and a kernel that imports no torch stays ~200 MiB
        # smaller (on Binder every kernel a learner leaves running counts against one pod)
        weights, evaluate = digits_model(trainer="numpy", data=data)
        return weights, ns[evaluate_name] if evaluate_name else evaluate

    @magic_arguments()
    @argument("n", type=int, help="how many clients")
    @argument(
        "--data",
        default="digits",
        choices=DATASETS,
        help="the 1,797 digits, or a generated problem of the same shape with 60 points a client (for hundreds)",
    )
    @argument(
        "--per-process",
        type=int,
        default=1,
        help="simulate this many clients in each process (250: a thousand clients in four), each its own client",
    )
    @argument("--partition", default="dirichlet:0.5", help="iid, dirichlet:ALPHA, shards:N, classes:K or quantity:BETA")
    @argument("--seed", type=int, default=0)
    @argument("--epochs", type=int, default=2, help="local epochs per round (built-in trainer)")
    @argument("--wait", type=float, default=120.0, help="seconds to wait for them to join")
    @argument(
        "--gpus",
        help="GPU indices, e.g. 0,1: the clients go round-robin onto cuda:0, cuda:1, ...; with --dask, "
        "each client takes a worker's GPU resource (workers started with --resources GPU=N)",
    )
    @argument(
        "--dask",
        metavar="SCHEDULER",
        help="start them on this Dask cluster (tcp://HOST:8786) instead of this machine (nbfl.launch.on_dask)",
    )
    @argument("--per-worker", type=int, help="with --dask: this many clients to a worker (default: spread out)")
    @line_magic
    def fl_spawn(self, line: str) -> None:
        """Start N client processes, each with its own share of the data: on 127.0.0.1, or on
        the workers of a Dask cluster with --dask (off this machine, give the controller a
        workshop's join line: %fl_controller start --workshop).

        They opt in to running ``%%fl_task`` code; without one they use the built-in trainer.
        """
        args = parse_argstring(self.fl_spawn, line)
        if args.n < 1:
            raise UsageError("%fl_spawn needs at least 1 client")
        ctl = self.session.require_controller()
        if ctl.kit is not None:
            raise UsageError(
                "spawned clients have no startup kit, so a controller with --kit refuses them; "
                "start clients with their kits (nbfl client --kit DIR, %fl_join --kit DIR)"
            )
        if args.per_process < 1:
            raise UsageError("--per-process needs at least 1 client a process")
        before = len(ctl.live_clients())
        # in a workshop they join like participants, with the join line, and get shares from it
        where = str(ctl.join_code) if ctl.join_code is not None else ctl.endpoint
        try:
            gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
        except ValueError:
            raise UsageError(f"--gpus takes GPU indices separated by commas, e.g. 0,1; not {args.gpus!r}") from None
        ctl.expect_joins(args.n)  # started by whoever runs the controller: those from here join at once
        if args.dask:
            from ...launch.on_dask import spawn_on_dask

            try:
                group = spawn_on_dask(
                    args.dask,
                    args.n,
                    endpoint=where,
                    partition=args.partition,
                    seed=args.seed,
                    epochs=args.epochs,
                    name_prefix=_new_prefix(ctl, args.n),
                    per_worker=args.per_worker,
                    per_process=args.per_process,
                    data=args.data,
                    accept_code=True,
                    # on a cluster each client takes one of a worker's GPUs: workers started with --resources GPU=N
                    device="cuda" if gpus else None,
                    resources={"GPU": 1} if gpus else None,
                )
            except (ImportError, OSError, ValueError, RuntimeError) as exc:
                raise UsageError(f"--dask {args.dask}: {exc}") from None
            self.session.on_dask.append(group)
            batch = []
            where_to = f"on the Dask cluster's workers {', '.join(sorted(set(group.placement.values())))}"
        else:
            names = _site_names(ctl, args.n)
            try:
                batch = spawn_clients(
                    where,
                    args.n,
                    data=args.data,
                    partition=args.partition,
                    seed=args.seed,
                    epochs=args.epochs,
                    names=names,
                    accept_code=True,
                    gpus=gpus,
                    per_process=args.per_process,
                )
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            self.session.spawned += batch
            ctl.spawned += names  # the checkpoints list them: they end with this kernel
            where_to = f"what these clients print goes to {batch[-1].log.parent}"
        deadline = time.monotonic() + args.wait
        while True:  # in short waits: a client that failed at start (a missing GPU, say) is reported at once
            try:
                ctl.wait_for_clients(before + args.n, timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                break
            except TimeoutError:
                dead = [p for p in batch if p.poll() is not None]
                if dead or time.monotonic() >= deadline:
                    came = len(ctl.live_clients()) - before
                    why = f"; {dead[0].log} ends:\n{dead[0].tail()}" if dead else ""
                    raise UsageError(
                        f"{came} of {args.n} clients joined {where_to} within {args.wait:g} s{why}"
                    ) from None
        display(Html(clients_html(ctl.clients) + f"<div>{html.escape(where_to)}</div>"))

    @cell_magic
    def fl_task(self, line: str, cell: str) -> None:
        """%%fl_task NAME: define task NAME's function here and send it to clients that opted in.

        The cell also runs in this notebook, so the function can be tried locally.
        """
        name = line.strip()
        if not name.isidentifier():
            raise UsageError("usage: %%fl_task TASK_NAME, then a cell that defines def TASK_NAME(weights, ctx)")
        exec(compile(cell, f"<%%fl_task {name}>", "exec"), self.shell.user_ns)  # errors show as usual
        if not callable(self.shell.user_ns.get(name)):
            raise UsageError(f"the cell must define a function named {name!r}")
        self.session.task_code[name] = cell
        if self.session.controller is not None:
            self.session.controller.task_code[name] = cell
        display(Html(f"task {html.escape(name)!s} defined; clients that accept code will run it"))


def _room_text(ctl: Controller, need: int, done: bool = False) -> str:
    """Who has joined, for ``%fl_controller wait``: ``3 of 5 joined: ada, grace, site-1``."""
    names = sorted(c.name for c in ctl.live_clients())
    state = "" if done or len(names) >= need else " (waiting; Ctrl-C or the stop button stops waiting)"
    who = ": " + ", ".join(html.escape(n) for n in names) if names else ""
    return f"{len(names)} of {need} joined{who}{state}"


def _site_names(ctl: Controller, n: int) -> list[str]:
    """Names for ``n`` sites ``%fl_spawn`` starts for ``ctl``. A resumed controller's sites
    of the previous session (they ended with its kernel) come first, under the names they
    had, so its history and clients go on as site-1, not as a renamed copy; the rest are a
    new batch's (:func:`_new_prefix`). A name a client of this controller already has is not
    given again: a connected client's would be refused, a departed one's would merge two
    sites into one row."""
    seen = {c.name for c in ctl.clients} | set(ctl.spawned)
    again = [s for s in (ctl.resumed.spawned if ctl.resumed is not None else []) if s not in seen][:n]
    prefix = _new_prefix(ctl, n - len(again))
    return again + [f"{prefix}-{i + 1}" for i in range(n - len(again))]


def _new_prefix(ctl: Controller, n: int) -> str:
    """The prefix of a batch of ``n`` new sites: ``site`` (site-1, site-2, ...), else ``site2``,
    ``site3``, ..., the first whose names no client of ``ctl`` has, nor a site of the session
    it resumed (those names are kept for their own sites)."""
    taken = {c.name for c in ctl.clients} | set(ctl.spawned) | set(ctl.resumed.spawned if ctl.resumed else [])
    batch = 1
    while not taken.isdisjoint(f"{_prefix(batch)}-{i + 1}" for i in range(n)):
        batch += 1
    return _prefix(batch)


def _prefix(batch: int) -> str:
    return "site" if batch == 1 else f"site{batch}"
