"""What ``%fl_round`` shows: a client table, progress, a Stop button and a live plot.

The table and the plot are display handles (HTML and PNG) updated after every round,
so the last frame stays in a saved notebook and in static renders; the progress bars
and the Stop button are ipywidgets. Updates come from the run's thread through those
handles and widgets, never printed, so they land in the dashboard's own cell.

ipywidgets and matplotlib are imported when a dashboard is made, not with this module:
a participant's notebook uses the tables and status lines here and needs neither.
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

from IPython.display import display

from ..controller import Controller
from ..guard import summary
from ..records import ClientInfo, RoundRecord
from ..run import Run
from .cell_context import in_cell
from .text import Html, Png, text_of


LOCAL_ACCURACY = ("local_accuracy", "accuracy")  # what a client's metrics call its own accuracy


def clients_html(clients: Iterable[ClientInfo], security: str = "", global_metrics: Mapping[str, float] | None = None) -> str:
    """The client table: who joined, on what share and device, running whose code, and
    how their last round went; it scrolls inside a fixed height, so a room of thirty
    leaves the plot in view."""
    clients = list(clients)
    rows = []
    for c in clients:
        local = c.last_metrics.get("local_accuracy", c.last_metrics.get("accuracy"))
        others = ", ".join(f"{k} {v:.3g}" for k, v in sorted(c.last_metrics.items()) if k not in LOCAL_ACCURACY)
        code = c.code or ("opts in to %%fl_task" if c.accepts_code else "own")
        rows.append([
            c.name, c.share, code, c.device, c.host, c.samples, _state_text(c), c.last_round or "",
            "" if c.last_seconds is None else f"{c.last_seconds:.2f}", "" if local is None else f"{local:.3f}",
            _traffic_text(c.traffic), others,
        ])  # fmt: skip
    note = f"<div style='color:#a60'>{html.escape(security)}</div>" if security else ""
    states = Counter(c.state for c in clients)
    summary = f"{len(clients)} client{'s' if len(clients) != 1 else ''}" + (
        ": " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())) if clients else ""
    )
    accuracy = (global_metrics or {}).get("accuracy")
    local_head = "local accuracy" + (f" (global {accuracy:.3f})" if accuracy is not None else "")
    head = ["client", "share", "code", "device", "host", "samples", "state", "round (overall)", "seconds", local_head,
            "kB out / in", "metrics"]  # fmt: skip
    table = _table("nbfl-clients", head, rows, sticky=True)
    return f"{note}<div class='nbfl-summary'>{summary}</div><div style='max-height:16em;overflow-y:auto'>{table}</div>"


def _state_text(client: ClientInfo) -> str:
    """Its state, and while its last task failed, why (a missing package, say), so a failing
    participant does not look merely "idle"."""
    return f"{client.state}; last task failed: {client.last_error}" if client.last_error else client.state


def defense_html(report: dict[str, Any]) -> str:
    """What the controller refused (:meth:`Controller.defense`), in the warning colour; nothing if it refused nothing."""
    text = summary(report)
    return f"<div class='nbfl-defense' style='color:#a60'>{html.escape(text)}</div>" if text else ""


def _traffic_text(traffic: tuple[int, int] | None) -> str:
    """Bytes sent to a client and received from it in its last round, in kB."""
    return "" if traffic is None else f"{traffic[0] / 1e3:.1f} / {traffic[1] / 1e3:.1f}"


def join_html(code: Any) -> str:
    """A workshop's join line, to project and paste, with a copy button (for a notebook and a terminal)."""
    line = f"%fl_join {code} --name YOUR_NAME --accept-code"
    shell = f"nbfl client {code} --name YOUR_NAME --accept-code"
    copy = "navigator.clipboard.writeText(this.previousElementSibling.value)"
    return (
        "<div class='nbfl-join'>"
        f"<input class='nbfl-join-line' readonly size='{len(line)}' value='{html.escape(line, quote=True)}' "
        "onclick='this.select()' style='font-family:monospace;line-height:1.5;padding:2px 4px'>"
        f"<button class='nbfl-copy' onclick='{copy}'>copy</button>"
        f"<div style='font-size:smaller'>from a terminal: <code>{html.escape(shell)}</code></div></div>"
    )


def history_html(history: Sequence[RoundRecord]) -> str:
    """One row per round: status, global metrics, who answered, who failed and why."""
    rows = []
    for r in history:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in r.metrics.items())
        failed = "; ".join(f"{k}: {v.splitlines()[0]}" for k, v in r.failed.items())
        rows.append([
            r.round, r.workflow, r.outcome, metrics, privacy_text(r).strip(" ;"), len(r.clients), failed,
            _traffic_text(r.traffic), f"{r.seconds:.2f}",
        ])  # fmt: skip
    head = ["round", "workflow", "status", "global", "privacy", "clients", "failed", "kB out / in", "seconds"]
    return _table("nbfl-history", head, rows)


