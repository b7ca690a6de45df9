"""The controller as JupyterLab's Federation panel sees it: its status as JSON values,
and the actions the panel may ask for (stop, detach, remove).

Asked on the control socket's thread (:mod:`nbfl.transport.control`), so the status
reads only snapshots, and every action is one the controller's own API allows.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

from ..protocol.joining import JoinCode
from ..protocol.names import RunState
from ..protocol.panel import Client as PanelClient
from ..protocol.panel import ControllerStatus, Defense, HistoryRow
from ..protocol.records import ClientInfo, RoundRecord
from ..transport.guard import summary
from .run import Run
from .workshop import Workshop

PANEL_HISTORY = 500  # rounds of history the panel gets: enough for its chart, bounded for a long run


class Controller(Protocol):
    """What the panel reads and asks of a controller (:class:`nbfl.controller.controller.Controller`)."""

    workshop: Workshop | None
    history: list[RoundRecord]

    @property
    def endpoint(self) -> str: ...
    @property
    def security(self) -> str: ...
    @property
    def join_code(self) -> JoinCode | None: ...
    @property
    def clients(self) -> list[ClientInfo]: ...
    @property
    def active_run(self) -> Run | None: ...
    @property
    def last_run(self) -> Run | None: ...
    def defense(self) -> dict[str, Any]: ...
    def remove(self, name: str) -> None: ...


def panel_status(ctl: Controller) -> ControllerStatus:
    """The controller as JupyterLab's Federation panel shows it (JSON values): its run,
    its clients and the last :data:`PANEL_HISTORY` rounds. Asked on the control socket's
    thread (:mod:`nbfl.transport.control`), so it reads only snapshots."""
    code, run, defense = ctl.join_code, ctl.last_run, ctl.defense()
    status: ControllerStatus = {
        "endpoint": ctl.endpoint,
        "security": ctl.security,
        "workshop": ctl.workshop is not None,
        "join_line": f"%fl_join {code} --name YOUR_NAME --accept-code" if code is not None else None,
        "run": None,
        "clients": [
            PanelClient(
                name=c.name,
                device=c.device,
                host=c.host,
                state=c.state,
                share=c.share,
                round=c.last_round,
                seconds=c.last_seconds,
                metrics=dict(c.last_metrics),
            )
            for c in ctl.clients
        ],
        "history": [
            HistoryRow(round=r.round, status=str(r.status), outcome=r.outcome, metrics=dict(r.metrics))
            for r in ctl.history[-PANEL_HISTORY:]
        ],
        "defense": Defense(
            refused_messages=defense["refused_messages"],
            refused_joins=defense["refused_joins"],
            dropped_peers=defense["dropped_peers"],
            closed_connections=defense["closed_connections"],
            ended_unjoined=defense["ended_unjoined"],
            top=defense["top"],
            summary=summary(defense),
        ),
    }
    if run is not None:
        answered, asked = run.progress
        ended = (
            RunState.FAILED
            if run.done() and run.exception()
            else RunState.STOPPED
            if run.stopped
            else RunState.FINISHED
        )
        # as the run's summary counts: the round going on, or once it ended the rounds it completed
        round_ = run.round if not run.done() else run.completed
        status["run"] = {
            "state": RunState.RUNNING if not run.done() else ended,
            "summary": run.summary(),
            "round": round_,
            "overall": run.offset + round_,
            "rounds": run.rounds,
            "answered": answered,
            "asked": asked,
            "workflow": run.workflow.name,
            "view": view_text(run),
            "held": run.held,
        }
    return status


def panel_actions(ctl: Controller) -> dict[str, Callable[[Mapping[str, Any]], str]]:
    """What the panel's buttons do, by the name its requests use."""
    return {
        "stop": lambda args: _stop(ctl, args),
        "remove": lambda args: _remove(ctl, args),
        "detach": lambda args: _detach(ctl, args),
    }


def _stop(ctl: Controller, args: Mapping[str, Any]) -> str:
    run = ctl.active_run
    if run is None:
        raise RuntimeError("no run is going on")
    run.stop()
    return f"stopping the run in round {run.round} of {run.rounds}: clients are told to abort"


def _detach(ctl: Controller, args: Mapping[str, Any]) -> str:
    run = ctl.active_run
    if run is None or not run.detach():
        raise RuntimeError("no notebook cell is waiting on a run")
    return "the run's cell has ended and the run goes on: %fl_status in the notebook shows its dashboard"


def _remove(ctl: Controller, args: Mapping[str, Any]) -> str:
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("remove needs the client's name")
    ctl.remove(name)
    return f"{name} was removed" + ("; the join line is new" if ctl.workshop is not None else "")


def view_text(run: Run) -> str | None:
    """What the panel says about getting a run's dashboard back after a page reload: with a
    cell waiting on the run (a blocking ``%fl_round``) the reloaded page can run nothing
    until Detach lets that cell end."""
    if not run.view_hint:
        return None
    if run.held:
        return f"Page reloaded? A cell waits on this run and holds the notebook: Detach lets it end (the run goes on), then {run.view_hint}"
    return f"Page reloaded? {run.view_hint}"
