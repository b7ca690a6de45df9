"""``%fl_round``, ``%fl_wait``, ``%fl_stop`` and ``%fl_status``: runs of rounds with their live
dashboard, blocking or in the background."""

from __future__ import annotations

import html
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ...controller.controller import RunActive
from ...controller.run import Run, RunError
from ...controller.settings import add_arguments, from_arguments, option
from ...filters import FilterError
from ...filters import build as build_filters
from ...protocol.records import RoundStatus
from ...workflows import ALGORITHMS, make_workflow
from ..dashboard import (
    Dashboard,
    Views,
    clients_html,
    status_html,
)
from ..text import Html
from ..waiting import wait_awaited, wait_blocking
from .participant import show_client
from .session import TopicMagics, widgets_installed

# the settings' help, as %fl_round's defaults come from %fl_controller start
HELP = {
    "min_clients": "clients a round starts with and, unless --min-results, results it needs "
    "(default: the controller's --min-clients)",
    "timeout": "seconds a round waits (default: the controller's --timeout)",
    "compress": "the model and the updates on the wire (default: the controller's; a workshop's is int8)",
}


def run_settings(magic: Callable) -> Callable:
    """``%fl_round``'s options for its run's settings, declared once in :mod:`nbfl.controller.settings`."""
    decorators: list = []
    add_arguments(lambda *flags, **kwargs: decorators.append(argument(*flags, **kwargs)), help=HELP)
    for decorate in reversed(decorators):
        magic = decorate(magic)
    return magic


@magics_class
class RunMagics(TopicMagics):
    """Run rounds, wait for a run, stop it, show it again."""

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
    @run_settings
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
        if self.session.controller is None and self.session.client is not None:
            show_client(self.session)
            return
        if self.session.controller is None:
            raise UsageError(
                "no controller runs and no client joined from this notebook: "
                "%fl_controller start, or %fl_join with the line the controller shows"
            )
        ctl = self.session.require_controller()
        run = ctl.active_run
        if (
            run is not None
            and run is self.session.run
            and self.session.views is not None
            and self.session.rich()
            and widgets_installed()
        ):
            board = Dashboard(ctl, run.rounds, background=True).show()  # widgets: live after this cell ends
            board.follow(run)
            self.session.views.add(board)
            return
        status = status_html(f"run: {self.session.run.summary()}" if self.session.run else "no run yet: %fl_round N")
        display(Html(status + clients_html(ctl.clients)))

    def _start_run(self, line: str) -> Run | None:
        """Parse ``%fl_round``'s arguments, show a dashboard and start the run; None if it runs in the background."""
        args = parse_argstring(self.fl_round, line)
        if args.n < 1:
            raise UsageError("%fl_round needs at least 1 round")
        ctl = self.session.require_controller()
        live = len(ctl.live_clients())
        if not live:
            raise UsageError("no client has joined: %fl_spawn N, or %fl_join from another notebook")
        try:
            settings = from_arguments(
                args, min_clients=self.session.min_clients, timeout=self.session.round_timeout, join_timeout=0
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        min_clients = settings.min_clients
        if live < min_clients:
            raise UsageError(
                f"{live} of {min_clients} clients have joined; this round needs {min_clients} (--min-clients)"
            )
        if ctl.active_run is not None:
            raise UsageError(f"a run is going ({ctl.active_run.summary()}): %fl_wait for it or %fl_stop it first")
        workflow = self._workflow(args)
        try:
            build_filters(list(settings.filters))
        except FilterError as exc:
            raise UsageError(str(exc)) from None
        board = self.session.board_for(
            ctl, args.n, background=args.background
        ).show()  # before the run: its thread updates it
        views = Views(board)
        try:
            run = ctl.start(args.n, workflow, settings, on_round=views.on_round, on_progress=views.on_progress)
        except (RunActive, RunError) as exc:
            raise UsageError(str(exc)) from None
        run.view_hint = (
            "%fl_status in a cell shows its dashboard again, with Stop."  # the panel says it (Detach first, if held)
        )
        board.follow(run)
        self.session.run, self.session.board, self.session.views = run, board, views
        self.session.runs.append(run)
        self.shell.user_ns["nbfl_run"] = run  # the Python handle: wait(), stop(), history
        return None if args.background else run

    def _current_run(self) -> Run:
        if self.session.run is None:
            raise UsageError("no run yet: %fl_round N --background starts one")
        return self.session.run

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
        assert self.session.board is not None  # set with self.session.run, which ``run`` is or was
        if not self.session.board.background and self.session.board.run is run:
            self.session.board.on_done(run)  # before the cell ends: a display update after it would be lost
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
        try:
            options = dict(option(text) for text in args.options)
        except ValueError as exc:
            raise UsageError(f"--with {exc}") from None
        key = (args.algorithm, args.task, tuple(sorted(options.items())))
        if args.reset or key not in self.session.workflows:
            try:
                self.session.workflows[key] = make_workflow(args.algorithm, task_name=args.task, **options)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"--algorithm {args.algorithm}: {exc}") from None
        return self.session.workflows[key]
