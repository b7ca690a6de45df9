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
import threading
import time
from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Sequence

from IPython.display import display

from ..controller.controller import Controller
from ..controller.run import Run
from ..protocol.records import ClientInfo, RoundRecord
from ..transport.guard import summary
from .cell_context import in_cell
from .text import Html, text_of

LOCAL_ACCURACY = ("local_accuracy", "accuracy")  # what a client's metrics call its own accuracy
BOARD_EVERY = 0.5  # seconds between the board's updates as results come in (each round's end updates it at once)


STYLE = """<style>
.nbfl-dash{color:var(--jp-ui-font-color1,#111);font-size:var(--jp-ui-font-size1,13px);line-height:1.4;
  max-width:100%;overflow-x:hidden;font-family:var(--jp-ui-font-family,sans-serif)}
.nbfl-dash table.nbfl-clients{border-collapse:collapse;table-layout:fixed;width:100%;margin:0;border:none;
  font-size:inherit;color:inherit}
.nbfl-dash table.nbfl-clients th,.nbfl-dash table.nbfl-clients td{padding:1px 4px;text-align:left;
  vertical-align:middle;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;border:none;line-height:1.6;
  max-width:none}
.nbfl-dash table.nbfl-clients thead th{position:sticky;top:0;z-index:1;font-weight:600;
  font-size:0.92em;background:var(--jp-layout-color1,#fff);border-bottom:1px solid var(--jp-border-color1,#bbb)}
.nbfl-dash table.nbfl-clients tbody tr{background:var(--jp-layout-color1,#fff)}
.nbfl-dash table.nbfl-clients tbody tr:nth-child(odd){background:var(--jp-rendermime-table-row-background,#f5f5f5)}
.nbfl-dash table.nbfl-clients tbody tr:hover{background:var(--jp-rendermime-table-row-hover-background,#e1f2fe)}
.nbfl-dash .nbfl-failing{color:var(--jp-error-color1,#b00)}
.nbfl-dash .nbfl-muted{color:var(--jp-ui-font-color2,#666)}
.nbfl-dash .nbfl-top{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:flex-start}
.nbfl-dash .nbfl-top>div{flex:1 1 340px;min-width:0}
.nbfl-dash .nbfl-top>div.nbfl-plot{flex:0 1 360px}
.nbfl-dash .nbfl-plot img{display:block;width:100%;height:auto;max-width:360px}
body[data-jp-theme-light='false'] .nbfl-dash .nbfl-plot img{filter:invert(0.88) hue-rotate(180deg)}
.nbfl-dash .nbfl-join-line{font-family:var(--jp-code-font-family,monospace);font-size:max(18px,1.4em);line-height:1.3;
  overflow-wrap:anywhere;user-select:all;padding:2px 0}
.nbfl-dash .nbfl-copy{font-size:var(--jp-ui-font-size1,13px);padding:3px 14px;margin:2px 8px 2px 0;border:none;
  border-radius:var(--jp-border-radius,2px);color:var(--jp-ui-inverse-font-color1,#fff);cursor:pointer;
  background:var(--jp-brand-color1,#1976d2)}
.nbfl-dash .nbfl-copy:hover{background:var(--jp-brand-color0,#0d47a1)}
.nbfl-dash .nbfl-shell{font-size:0.92em;overflow-wrap:anywhere}
.nbfl-dash .nbfl-table{max-height:17em;overflow-y:auto;overflow-x:hidden}
</style>"""
"""The dashboard's own look, scoped to ``.nbfl-dash`` and drawn from JupyterLab's theme
variables: the same in a blocking run's outputs and a background run's widgets (which
lack JupyterLab's table styling), in the light and the dark theme. The table has fixed
columns that cut long cells (their whole text in a tooltip), so a dashboard never
scrolls sideways; the plot, drawn on white, is inverted in a dark theme."""

