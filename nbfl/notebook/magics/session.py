"""What the topics' magics share: one kernel's federation.

Every ``%fl_*`` magic class (:mod:`.controller`, :mod:`.participant`, :mod:`.runs`,
:mod:`.reports`) is made with the same :class:`Session`: this kernel's controller, the
clients it spawned, its current run and dashboard, the client it joined as. A magic
changes the session; the other topics see the change.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics

from ...controller.controller import Controller
from ...controller.run import Run
from ...launch.spawn import stop_clients
from ...participant.client import Client
from ..dashboard import Dashboard, LivePart, TextBoard, Views
from ..text import Html

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


class Session:
    """State of this kernel's federation: its controller, spawned clients, its own client."""

    def __init__(self, shell: Any):
        self.shell: InteractiveShell = shell
        self.controller: Controller | None = None
        self.spawned: list = []
        self.on_dask: list = []  # nbfl.launch.on_dask.DaskClients of %fl_spawn --dask
        # the defaults %fl_round takes from %fl_controller start; each run gets its own copy
        self.min_clients = 1
        self.round_timeout = 300.0
        self.run: Run | None = None  # the current (or last) run
        self.runs: list[Run] = []  # every run this notebook started, for %fl_compare
        self.board: Dashboard | TextBoard | None = None  # its dashboard
        self.views: Views | None = None  # every view of it: the dashboard, and those %fl_status showed again
        self.client: Client | None = None
        self.client_status: LivePart | None = None  # the status line %fl_join shows and updates
        self.room_line: LivePart | None = None  # the line %fl_controller wait shows and updates
        self.task_code: dict[str, str] = {}
        # one workflow per (algorithm, task, options): FedOpt's and SCAFFOLD's state
        # carries from one %fl_round to the next, until --reset or a new controller
        self.workflows: dict[tuple, Any] = {}

    def board_for(self, ctl: Controller, rounds: int = 0, *, background: bool = False) -> Dashboard | TextBoard:
        """The dashboard where HTML is shown; in terminal IPython (no widgets, and every display
        update printed again) a line per round instead."""
        kind = Dashboard if self.rich() else TextBoard
        return kind(ctl, rounds, background=background)

    def rich(self) -> bool:
        """Whether this shell's front end shows HTML (a notebook) rather than text (a terminal)."""
        formatter = self.shell.display_formatter
        assert formatter is not None  # the shell sets it up when it starts
        return "text/html" in formatter.active_types

    def require_controller(self) -> Controller:
        if self.controller is None:
            raise UsageError("no controller runs in this notebook: %fl_controller start")
        return self.controller

    def stop_all(self) -> None:
        if self.controller is not None:
            self.controller.close()  # stops its run first
            self.controller = None
        self.workflows.clear()
        stop_clients(self.spawned)
        self.spawned = []
        for group in self.on_dask:  # they heard the controller's goodbye: their tasks end
            group.release()
        self.on_dask = []

    def status_line(self, content: Html) -> LivePart:
        """The participant's status line: an HTML widget where there are widgets, since a
        notebook drops a display update once its cell has ended (the join's cell ends at
        once, the rounds come later); a display handle otherwise (the small install has no
        ipywidgets: %fl_status shows it anew)."""
        return LivePart(content, widget=self.rich() and widgets_installed())


class TopicMagics(Magics):
    """A topic's magics, made with the session they share (:func:`nbfl.notebook.magics.load`)."""

    shell: InteractiveShell  # never None here: IPython makes the magics with its shell

    def __init__(self, shell: Any, session: Session):
        super().__init__(shell)
        self.session = session


def widgets_installed() -> bool:
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):  # blocked (sys.modules entry None) or half installed
        return False
