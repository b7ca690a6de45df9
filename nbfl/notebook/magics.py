"""``%fl_*`` magics: a thin layer over :class:`~nbfl.Controller` and :class:`~nbfl.Client`.

Each magic parses its arguments (``%fl_round?`` shows them), calls the Python API and
shows the result; the logic lives in the API. Errors in arguments raise ``UsageError``.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..controller.controller import Controller, RunActive
from ..controller.run import Run, RunError
from ..controller.workshop import Workshop
from ..filters import FilterError
from ..filters import build as build_filters
from ..launch.spawn import spawn_clients, stop_clients
from ..participant.client import Client
from ..protocol.compress import CODECS
from ..protocol.joining import Share, is_join_code
from ..protocol.records import RoundRecord, RoundStatus
from ..transport.provision import load_kit
from ..workflows import ALGORITHMS, CrossSiteEval, FederatedStatistics, make_workflow
from .cell_context import in_cell
from .dashboard import (
    Dashboard,
    LivePart,
    TextBoard,
    Views,
    clients_html,
    failures_html,
    history_html,
    join_html,
    security_html,
    statistics_html,
    status_html,
)
from .text import Html, Png
from .waiting import await_blocking_magics, unregister, wait_awaited, wait_blocking

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


@magics_class
class FLMagics(Magics):
    """State of this kernel's federation: its controller, spawned clients, its own client."""

    shell: InteractiveShell  # never None here: IPython makes the magics with its shell (load)

    def __init__(self, shell: Any):
        super().__init__(shell)
        self.controller: Controller | None = None
        self.spawned: list = []
        self.on_dask: list = []  # nbfl.launch.on_dask.DaskClients of %fl_spawn --dask
        # the defaults %fl_round takes from %fl_controller start; each run gets its own copy
        self.min_clients = 1
        self.round_timeout = 300.0
        self.run: Run | None = None  # the current (or last) run
        self.board: Dashboard | TextBoard | None = None  # its dashboard
        self.views: Views | None = None  # every view of it: the dashboard, and those %fl_status showed again
        self.client: Client | None = None
        self.client_status: LivePart | None = None  # the status line %fl_join shows and updates
        self.room_line: LivePart | None = None  # the line %fl_controller wait shows and updates
        self.task_code: dict[str, str] = {}
        # one workflow per (algorithm, task, options): FedOpt's and SCAFFOLD's state
        # carries from one %fl_round to the next, until --reset or a new controller
        self.workflows: dict[tuple, Any] = {}

    # -- controller --------------------------------------------------------------
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
    @argument("--evaluate", help="name of a function weights -> {'accuracy': ...} (default: digits test split)")
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
            going = self.controller is not None and self.controller.active_run is not None
            self._stop_all()
            run = f" (its run {html.escape(self.run.summary())})" if going and self.run else ""
            display(Html(f"controller stopped{run}; its clients were told goodbye"))
        else:
            self._board(self._controller()).show(controls=False)  # with the join line, in a workshop

    def _wait_for_room(self, args: Any) -> None:
        """``wait N``: block until N clients are connected, the line saying who has joined
        as they join; Ctrl-C (the stop button) stops waiting. A workshop whose shares are
        mostly empty is then told why its accuracy will stay low."""
        if not (args.name or "").isdigit():
            raise UsageError("usage: %fl_controller wait N (the number of clients to wait for), e.g. wait 30")
        ctl, need = self._controller(), int(args.name)
        shown = _room_text(ctl, need)
        line = self.room_line = LivePart(Html(shown), widget=False)  # the cell runs meanwhile: its updates arrive
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
        ctl = self._controller()
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
        if self.controller is not None:
            raise UsageError(f"a controller already runs at {self.controller.endpoint}; %fl_controller stop first")
        weights, evaluate = self._model(args.model, args.evaluate)
        kit = workshop = None
        endpoint = f"tcp://{args.host or '127.0.0.1'}:{args.port or 0}"
        try:
            if args.kit is not None:
                kit = load_kit(args.kit)
                endpoint = kit.endpoint_with(args.host, args.port)
            elif args.workshop:
                workshop = Workshop(args.capacity, args.partition, token_ttl=args.token_hours * 3600, host=args.host)
                endpoint = f"tcp://0.0.0.0:{args.port or 0}"  # the line may name a tunnel's or a NAT's address
            self.controller = Controller(
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
        self.controller.task_code.update(self.task_code)
        self.shell.user_ns["nbfl_controller"] = self.controller  # the Python API, for what magics do not cover
        self.min_clients = args.min_clients
        self.round_timeout = args.timeout
        endpoint = self.controller.endpoint
        if self.controller.join_code is not None:
            how = join_html(self.controller.join_code)
        else:
            join = endpoint.replace("0.0.0.0", socket.gethostname())
            how = "--kit YOUR_KIT_FOLDER" if kit is not None else f"{html.escape(join)} --name YOUR_NAME"
            how = f"<code>%fl_join {how}</code><br>"  # the join line's own block ends its line
        resumed = self.controller.resumed
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
                f"{security_html(self.controller.security)}"
            )
        )

    def _model(self, model_name: str | None, evaluate_name: str | None) -> tuple[Any, Any]:
        ns = self.shell.user_ns
        for name in (model_name, evaluate_name):
            if name is not None and name not in ns:
                raise UsageError(f"no variable {name!r} in this notebook")
        if model_name is not None:
            return ns[model_name], ns.get(evaluate_name) if evaluate_name else None
        from ..participant.builtin import digits_model

        # numpy's: the controller never trains, and a kernel that imports no torch stays ~200 MiB
        # smaller (on Binder every kernel a learner leaves running counts against one pod)
        weights, evaluate = digits_model(trainer="numpy")
        return weights, ns[evaluate_name] if evaluate_name else evaluate

    def _board(self, ctl: Controller, rounds: int = 0, *, background: bool = False) -> Dashboard | TextBoard:
        """The dashboard where HTML is shown; in terminal IPython (no widgets, and every display
        update printed again) a line per round instead."""
        kind = Dashboard if self._rich() else TextBoard
        return kind(ctl, rounds, background=background)

    def _rich(self) -> bool:
        """Whether this shell's front end shows HTML (a notebook) rather than text (a terminal)."""
        formatter = self.shell.display_formatter
        assert formatter is not None  # the shell sets it up when it starts
        return "text/html" in formatter.active_types

    def _controller(self) -> Controller:
        if self.controller is None:
            raise UsageError("no controller runs in this notebook: %fl_controller start")
        return self.controller

    def _stop_all(self) -> None:
        if self.controller is not None:
            self.controller.close()  # stops its run first
            self.controller = None
        self.workflows.clear()
        stop_clients(self.spawned)
        self.spawned = []
        for group in self.on_dask:  # they heard the controller's goodbye: their tasks end
            group.release()
        self.on_dask = []

    # -- clients -----------------------------------------------------------------
    @magic_arguments()
    @argument("n", type=int, help="how many client processes")
    @argument("--data", default="digits", choices=["digits"])
    @argument("--partition", default="dirichlet:0.5", help="iid, dirichlet:ALPHA or shards:N")
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
        ctl = self._controller()
        if ctl.kit is not None:
            raise UsageError(
                "spawned clients have no startup kit, so a controller with --kit refuses them; "
                "start clients with their kits (nbfl client --kit DIR, %fl_join --kit DIR)"
            )
        before = len(ctl.live_clients())
        # in a workshop they join like participants, with the join line, and get shares from it
        where = str(ctl.join_code) if ctl.join_code is not None else ctl.endpoint
        try:
            gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
        except ValueError:
            raise UsageError(f"--gpus takes GPU indices separated by commas, e.g. 0,1; not {args.gpus!r}") from None
        if args.dask:
            from ..launch.on_dask import spawn_on_dask

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
                    accept_code=True,
                    # on a cluster each client takes one of a worker's GPUs: workers started with --resources GPU=N
                    device="cuda" if gpus else None,
                    resources={"GPU": 1} if gpus else None,
                )
            except (ImportError, OSError, ValueError, RuntimeError) as exc:
                raise UsageError(f"--dask {args.dask}: {exc}") from None
            self.on_dask.append(group)
            batch = []
            where_to = f"on the Dask cluster's workers {', '.join(sorted(set(group.placement.values())))}"
        else:
            names = _site_names(ctl, args.n)
            self.spawned += spawn_clients(
                where,
                args.n,
                partition=args.partition,
                seed=args.seed,
                epochs=args.epochs,
                names=names,
                accept_code=True,
                gpus=gpus,
            )
            ctl.spawned += names  # the checkpoints list them: they end with this kernel
            batch = self.spawned[-args.n :]
            where_to = f"what these clients print goes to {self.spawned[-1].log.parent}"
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

    @magic_arguments()
    @argument(
        "endpoint",
        nargs="?",
        help="what %%fl_controller start showed: a join line's nbfl://... code, or an address tcp://HOST:PORT",
    )
    @argument("--name", nargs="+", help="how the controller will list you, spaces allowed (with --kit: the kit's name)")
    @argument("--kit", help="your startup kit folder (nbfl provision): endpoint, name and CurveZMQ keys")
    @argument("--insecure", action="store_true", help="allow plaintext to a non-loopback controller")
    @argument("--data", default="digits", choices=["digits", "none"], help="'none': use your @nbfl.task functions")
    @argument("--index", type=int, help="your share of the partition (default: the workshop assigns one, else 0)")
    @argument("--num-clients", type=int, default=1)
    @argument("--partition", default="dirichlet:0.5")
    @argument("--seed", type=int, default=0)
    @argument("--accept-code", action="store_true", help="run task code the controller sends (%%fl_task)")
    @line_magic
    def fl_join(self, line: str) -> None:
        """Join a controller as a client and return at once; training runs in the background.

        With no arguments: this notebook's client again (after a page reload, say).
        """
        args = parse_argstring(self.fl_join, line)
        args.name = typed_name(args.name)
        if not line.strip() and self.client is not None:
            self._show_client()
            return
        if self.client is not None and self.client.state != "stopped":
            raise UsageError(
                f"this notebook is already client {self.client.name!r} (%fl_join alone shows it); "
                "%fl_leave first to join another controller"
            )
        if args.kit is None and (args.endpoint is None or args.name is None):
            raise UsageError("%fl_join needs the join line's code (or ENDPOINT) and --name, or --kit YOUR_KIT_FOLDER")
        where = args.endpoint or f"the controller of kit {args.kit}"
        status = self._status_line(
            Html(f"joining {html.escape(where)} as {html.escape(args.name or 'the kit name')} ...")
        )
        kwargs = self._local_training(args)
        try:
            self.client = Client(
                args.endpoint,
                args.name,
                kit=args.kit,
                insecure=args.insecure,
                accept_code=args.accept_code,
                on_update=in_cell(self._client_updated),
                control=True,
                **kwargs,
            )
            self.client_status = status
            self.client.start(wait=30)
        except (ConnectionError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        self.shell.user_ns["nbfl_client"] = self.client
        status.set(Html(_client_status(self.client)))

    @line_magic
    def fl_leave(self, line: str = "") -> None:
        """Leave the controller this notebook joined with %fl_join (to join another, say).
        Works in every state: joining, training, waiting for a controller that went quiet,
        or already stopped (then it says why)."""
        if self.client is None:
            raise UsageError("this notebook has not joined a controller: %fl_join LINE")
        client = self.client
        if client.state == "stopped":
            display(
                Html(
                    f"{html.escape(client.name)} had already stopped ({html.escape(client.ended or 'left')}); "
                    "%fl_join LINE joins again"
                )
            )
            return
        client.stop()
        display(Html(f"{html.escape(client.name)} left {html.escape(client.endpoint)}"))

    def _client_updated(self, client: Client) -> None:
        # a terminal reprints an updated display: there the status shows when asked (%fl_status)
        if self.client_status is not None and self._rich():
            self.client_status.set(Html(_client_status(client)))

    def _show_client(self) -> None:
        """This kernel's client, in a new status line that keeps updating (the old one may be gone with a page)."""
        assert self.client is not None
        self.client_status = self._status_line(Html(_client_status(self.client)))

    def _status_line(self, content: Html) -> LivePart:
        """The participant's status line: an HTML widget where there are widgets, since a
        notebook drops a display update once its cell has ended (the join's cell ends at
        once, the rounds come later); a display handle otherwise (the small install has no
        ipywidgets: %fl_status shows it anew)."""
        return LivePart(content, widget=self._rich() and _widgets_installed())

    def _local_training(self, args: Any) -> dict[str, Any]:
        """The built-in trainer on a share of digits: the one given, else one the workshop assigns."""
        if args.data == "none":
            return {}
        from ..participant.builtin import built_in_client

        share = None
        if args.index is not None or not is_join_code(args.endpoint):
            share = Share(args.index or 0, args.num_clients, args.partition, args.seed)
            if not 0 <= share.index < share.of:
                raise UsageError(f"--index must be between 0 and {share.of - 1} (--num-clients {share.of})")
        try:
            return built_in_client(share, epochs=2)  # torch's or numpy's, as $NBFL_TRAINER says
        except ValueError as exc:
            raise UsageError(str(exc)) from None

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
        self.task_code[name] = cell
        if self.controller is not None:
            self.controller.task_code[name] = cell
        display(Html(f"task {html.escape(name)!s} defined; clients that accept code will run it"))

    # -- rounds and tables -------------------------------------------------------
    @magic_arguments()
    @argument("n", type=int, nargs="?", default=1, help="rounds to run")
    @argument("--algorithm", default="fedavg", choices=sorted(ALGORITHMS))
    @argument(
        "--with",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an algorithm option, e.g. mu=0.1 (fedprox), lr=1.0 momentum=0.6 (fedopt), order=shuffled",
    )
    @argument("--reset", action="store_true", help="start the algorithm's server state (momentum, SCAFFOLD's c) afresh")
    @argument("--task", default="train", help="the task each client runs")
    @argument(
        "--filter",
        dest="filters",
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="a filter every client applies to its updates, e.g. dp:clip=0.5,noise_multiplier=1.0",
    )
    @argument(
        "--min-clients",
        type=int,
        help="clients a round starts with and, unless --min-results, results it "
        "needs (default: the controller's --min-clients)",
    )
    @argument("--min-results", type=int, help="results that close a round (its quorum)")
    @argument("--grace", type=float, help="seconds to wait for slower clients once the quorum is in (default: for all)")
    @argument("--timeout", type=float, help="seconds a round waits (default: the controller's --timeout)")
    @argument(
        "--compress",
        choices=["none", *CODECS],
        help="the model and the updates on the wire (default: the controller's; a workshop's is int8)",
    )
    @argument(
        "--background",
        action="store_true",
        help="return at once; the dashboard keeps updating (%%fl_status, %%fl_wait, %%fl_stop act on the run)",
    )
    @line_magic
    def fl_round(self, line: str) -> None:
        """Run N rounds with a live dashboard: client table, progress, Stop button, accuracy/loss plot.

        The cell blocks until the rounds end; the Stop button or the kernel's interrupt
        ends the run cleanly (clients abort, the global model stays the last complete
        one). With --background it returns at once and the run goes on while other cells run.
        """
        run = self._start_run(line)
        if run is not None:
            wait_blocking(run, stop=True)
            self._report(run)

    @line_magic
    def fl_wait(self, line: str = "") -> None:
        """Block until the current run ends (its Stop button works meanwhile); raise what
        ended it if it failed. The kernel's interrupt ends the waiting, not the run."""
        run = self._current_run()
        wait_blocking(run, stop=False)
        self._report(run)

    async def awaited(self, name: str, line: str) -> None:
        """``%fl_round`` and ``%fl_wait`` in a kernel: the same, awaited so the Stop button is heard
        (see :mod:`nbfl.notebook.waiting`)."""
        run = self._start_run(line) if name == "fl_round" else self._current_run()
        if run is not None:
            await wait_awaited(run, stop=name == "fl_round")
            self._report(run)

    @line_magic
    def fl_stop(self, line: str = "") -> None:
        """Stop the current run: the round in progress is aborted, the model stays the last complete one."""
        run = self._current_run()
        run.stop()
        wait_blocking(run, stop=True)
        display(Html(status_html(f"run: {run.summary()}")))

    @line_magic
    def fl_status(self, line: str = "") -> None:
        """While a run goes: its live dashboard again, Stop included (after a page reload, say;
        a blocking ``%fl_round`` holds the notebook until the Federation panel's Detach lets
        its cell end). Otherwise where the last run ended and the client table. In a
        participant's notebook: this notebook's client."""
        if self.controller is None and self.client is not None:
            self._show_client()
            return
        if self.controller is None:
            raise UsageError(
                "no controller runs and no client joined from this notebook: "
                "%fl_controller start, or %fl_join with the line the controller shows"
            )
        ctl = self._controller()
        run = ctl.active_run
        if run is not None and run is self.run and self.views is not None and self._rich() and _widgets_installed():
            board = Dashboard(ctl, run.rounds, background=True).show()  # widgets: live after this cell ends
            board.follow(run)
            self.views.add(board)
            return
        status = status_html(f"run: {self.run.summary()}" if self.run else "no run yet: %fl_round N")
        display(Html(status + clients_html(ctl.clients)))

    def _start_run(self, line: str) -> Run | None:
        """Parse ``%fl_round``'s arguments, show a dashboard and start the run; None if it runs in the background."""
        args = parse_argstring(self.fl_round, line)
        if args.n < 1:
            raise UsageError("%fl_round needs at least 1 round")
        ctl = self._controller()
        live = len(ctl.live_clients())
        if not live:
            raise UsageError("no client has joined: %fl_spawn N, or %fl_join from another notebook")
        min_clients = args.min_clients or self.min_clients
        if live < min_clients:
            raise UsageError(
                f"{live} of {min_clients} clients have joined; this round needs {min_clients} (--min-clients)"
            )
        if ctl.active_run is not None:
            raise UsageError(f"a run is going ({ctl.active_run.summary()}): %fl_wait for it or %fl_stop it first")
        workflow = self._workflow(args)
        filters = [_filter_spec(text) for text in args.filters]
        try:
            build_filters(filters)
        except FilterError as exc:
            raise UsageError(str(exc)) from None
        board = self._board(ctl, args.n, background=args.background).show()  # before the run: its thread updates it
        views = Views(board)
        try:
            run = ctl.start(
                args.n,
                workflow,
                min_clients=min_clients,
                min_results=args.min_results,
                grace=args.grace,
                timeout=args.timeout or self.round_timeout,
                join_timeout=0,
                on_round=views.on_round,
                on_progress=views.on_progress,
                filters=filters,
                compress=args.compress,
            )
        except (RunActive, RunError) as exc:
            raise UsageError(str(exc)) from None
        run.view_hint = (
            "%fl_status in a cell shows its dashboard again, with Stop."  # the panel says it (Detach first, if held)
        )
        board.follow(run)
        self.run, self.board, self.views = run, board, views
        self.shell.user_ns["nbfl_run"] = run  # the Python handle: wait(), stop(), history
        return None if args.background else run

    def _current_run(self) -> Run:
        if self.run is None:
            raise UsageError("no run yet: %fl_round N --background starts one")
        return self.run

    def _report(self, run: Run) -> None:
        """After a blocking wait, in the cell: how the run ended (or that only the waiting
        did); raise what ended it if it failed."""
        if not run.done():  # %fl_wait interrupted: the run goes on
            display(
                Html(
                    f"stopped waiting; the run goes on in the background ({html.escape(run.summary())}): "
                    "%fl_status shows its dashboard, %fl_wait waits for it, %fl_stop ends it"
                )
            )
            return
        assert self.board is not None  # set with self.run, which ``run`` is or was
        if not self.board.background and self.board.run is run:
            self.board.on_done(run)  # before the cell ends: a display update after it would be lost
        error = run.exception()
        if error is not None:
            if isinstance(error, (TimeoutError, FilterError, RunError)):
                raise UsageError(f"the run failed: {error}") from None
            raise error
        last = run.history[-1] if run.history else None
        if last is not None and last.status in (RoundStatus.INTERRUPTED, RoundStatus.STOPPED):
            display(
                Html(
                    f"<b>stopped</b> in round {last.round}: clients were told to abort; the global "
                    f"model is round {last.round - 1}'s. %fl_round runs again."
                )
            )
        elif run.stopped:
            after = f"after round {last.round}" if last else "before its first round"
            display(Html(f"<b>stopped</b> {after}. %fl_round runs again."))
        elif run.failed_rounds:
            display(Html(f"<b style='color:#a60'>{html.escape(run.summary())}</b>"))
        if last is not None and last.metrics:
            print("final " + ", ".join(f"{k} {v:.4f}" for k, v in last.metrics.items()))

    def _workflow(self, args: Any) -> Any:
        options = dict(_option(text) for text in args.options)
        key = (args.algorithm, args.task, tuple(sorted(options.items())))
        if args.reset or key not in self.workflows:
            try:
                self.workflows[key] = make_workflow(args.algorithm, task_name=args.task, **options)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"--algorithm {args.algorithm}: {exc}") from None
        return self.workflows[key]

    def _once(self, workflow: Any) -> RoundRecord:
        """One round of a reporting workflow (cross-site, statistics), with its own settings; failures shown."""
        try:
            record = self._controller().run(1, workflow, join_timeout=0, timeout=self.round_timeout)[0]
        except (RunActive, RunError) as exc:
            raise UsageError(str(exc)) from None
        display(Html(failures_html([record])))
        return record

    @magic_arguments()
    @argument("--metric", default="accuracy", help="the metric each site's validate task reports")
    @line_magic
    def fl_cross_site(self, line: str = "") -> None:
        """Every client's own model and the global model, evaluated on every client's data: a heatmap
        (its numbers are ``nbfl_cross_site``: models, sites, values)."""
        args = parse_argstring(self.fl_cross_site, line)
        workflow = CrossSiteEval(metric=args.metric)
        record = self._once(workflow)
        if workflow.matrix is None:
            raise UsageError(f"cross-site evaluation {record.status}: {record.reason}")
        m = workflow.matrix
        self.shell.user_ns["nbfl_cross_site"] = m  # models, sites, values, metric: for the notebook's own analysis
        from .plots import cross_site_png  # matplotlib: only for the plots

        display(Png(data=cross_site_png(m.models, m.sites, m.values, m.metric), format="png"))

    @magic_arguments()
    @argument("--bins", type=int, default=10, help="histogram bins per feature")
    @argument("--min-count", type=int, default=10, help="sites with fewer samples withhold their statistics")
    @line_magic
    def fl_stats(self, line: str = "") -> None:
        """Count, mean, std, min, max and histograms per feature over all clients' data; no sample leaves."""
        args = parse_argstring(self.fl_stats, line)
        workflow = FederatedStatistics(bins=args.bins, min_count=args.min_count)
        record = self._once(workflow)
        if not workflow.result:
            raise UsageError(f"federated statistics {record.status}: {record.reason}")
        self.shell.user_ns["nbfl_statistics"] = workflow.result
        display(Html(statistics_html(workflow.result)))

    @line_magic
    def fl_clients(self, line: str = "") -> None:
        """The client table: name, host, device, samples, state, last round's time and metrics."""
        ctl = self._controller()
        display(Html(clients_html(ctl.clients, ctl.security)))

    @magic_arguments()
    @argument("--partition", help="preview a partition of the digits instead, e.g. dirichlet:0.1, iid, shards:2")
    @argument("--clients", type=int, default=8, help="with --partition: how many shares")
    @argument("--seed", type=int, default=0)
    @line_magic
    def fl_labels(self, line: str = "") -> None:
        """Samples of each class per client, as stacked bars: the joined clients' own counts
        (those training on built-in data report them), or a partition of the digits previewed."""
        args = parse_argstring(self.fl_labels, line)
        if args.partition is not None:
            from ..data import load_digits_split, partition

            y = load_digits_split(seed=args.seed)[1]
            try:
                parts = partition(args.partition, y, args.clients, args.seed)
            except ValueError as exc:
                raise UsageError(f"--partition {args.partition}: {exc}") from None
            counts = {f"share {i + 1}": np.bincount(y[p], minlength=10).tolist() for i, p in enumerate(parts)}
            title = f"digits, {args.partition}, {args.clients} shares"
        else:
            counts = {c.name: c.labels for c in self._controller().clients if c.labels}
            if not counts:
                raise UsageError(
                    "no client reported its labels (clients on built-in data do); --partition SPEC previews one"
                )
            title = "labels per client"
        from .plots import labels_png

        display(Png(data=labels_png(counts, title), format="png"))

    @line_magic
    def fl_history(self, line: str = "") -> None:
        """One row per round: status, global metrics, clients that answered and that failed."""
        display(Html(history_html(self._controller().history)))