# column, its share of the table's width (%), and its tooltip
COLUMNS = (
    ("client", 16, "the name it joined with"),
    ("share", 5, "its part of the data"),
    ("code", 8, "what it runs: %%fl_task code, or its own trainer (opts in: it would run %%fl_task code)"),
    ("device", 5, ""),
    ("host", 6, ""),
    ("samples", 6, ""),
    ("state", 15, "what it does now; a failed last task in red"),
    ("round (overall)", 9, "the last round it answered, counted over the controller's life"),
    ("seconds", 6, "its last round's time"),
    ("accuracy", 7, "its model's accuracy on its own data"),
    ("bytes out/in", 9, "sent to it and received from it in its last round"),
    ("metrics", 8, "its other metrics"),
)
GONE = ("removed", "left")  # collapsed into one line under the table
ORDER = {"training": 0, "idle": 0, "joining": 1, "lost": 2}  # active first
ROWS = 100  # rows a table shows at most: a simulation's thousand clients would make every update heavy
GONE_NAMED = 20  # names the "gone" line lists at most


def clients_html(
    clients: Iterable[ClientInfo],
    security: str = "",
    global_metrics: Mapping[str, float] | None = None,
    search: str = "",
) -> str:
    """The client table, styled, as ``%fl_clients`` and ``%fl_spawn`` show it (:func:`_clients_part`)."""
    return f"{STYLE}<div class='nbfl-dash'>{_clients_part(clients, security, global_metrics, search)}</div>"


def _clients_part(
    clients: Iterable[ClientInfo],
    security: str = "",
    global_metrics: Mapping[str, float] | None = None,
    search: str = "",
) -> str:
    """The client table: who joined, on what share and device, running whose code, and
    how their last round went. Active clients come first, the latest to train first among
    them; removed and left ones are one line under it. It scrolls inside a fixed height and
    never sideways, so a room of thirty leaves the plot in view, and at 1280x720 eight rows
    show. A simulation's thousand clients are counted by state in the summary line, and
    the table shows :data:`ROWS` of them, or those whose name contains ``search``."""
    clients = list(clients)
    gone = [c for c in clients if c.state in GONE]
    shown = sorted(
        (c for c in clients if c.state not in GONE and search in c.name),
        key=lambda c: (ORDER.get(c.state, 3), -(c.last_round or 0), c.name),
    )
    rows = []
    for c in shown[:ROWS]:
        local = c.last_metrics.get("local_accuracy", c.last_metrics.get("accuracy"))
        others = ", ".join(f"{k} {v:.3g}" for k, v in sorted(c.last_metrics.items()) if k not in LOCAL_ACCURACY)
        code = c.code or "own"
        if c.accepts_code and code == "own":
            code = "own (opts in)"
        failing = " class='nbfl-failing'" if c.last_error else ""
        cells = [
            c.name,
            c.share,
            code,
            c.device,
            c.host,
            c.samples,
            _state_text(c),
            c.last_round or "",
            _seconds_text(c.last_seconds),
            "" if local is None else f"{local:.3f}",
            _bytes_text(c.traffic),
            others,
        ]
        rows.append("<tr>" + "".join(_cell(v, failing if i == 6 else "") for i, v in enumerate(cells)) + "</tr>")
    note = f"<div>{security_html(security)}</div>" if security else ""
    states = Counter(c.state for c in clients)
    summary = f"{len(clients)} client{'s' if len(clients) != 1 else ''}" + (
        ": " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())) if clients else ""
    )
    accuracy = (global_metrics or {}).get("accuracy")
    if accuracy is not None:
        summary += f"; global accuracy {accuracy:.3f}"
    if search:
        summary += f"; {len(shown)} named *{search}*"
    if len(shown) > ROWS:
        summary += f"; the table shows {ROWS} (the latest to train first): %fl_clients TEXT finds names"
    left = ""
    if gone:
        names = ", ".join(f"{c.name} ({c.state})" for c in gone[:GONE_NAMED])
        if len(gone) > GONE_NAMED:
            names += f" and {len(gone) - GONE_NAMED} more"
        left = f"<div class='nbfl-gone nbfl-muted' title='{html.escape(names, quote=True)}'>gone: {html.escape(names)}</div>"
    cols = "".join(f"<col style='width:{w}%'>" for _, w, _ in COLUMNS)
    head = "".join(
        f"<th title='{html.escape(t, quote=True)}'>{h}</th>" if t else f"<th>{h}</th>" for h, _, t in COLUMNS
    )
    table = (
        f"<table class='nbfl-clients'><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    return f"{note}<div class='nbfl-summary'>{html.escape(summary)}</div><div class='nbfl-table'>{table}</div>{left}"


def security_html(security: str) -> str:
    """The controller's security line (:attr:`Controller.security`), in one colour wherever it
    shows: green when connections are encrypted, the warning colour when they are not."""
    colour = "var(--jp-success-color1,#060)" if security.startswith("CurveZMQ") else "var(--jp-warn-color0,#a60)"
    return f"<span class='nbfl-security' style='color:{colour}'>{html.escape(security)}</span>"


def _cell(value: Any, attrs: str = "") -> str:
    """A table cell; one long enough to be cut carries its whole text as a tooltip."""
    text = str(value)
    tip = f" title='{html.escape(text, quote=True)}'" if len(text) > 10 else ""
    return f"<td{attrs}{tip}>{html.escape(text)}</td>"


def _state_text(client: ClientInfo) -> str:
    """Its state, and while its last task failed, why (a missing package, say), so a failing
    participant does not look merely "idle"."""
    return f"last task failed ({client.state}): {client.last_error}" if client.last_error else client.state


def _seconds_text(seconds: float | None) -> str:
    """``0.06``, ``5.43``, ``123``: at most five characters for most rounds."""
    if seconds is None:
        return ""
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.0f}"


