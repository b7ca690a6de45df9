"""What ``%fl_round`` shows: a client table, progress, a Stop button and a live plot.

The table and the plot are display handles (HTML and PNG) updated after every round,
so the last frame stays in a saved notebook and in static renders; the progress bars
and the Stop button are ipywidgets. Everything is updated from the cell's own thread,
never printed from another one.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence

import ipywidgets as widgets
from IPython.display import HTML, Image, display

from ..controller import ClientInfo, Controller
from ..transport import PLAINTEXT_NOTE
from .plots import history_png


def clients_html(clients: Iterable[ClientInfo], security: str = "") -> str:
    """The client table: who joined, on what, and how their last round went."""
    rows = []
    for c in clients:
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(c.last_metrics.items()))
        seconds = "" if c.last_seconds is None else f"{c.last_seconds:.2f}"
        rows.append([c.name, c.host, c.device, c.samples, c.state, c.last_round or "", seconds, metrics])
    note = f"<div style='color:#a60'>{html.escape(security)}</div>" if security else ""
    head = ["client", "host", "device", "samples", "state", "round", "seconds", "metrics"]
    return note + _table("nbfl-clients", head, rows)


def history_html(history: Sequence[dict[str, Any]]) -> str:
    """One row per round: status, global metrics, who answered, who failed and why."""
    rows = []
    for r in history:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in r.get("global", {}).items())
        failed = "; ".join(f"{k}: {v.splitlines()[0]}" for k, v in r.get("failed", {}).items())
        rows.append([
            r["round"], r.get("workflow", ""), r.get("status", ""), metrics, privacy_text(r).strip(" ;"),
            len(r.get("clients", {})), failed, f"{r.get('seconds', 0):.2f}",
        ])  # fmt: skip
    head = ["round", "workflow", "status", "global", "privacy", "clients", "failed", "seconds"]
    return _table("nbfl-history", head, rows)


def privacy_text(record: dict[str, Any]) -> str:
    """``; epsilon 3.2 at delta 1e-05`` when clients ran the DP filter: the most any client spent."""
    privacy = record.get("privacy")
    if not privacy:
        return ""
    return f"; epsilon {privacy['epsilon']:.3g} at delta {privacy['delta']:g}"


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


def _table(css_class: str, head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table class='{css_class}'><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


# what a plaintext controller's dashboards say; Controller.security says it for each one
# (CurveZMQ and its number of allowed keys when it runs from a startup kit)
SECURITY_NOTE = PLAINTEXT_NOTE


class Dashboard:
    """Shown by ``%fl_round`` and ``%fl_controller status``; updated on the cell's thread."""

    def __init__(self, controller: Controller, rounds: int = 0):
        self.controller = controller
        self.rounds = widgets.IntProgress(value=0, min=0, max=max(rounds, 1), description="rounds")
        self.answers = widgets.IntProgress(value=0, min=0, max=1, description="this round")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop")
        self.stop_button.on_click(lambda _: controller.stop())
        self.status = widgets.HTML()
        self._table = None
        self._plot = None
        self._start = len(controller.history)

    def show(self, controls: bool = True) -> "Dashboard":
        if controls:
            display(widgets.VBox([widgets.HBox([self.rounds, self.answers, self.stop_button]), self.status]))
        self._table = display(HTML(self._table_html()), display_id=True)
        self._plot = display(self._image(), display_id=True)
        return self

    def on_progress(self, answered: int, asked: int) -> None:
        self.answers.max = max(asked, 1)
        self.answers.value = answered
        self._table.update(HTML(self._table_html()))

    def on_round(self, record: dict[str, Any]) -> None:
        self.rounds.value = len(self.controller.history) - self._start
        g = ", ".join(f"{k} {v:.4f}" for k, v in record["global"].items())
        self.status.value = html.escape(f"round {record['round']}: {record['status']} {g}{privacy_text(record)}")
        self._table.update(HTML(self._table_html()))
        self._plot.update(self._image())

    def done(self) -> None:
        self.stop_button.disabled = True

    def _table_html(self) -> str:
        return clients_html(self.controller.clients, self.controller.security)

    def _image(self) -> Image | HTML:
        if not any(r.get("global") for r in self.controller.history):
            return HTML("<i>the plot appears after the first evaluated round</i>")
        return Image(data=history_png(self.controller.history), format="png")
