"""A run's history as tables: one row per round, or one per client per round, for pandas,
CSV and JSON.

``rounds(history)`` and ``clients(history)`` give plain rows (dicts of numbers and
strings); ``frame(history)`` makes a pandas DataFrame of either (``pip install pandas``:
it is imported only there); ``export(history, "run.csv")`` writes either as CSV or JSON
by the file's suffix. ``%fl_export PATH`` does the same for a notebook's controller.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

from .protocol.records import RoundRecord

__all__ = ["clients", "curves", "export", "frame", "rounds"]


def rounds(history: Sequence[RoundRecord]) -> list[dict[str, Any]]:
    """One row per round: number, workflow, status, seconds, bytes out and in, how many
    clients answered, failed and were sampled, and the global model's metrics (a column each)."""
    return [
        {
            "round": r.round,
            "workflow": r.workflow,
            "status": str(r.status),
            "seconds": r.seconds,
            "bytes_out": r.traffic[0],
            "bytes_in": r.traffic[1],
            "clients": len(r.clients),
            "failed": len(r.failed),
            "sampled": len(r.sampled),
            **{f"metric_{k}": v for k, v in r.metrics.items()},
        }
        for r in history
    ]


def clients(history: Sequence[RoundRecord]) -> list[dict[str, Any]]:
    """One row per client per round: the round, the client, whether it answered (``ok``)
    or why not, and the metrics it reported (a column each)."""
    out: list[dict[str, Any]] = []
    for r in history:
        for name, metrics in r.clients.items():
            out.append({"round": r.round, "client": name, "status": "ok", "reason": "", **metrics})
        for name, reason in r.failed.items():
            out.append({"round": r.round, "client": name, "status": "failed", "reason": reason.strip()[-300:]})
    return out


def curves(runs: Sequence[Any], metric: str = "accuracy") -> dict[str, list[tuple[int, float]]]:
    """``{label: [(round within the run, value), ...]}`` of ``metric`` for each run (a
    :class:`~nbfl.Run`), to overlay in one plot. A label is the run's workflow and the
    settings in which the runs differ (a setting all of them share is left out); one that
    repeats gets ``#2``, ``#3``."""
    described = [run.describe() for run in runs]
    shared = set.intersection(*(set(parts[1:]) for parts in described)) if described else set()
    out: dict[str, list[tuple[int, float]]] = {}
    for run, parts in zip(runs, described):
        base = ", ".join([parts[0], *(p for p in parts[1:] if p not in shared)])
        label, n = base, 2
        while label in out:
            label, n = f"{base} #{n}", n + 1
        out[label] = [(i + 1, r.metrics[metric]) for i, r in enumerate(run.history) if metric in r.metrics]
    return out


def frame(history: Sequence[RoundRecord], per_client: bool = False) -> Any:
    """The rows of :func:`rounds` (or :func:`clients`) as a pandas DataFrame."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("a DataFrame needs pandas: pip install pandas (CSV and JSON do not)") from None
    return pd.DataFrame(clients(history) if per_client else rounds(history))


def export(history: Sequence[RoundRecord], path: str | Path, per_client: bool = False) -> Path:
    """Write the rows to ``path``: CSV for ``.csv``, JSON (a list of rows) for ``.json``.
    A metric that is not finite is written as an empty CSV cell, or null in JSON."""
    path = Path(path)
    rows = clients(history) if per_client else rounds(history)
    clean = [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()} for row in rows]
    if path.suffix == ".json":
        path.write_text(json.dumps(clean, indent=1))
    elif path.suffix == ".csv":
        columns = list(dict.fromkeys(k for row in clean for k in row))
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(clean)
    else:
        raise ValueError(f"{path.name}: export writes .csv or .json")
    return path