def _bytes_text(traffic: tuple[int, int] | None) -> str:
    """Bytes sent to a client and received from it, short: ``31k/8.2k``."""
    return "" if traffic is None else f"{compact(traffic[0])}/{compact(traffic[1])}"


def compact(n: float) -> str:
    """A count short enough for a narrow column, with a k, M or G: ``980``, ``5.7k``, ``31k``, ``1.3M``."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f}{unit}" if abs(value) < 10 else f"{value:.0f}{unit}"
    return f"{n:.0f}"


def defense_html(report: dict[str, Any]) -> str:
    """What the controller refused (:meth:`Controller.defense`), in the warning colour; nothing if it refused nothing."""
    text = summary(report)
    return f"<div class='nbfl-defense' style='color:#a60'>{html.escape(text)}</div>" if text else ""


def _traffic_text(traffic: tuple[int, int] | None) -> str:
    """Bytes sent to a client and received from it in its last round, in kB (the history's unit)."""
    return "" if traffic is None else f"{traffic[0] / 1e3:.1f} / {traffic[1] / 1e3:.1f}"


# the copy button: the clipboard where the page may use it, else the line selected for Ctrl+C; it says which
COPY = (
    "const b=this,line=b.closest('.nbfl-join').querySelector('.nbfl-join-line');"
    "const said=t=>{b.textContent=t;setTimeout(()=>{b.textContent='copy'},2500)};"
    "const select=()=>{const r=document.createRange();r.selectNodeContents(line);"
    "const s=getSelection();s.removeAllRanges();s.addRange(r);"
    "said(document.execCommand('copy')?'copied':'selected: press Ctrl+C')};"
    "if(navigator.clipboard){navigator.clipboard.writeText(line.textContent).then(()=>said('copied'),select)}"
    "else{select()}"
)


def join_html(code: Any) -> str:
    """A workshop's join line, to project and paste, with a copy button (for a notebook and a terminal)."""
    return f"{STYLE}<div class='nbfl-dash'>{_join_part(code)}</div>"


def _join_part(code: Any) -> str:
    """The join line large enough to read from the back of a room, wrapped rather than cut."""
    line = f"%fl_join {code} --name YOUR_NAME --accept-code"
    return (
        "<div class='nbfl-join'>"
        f"<div class='nbfl-join-line' title='select it, or press copy'>{html.escape(line)}</div>"
        f"<button class='nbfl-copy' onclick=\"{html.escape(COPY, quote=True)}\">copy</button>"
        "<span class='nbfl-shell nbfl-muted'>from a terminal: the same line with <code>nbfl client</code> "
        "for <code>%fl_join</code></span></div>"
    )


def history_html(history: Sequence[RoundRecord]) -> str:
    """One row per round: status, global metrics, who answered, who failed and why."""
    rows = []
    for r in history:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in r.metrics.items())
        failed = "; ".join(f"{k}: {v.splitlines()[0]}" for k, v in r.failed.items())
        rows.append(
            [
                r.round,
                r.workflow,
                r.outcome,
                metrics,
                privacy_text(r).strip(" ;"),
                len(r.clients),
                failed,
                _traffic_text(r.traffic),
                f"{r.seconds:.2f}",
            ]
        )
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
        who = ", ".join(
            f"{name} ({'round' if len(r) == 1 else 'rounds'} {', '.join(map(str, r))})" for name, r in where.items()
        )
        first = reason.strip().splitlines()[-1] if reason.strip() else "failed"
        parts.append(
            f"<details open><summary style='color:#b00'>{html.escape(first)}: client {html.escape(who)} failed"
            f"</summary><pre>{html.escape(reason)}</pre></details>"
        )
    return "".join(parts)


