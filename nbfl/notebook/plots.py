"""The per-round plot as PNG bytes (matplotlib, headless), for display handles."""

from __future__ import annotations

import io
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg", force=False)  # no GUI backend needed: the PNG goes into the notebook
import matplotlib.pyplot as plt  # noqa: E402


def history_png(history: Sequence[dict[str, Any]], width: float = 7.5, height: float = 2.8) -> bytes:
    """Global accuracy and loss per round, the two side by side."""
    rounds = [r["round"] for r in history if r.get("global")]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(width, height), dpi=90)
    for ax, key, colour in ((acc_ax, "accuracy", "tab:blue"), (loss_ax, "loss", "tab:red")):
        values = [r["global"].get(key) for r in history if r.get("global")]
        points = [(n, v) for n, v in zip(rounds, values) if v is not None]
        if points:
            ax.plot(*zip(*points), marker="o", color=colour)
        ax.set_title(f"global {key}")
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    if any(r["global"].get("accuracy") is not None for r in history if r.get("global")):
        acc_ax.set_ylim(0, 1)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