def privacy_text(record: RoundRecord) -> str:
    """``; epsilon 3.2 at delta 1e-05`` when clients ran the DP filter: the most any client spent."""
    if not record.privacy:
        return ""
    return f"; epsilon {record.privacy['epsilon']:.3g} at delta {record.privacy['delta']:g}"


def failures_html(records: Iterable[RoundRecord]) -> str:
    """Client errors where the user looks, each distinct one once: which clients had it in
    which rounds, then its traceback (the client's own frames; nbfl's are folded there)."""
    seen: dict[str, dict[str, list[int]]] = {}  # reason -> client -> rounds
    for record in records:
        for name, reason in record.failed.items():
            seen.setdefault(reason, {}).setdefault(name, []).append(record.round)
    parts = []
    for reason, where in seen.items():
        who = ", ".join(f"{name} ({'round' if len(r) == 1 else 'rounds'} {', '.join(map(str, r))})" for name, r in where.items())
        first = reason.strip().splitlines()[-1] if reason.strip() else "failed"
        parts.append(
            f"<details open><summary style='color:#b00'>{html.escape(first)}: client {html.escape(who)} failed"
            f"</summary><pre>{html.escape(reason)}</pre></details>"
        )
    return "".join(parts)


def statistics_html(result: dict[str, Any]) -> str:
    """Federated statistics per feature, and which sites withheld theirs and why."""
    rows = [
        [name, result["count"][i], f"{result['mean'][i]:.4g}", f"{result['std'][i]:.4g}",
         f"{result['min'][i]:.4g}", f"{result['max'][i]:.4g}", " ".join(str(n) for n in result["histogram"][i])]
        for i, name in enumerate(result["features"])
    ]  # fmt: skip
    used = f"<div>combined from {html.escape(', '.join(result['clients']))}</div>"
    withheld = "".join(
        f"<div style='color:#a60'>{html.escape(name)} withheld: {html.escape(why)}</div>"
        for name, why in result["withheld"].items()
    )
    table = _table("nbfl-statistics", ["feature", "count", "mean", "std", "min", "max", "histogram"], rows)
    return used + withheld + f"<div style='max-height:24em;overflow:auto'>{table}</div>"