def statistics_html(result: dict[str, Any]) -> str:
    """Federated statistics per feature, and which sites withheld theirs and why."""
    rows = [
        [
            name,
            result["count"][i],
            f"{result['mean'][i]:.4g}",
            f"{result['std'][i]:.4g}",
            f"{result['min'][i]:.4g}",
            f"{result['max'][i]:.4g}",
            " ".join(str(n) for n in result["histogram"][i]),
        ]
        for i, name in enumerate(result["features"])
    ]
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
        self._plot_html = ""  # the plot as last drawn: redrawn per round, not per answer
        self._board_at = 0.0  # time.monotonic() of the board's last update
        self._status: LivePart
        self._board: LivePart
        self._failures: LivePart

    def show(self, controls: bool = True) -> "Dashboard":
        if controls:  # Stop first: it stays in view however narrow the page
            from ipywidgets import HBox, Layout

            display(HBox([self.stop_button, self.rounds, self.answers], layout=Layout(flex_flow="row wrap")))
        run = self.controller.active_run
        first = run.summary() if run else "starting" if controls else "no run is going"
        self._status = LivePart(Html(status_html(first)), self.background)
        self._plot_html = self._image()
        self._board = LivePart(Html(self._board_html()), self.background)
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
        self.rounds.max = max(run.rounds, 1)
        self.rounds.value = run.completed
        self._records = list(run.history)
        self.stop_button.disabled = run.done()
        if self.background:
            run.add_done_callback(in_cell(self.on_done))

    def on_progress(self, answered: int, asked: int) -> None:
        """A result came in (or a round began): the progress bar and headline at once; the
        board (the table, with the plot's image in it) at most every :data:`BOARD_EVERY`
        seconds, so thirty answers a round do not send the plot thirty times."""
        self.answers.max = max(asked, 1)
        self.answers.value = answered
        if self.run is not None:  # a new round began: the headline says which, as the panel does
            self._status.set(Html(status_html(self.run.summary(), self._colour(self.run))))
        if time.monotonic() - self._board_at >= BOARD_EVERY:
            self._set_board()

    def _set_board(self) -> None:
        self._board_at = time.monotonic()
        self._board.set(Html(self._board_html()))

    def on_round(self, record: RoundRecord) -> None:
        self._records.append(record)
        self.rounds.value = self.run.completed if self.run is not None else len(self._records)
        if self.run is not None:
            self._status.set(Html(status_html(self.run.summary() + privacy_text(record), self._colour(self.run))))
        else:
            self._status.set(Html(status_html(round_text(record))))
        self._plot_html = self._image()
        self._set_board()
        if record.failed:
            self._failures.set(Html(failures_html(self._records)))

    def on_done(self, run: Run) -> None:
        """The run ended (finished, stopped or failed): the button goes grey and nothing
        shown stays as it was mid-round (clients "training")."""
        self.stop_button.disabled = True
        self._status.set(Html(status_html(run.summary(), self._colour(run))))
        self._plot_html = self._image()
        self._set_board()
        if any(r.failed for r in run.history):
            self._failures.set(Html(failures_html(run.history)))

    @staticmethod
    def _colour(run: Run) -> str:
        """Red for a run that failed, orange for one stopped or with failures (rounds or
        clients), green for one finished clean, the theme's colour while it runs clean."""
        troubled = run.stopped or bool(run.failed_rounds) or any(r.failed for r in run.history)
        if not run.done():
            return "var(--jp-warn-color0,#a60)" if troubled else "inherit"
        if run.exception() is not None:
            return "var(--jp-error-color1,#b00)"
        return "var(--jp-warn-color0,#a60)" if troubled else "var(--jp-success-color1,#060)"

    def _board_html(self) -> str:
        """The join line (and what the controller refused) beside the plot, then the client table."""
        ctl = self.controller
        last = next((r.metrics for r in reversed(ctl.history) if r.metrics), None)
        side = (_join_part(ctl.join_code) if ctl.join_code is not None else "") + defense_html(ctl.defense())
        side += f"<div>{security_html(ctl.security)}</div>" if ctl.security else ""
        top = f"<div>{side}</div><div class='nbfl-plot'>{self._plot_html}</div>"
        clients = _clients_part(ctl.clients, "", last)
        return f"{STYLE}<div class='nbfl-dash nbfl-board'><div class='nbfl-top'>{top}</div>{clients}</div>"

    def _image(self) -> str:
        if not any(r.metrics for r in self.controller.history):
            return "<i class='nbfl-muted'>the plot appears after the first evaluated round</i>"
        from .plots import history_png

        png = history_png(self.controller.history, width=4.4, height=2.2, dpi=100)
        return f"<img alt='global accuracy and loss per round' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


