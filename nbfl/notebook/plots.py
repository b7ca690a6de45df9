"""Plots as PNG bytes for display handles: rounds, cross-site matrix, labels per client.

Figures are made with ``matplotlib.figure.Figure``, not pyplot, so loading nbfl leaves
the notebook's own pyplot backend (inline plots) as it was.
"""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence, cast

import numpy as np
from matplotlib.figure import Figure

from ..protocol.records import RoundRecord

MARKED = 40  # rounds up to which each round gets a marker; beyond, markers would merge into a blob


def history_png(history: Sequence[RoundRecord], width: float = 7.5, height: float = 2.8, dpi: int = 90) -> bytes:
    """Global accuracy and loss per round as a PNG (:func:`history_figure`)."""
    return _png(history_figure(history, width, height, dpi))


def history_figure(history: Sequence[RoundRecord], width: float = 7.5, height: float = 2.8, dpi: int = 90) -> Figure:
    """Global accuracy and loss per round, the two side by side; rounds are whole numbers
    on the axis (a 4-round run has no round 2.5), and a long run is a line, not a blob of markers."""
    from matplotlib.ticker import MaxNLocator

    rated = [r for r in history if r.metrics]
    fig = Figure(figsize=(width, height), dpi=dpi)
    acc_ax, loss_ax = fig.subplots(1, 2)
    for ax, key, colour in ((acc_ax, "accuracy", "tab:blue"), (loss_ax, "loss", "tab:red")):
        points = [(r.round, r.metrics[key]) for r in rated if key in r.metrics]
        if points:
            ax.plot(*zip(*points), marker="o" if len(points) <= MARKED else None, color=colour)
        ax.set_title(f"global {key}")
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.grid(alpha=0.3)
    if any("accuracy" in r.metrics for r in rated):
        acc_ax.set_ylim(0, 1)
    return fig


def runs_png(curves: Mapping[str, Sequence[tuple[int, float]]], metric: str = "accuracy") -> bytes:
    """Several runs' ``metric`` per round in one plot, a line each, labelled (:func:`nbfl.results.curves`)."""
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7.5, 3.4), dpi=90)
    ax = fig.subplots()
    for i, (label, points) in enumerate(curves.items()):
        if points:
            ax.plot(*zip(*points), label=label, color=_tab10(i), marker="o" if len(points) <= MARKED else None)
    ax.set_xlabel("round of the run")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per round, run by run")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def cross_site_png(models: Sequence[str], sites: Sequence[str], values: Any, metric: str = "accuracy") -> bytes:
    """The cross-site matrix as a heatmap: rows models, columns sites, each cell labelled.

    ``values`` may be the round record's nested lists, where None marks a cell no site
    answered; such cells stay blank ("n/a") so a missing answer is not read as a score.
    """
    grid = np.array(values, dtype=float).reshape(len(models), len(sites))
    fig = Figure(figsize=(1.3 * len(sites) + 2.5, 0.5 * len(models) + 1.6), dpi=90)
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_xticks(range(len(sites)), labels=list(sites))
    ax.set_yticks(range(len(models)), labels=list(models))
    ax.set_xlabel("data of site")
    ax.set_ylabel("model")
    ax.set_title(f"cross-site {metric}")
    for (i, j), value in np.ndenumerate(grid):
        missing = np.isnan(value)
        dark = not missing and cast(float, image.norm(value)) < 0.5  # viridis is dark at the low end
        label = "n/a" if missing else f"{value:.3g}"
        ax.text(j, i, label, ha="center", va="center", color="white" if dark else "black")
    return _png(fig)


BARS = 40  # clients drawn as bars at most; more are a heatmap


def labels_png(counts: Mapping[str, Sequence[int]], title: str = "labels per client") -> bytes:
    """Samples of each class per client as stacked bars: how skewed a partition is. Over
    :data:`BARS` clients (a simulation's thousand), a heatmap of each client's share of
    each class instead, one column a client."""
    names = list(counts)
    classes = max((len(c) for c in counts.values()), default=0)
    grid = np.zeros((len(names), classes))
    for row, name in enumerate(names):
        grid[row, : len(counts[name])] = counts[name]
    if len(names) > BARS:
        return _labels_heatmap(names, grid, title)
    fig = Figure(figsize=(min(0.32 * len(names) + 2.5, 14), 3.2), dpi=90)
    ax = fig.subplots()
    bottom = np.zeros(len(names))
    for label in range(classes):
        ax.bar(range(len(names)), grid[:, label], bottom=bottom, label=str(label), color=_tab10(label))
        bottom += grid[:, label]
    ax.set_xticks(range(len(names)), labels=names, rotation=90 if len(names) > 8 else 0, fontsize=8)
    ax.set_ylabel("samples")
    ax.set_title(title)
    ax.legend(title="class", fontsize=7, ncols=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def _labels_heatmap(names: list[str], grid: np.ndarray, title: str) -> bytes:
    shares = grid / np.maximum(grid.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(10, 3.2), dpi=90)
    ax = fig.subplots()
    image = ax.imshow(shares.T, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    ticks = np.linspace(0, len(names) - 1, 6).round().astype(int)
    ax.set_xticks(ticks, labels=[names[i] for i in ticks], fontsize=8)
    ax.set_yticks(range(grid.shape[1]))
    ax.set_ylabel("class")
    ax.set_title(f"{title}: {len(names)} clients, each a column")
    fig.colorbar(image, ax=ax, label="share of the client's samples")
    return _png(fig)


def _tab10(i: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10"](i % 10)


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