def _table(css_class: str, head: Sequence[str], rows: Iterable[Sequence[Any]], sticky: bool = False) -> str:
    style = " style='position:sticky;top:0;background:var(--jp-layout-color1,#fff)'" if sticky else ""
    header = "".join(f"<th{style}>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table class='{css_class}'><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


class Dashboard:
    """What ``%fl_round`` shows: progress, a Stop button, a status line, the client table,
    the plot and client failures.

    Its callbacks run on the run's thread. The progress bars and the button are
    widgets; the other parts are display handles while the cell blocks (updated in
    place, and kept in a saved notebook) and, for a background run, HTML widgets: once
    its cell has ended, a frontend routes a display update to no cell (JupyterLab
    forgets the cell's request), while widget state still syncs.
    """

    def __init__(self, controller: Controller, rounds: int = 0, *, background: bool = False):
        import ipywidgets as widgets

        self.controller = controller
        self.background = background
        self.rounds = widgets.IntProgress(value=0, min=0, max=max(rounds, 1), description="rounds")
        self.answers = widgets.IntProgress(value=0, min=0, max=1, description="this round")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.stop_button.on_click(lambda _: self.run.stop() if self.run is not None else None)
        self.run: Run | None = None
        self._records: list[RoundRecord] = []  # the followed run's, for the failures shown
        self._status: LivePart
        self._table: LivePart
        self._plot: LivePart
        self._failures: LivePart

    def show(self, controls: bool = True) -> "Dashboard":
        if controls:
            from ipywidgets import HBox

            display(HBox([self.rounds, self.answers, self.stop_button]))
        run = self.controller.active_run
        first = "starting" if controls else run.summary() if run else "no run is going"
        self._status = LivePart(Html(status_html(first)), self.background)
        self._table = LivePart(Html(self._table_html()), self.background)
        self._plot = LivePart(self._image(), self.background)
        self._failures = LivePart(Html(""), self.background)
        return self

    @property
    def headline(self) -> str:
        """The status line's HTML as shown now (the run's summary, as ``%fl_status`` and the panel say it)."""
        return self._status.html

    def follow(self, run: Run) -> None:
        """Show ``run``: its Stop button works from now on. A background run's end is shown
        when it comes; a blocking cell calls :meth:`on_done` itself before it ends, since
        an update sent after the cell has ended would be lost."""
        self.run = run
        self.stop_button.disabled = False
        if self.background:
            run.add_done_callback(in_cell(self.on_done))

    def on_progress(self, answered: int, asked: int) -> None:
        self.answers.max = max(asked, 1)
        self.answers.value = answered
        if self.run is not None:  # a new round began: the headline says which, as the panel does
            self._status.set(Html(status_html(self.run.summary())))
        self._table.set(Html(self._table_html()))

    def on_round(self, record: RoundRecord) -> None:
        self._records.append(record)
        self.rounds.value = len(self._records)
        headline = self.run.summary() + privacy_text(record) if self.run is not None else round_text(record)
        self._status.set(Html(status_html(headline)))
        self._table.set(Html(self._table_html()))
        self._plot.set(self._image())
        if record.failed:
            self._failures.set(Html(failures_html(self._records)))

    def on_done(self, run: Run) -> None:
        """The run ended (finished, stopped or failed): the button goes grey and nothing
        shown stays as it was mid-round (clients "training")."""
        self.stop_button.disabled = True
        error = run.exception()
        troubled = run.stopped or bool(run.failed_rounds)
        color = "#b00" if error is not None else "#a60" if troubled else "#060"
        self._status.set(Html(status_html(run.summary(), color)))
        self._table.set(Html(self._table_html()))
        self._plot.set(self._image())

    def _table_html(self) -> str:
        ctl = self.controller
        last = next((r.metrics for r in reversed(ctl.history) if r.metrics), None)
        join = join_html(ctl.join_code) if ctl.join_code is not None else ""
        return join + defense_html(ctl.defense()) + clients_html(ctl.clients, ctl.security, last)

    def _image(self) -> Png | Html:
        if not any(r.metrics for r in self.controller.history):
            return Html("<i>the plot appears after the first evaluated round</i>")
        from .plots import history_png

        return Png(data=history_png(self.controller.history), format="png")


class TextBoard:
    """``%fl_round`` in terminal IPython: a line per round and, at the end, how the run
    ended and the client table. No widgets (nobody can click them there: Ctrl-C stops a
    run) and no display updated in place (a terminal prints each update again)."""

    def __init__(self, controller: Controller, rounds: int = 0, *, background: bool = False):
        self.controller, self.background = controller, background
        self.run: Run | None = None

    def show(self, controls: bool = True) -> "TextBoard":
        if not controls:  # a status, not a run: the table now
            print(text_of(self._table_html()))
        return self

    def follow(self, run: Run) -> None:
        self.run = run
        if self.background:
            run.add_done_callback(self.on_done)

    def on_progress(self, answered: int, asked: int) -> None:
        """Nothing: a line per answer would bury the rounds."""

    def on_round(self, record: RoundRecord) -> None:
        print(round_text(record, self.run), flush=True)

    def on_done(self, run: Run) -> None:
        print(run.summary(), flush=True)
        print(text_of(self._table_html() + failures_html(run.history)), flush=True)

    def _table_html(self) -> str:
        ctl = self.controller
        return clients_html(ctl.clients, ctl.security)


def round_text(record: RoundRecord, run: Run | None = None) -> str:
    """One round in a line: its number (in ``run``'s count and overall, as :meth:`Run.label`
    says), outcome, global metrics and privacy spent."""
    g = ", ".join(f"{k} {v:.4f}" for k, v in record.metrics.items())
    where = run.label(record.round - run.offset) if run is not None else f"round {record.round}"
    return f"{where}: {record.outcome} {g}{privacy_text(record)}"


class LivePart:
    """One changing part of a dashboard (or a participant's status line): a display handle,
    or an HTML widget (``widget``), whose state still syncs after its cell has ended."""

    def __init__(self, content: Html | Png, widget: bool):
        self._widget = None
        if widget:  # ipywidgets is the notebook extra's: a participant's small install has none
            import ipywidgets

            self._widget = ipywidgets.HTML(_as_html(content))
        self._handle = display(self._widget or content, display_id=not widget)
        self.html = _as_html(content)  # what it shows now

    def set(self, content: Html | Png) -> None:
        self.html = _as_html(content)
        if self._widget is not None:
            self._widget.value = self.html
        else:
            self._handle.update(content)


def _as_html(content: Html | Png) -> str:
    if isinstance(content, Png):
        return f"<img src='data:image/png;base64,{base64.b64encode(content.data).decode()}'>"
    return content.data


def status_html(text: str, color: str = "inherit") -> str:
    """The one-line status a dashboard, %fl_status and %fl_stop show."""
    return f"<div class='nbfl-status' style='color:{color}'><b>{html.escape(text)}</b></div>"