class Views:
    """Every view of one run: the dashboard of the cell that started it, and any shown
    again later by ``%fl_status`` (after a page reload, say). The run calls these two
    methods; each view's update runs in the context of the cell that made it, so its
    output lands there."""

    def __init__(self, first: "Dashboard | TextBoard"):
        self._views: list[tuple[Callable[[RoundRecord], None], Callable[[int, int], None]]] = []
        self._lock = threading.Lock()
        self.add(first)

    def add(self, view: "Dashboard | TextBoard") -> None:
        with self._lock:
            self._views.append((in_cell(view.on_round), in_cell(view.on_progress)))

    def on_round(self, record: RoundRecord) -> None:
        with self._lock:
            views = list(self._views)
        for on_round, _ in views:
            on_round(record)

    def on_progress(self, answered: int, asked: int) -> None:
        with self._lock:
            views = list(self._views)
        for _, on_progress in views:
            on_progress(answered, asked)


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

    def __init__(self, content: Html, widget: bool):
        self._widget = None
        if widget:  # ipywidgets is the notebook extra's: a participant's small install has none
            import ipywidgets

            self._widget = ipywidgets.HTML(content.data)
        self._handle = display(self._widget or content, display_id=not widget)
        self.html = content.data  # what it shows now

    def set(self, content: Html) -> None:
        self.html = content.data
        if self._widget is not None:
            self._widget.value = self.html
        else:
            self._handle.update(content)


def status_html(text: str, color: str = "inherit") -> str:
    """The one-line status a dashboard, %fl_status and %fl_stop show, large enough for a projector."""
    return f"<div class='nbfl-status' style='color:{color};font-size:1.1em'><b>{html.escape(text)}</b></div>"