def _filter_spec(text: str) -> dict[str, Any]:
    """``dp:clip=0.5,noise_multiplier=1.0`` -> ``{"name": "dp", "clip": 0.5, "noise_multiplier": 1.0}``."""
    name, _, params = text.partition(":")
    return {"name": name, **dict(_option(p) for p in params.split(",") if p)}


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as a number when it is one: ``mu=0.1``, ``order=shuffled``."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise UsageError(f"--with expects KEY=VALUE, got {text!r}")
    for parse in (int, float):
        try:
            return key, parse(value)
        except ValueError:
            pass
    return key, value


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


def _widgets_installed() -> bool:
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):  # blocked (sys.modules entry None) or half installed
        return False


def typed_name(words: list[str] | None) -> str | None:
    """``--name`` as typed: its words joined by spaces, without quotes around them. A name
    with a space arrives in pieces from ``$NAME`` and with its quotes from ``"Grace Hopper"``
    (IPython keeps them); either way the name is ``Grace Hopper``."""
    if not words:
        return None
    return " ".join(words).strip("'\"") or None


def _client_status(client: Client) -> str:
    metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(client.last_metrics.items()))
    error = f"<br><span style='color:#b00'>{html.escape(client.last_error)}</span>" if client.last_error else ""
    if client.controller_lost is not None and client.state != "stopped":
        since = time.strftime("%H:%M:%S", time.localtime(client.controller_lost))
        error += f"<br><span style='color:#a60'>the controller has not answered since {since}; still trying</span>"
    if client.share is not None:
        share = f", share {client.share} ({client.samples} samples)"
    else:  # a workshop's share comes with the welcome, and is set up just after
        share = ", share being assigned" if client.from_share is not None else ""
    if client.state == "stopped" and client.ended and client.ended != client.last_error:
        error += f"<br>stopped: {html.escape(client.ended)}"
    return (
        f"<b>{html.escape(client.name)}</b> at {html.escape(client.endpoint)} on {html.escape(client.device)}"
        f"{share}: {client.state}, {client.rounds_done} rounds done{'; ' + html.escape(metrics) if metrics else ''}{error}"
    )


def load(shell: Any) -> None:
    """Register the magics; nbfl's log goes quiet, since the dashboard shows what matters
    and a log line from a background thread would land in whichever cell runs."""
    logger = logging.getLogger("nbfl")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    shell.register_magics(FLMagics)
    if await_blocking_magics not in shell.input_transformers_post:
        shell.input_transformers_post.append(await_blocking_magics)


def unload(shell: Any) -> None:
    """``%unload_ext``/``%reload_ext``: close this kernel's controller, spawned clients and client."""
    unregister(shell)
    magics = shell.magics_manager.registry.get("FLMagics")
    if magics is not None:
        magics._stop_all()
        if magics.client is not None:
            magics.client.stop()
