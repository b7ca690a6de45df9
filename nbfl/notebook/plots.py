"""Plots as PNG bytes (matplotlib, headless), for display handles: rounds, cross-site matrix."""

from __future__ import annotations

import io
from typing import Any, Sequence

import matplotlib
import numpy as np

from ..records import RoundRecord

matplotlib.use("Agg", force=False)  # no GUI backend needed: the PNG goes into the notebook
import matplotlib.pyplot as plt  # noqa: E402


def history_png(history: Sequence[RoundRecord], width: float = 7.5, height: float = 2.8) -> bytes:
    """Global accuracy and loss per round, the two side by side."""
    rated = [r for r in history if r.metrics]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(width, height), dpi=90)
    for ax, key, colour in ((acc_ax, "accuracy", "tab:blue"), (loss_ax, "loss", "tab:red")):
        points = [(r.round, r.metrics[key]) for r in rated if key in r.metrics]
        if points:
            ax.plot(*zip(*points), marker="o", color=colour)
        ax.set_title(f"global {key}")
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    if any("accuracy" in r.metrics for r in rated):
        acc_ax.set_ylim(0, 1)
    return _png(fig)


def cross_site_png(models: Sequence[str], sites: Sequence[str], values: Any, metric: str = "accuracy") -> bytes:
    """The cross-site matrix as a heatmap: rows models, columns sites, each cell labelled.

    ``values`` may be the round record's nested lists, where None marks a cell no site
    answered; such cells stay blank ("n/a") so a missing answer is not read as a score.
    """
    grid = np.array(values, dtype=float).reshape(len(models), len(sites))
    fig, ax = plt.subplots(figsize=(1.3 * len(sites) + 2.5, 0.5 * len(models) + 1.6), dpi=90)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_xticks(range(len(sites)), labels=list(sites))
    ax.set_yticks(range(len(models)), labels=list(models))
    ax.set_xlabel("data of site")
    ax.set_ylabel("model")
    ax.set_title(f"cross-site {metric}")
    for (i, j), value in np.ndenumerate(grid):
        missing = np.isnan(value)
        dark = not missing and image.norm(value) < 0.5  # viridis is dark at the low end
        label = "n/a" if missing else f"{value:.3g}"
        ax.text(j, i, label, ha="center", va="center", color="white" if dark else "black")
    return _png(fig)


def _png(fig: Any) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
