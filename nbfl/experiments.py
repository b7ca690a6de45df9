"""The seed's comparison on digits: several algorithms, same clients, same seeds.

For each Dirichlet ``alpha`` one controller and ``clients`` client processes start
once; every algorithm then runs from the same initial model for ``rounds`` rounds
(client batches are seeded by round, so each algorithm sees the same data order).
A centrally trained model on the pooled training data is the reference.
``notebooks/02_algorithms.ipynb`` and ``benchmarks/accuracy.py`` both call this.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from .controller import Controller
from .data import load_digits_split
from .models import DigitsMLP
from .spawn import spawn_clients, stop_clients
from .trainers import ArrayTrainer, evaluate_model, evaluator
from .workflows import make_workflow

COMPARED = ("fedavg", "fedprox", "fedopt", "scaffold")


def central_accuracy(seed: int = 0, epochs: int = 40) -> float:
    """Test accuracy of the same network trained on the pooled training data."""
    torch.manual_seed(seed)
    x, y, x_test, y_test = load_digits_split(seed=seed)
    trainer = ArrayTrainer(DigitsMLP(), x, y, epochs=epochs, seed=seed, device="cpu")
    trainer.train(_NeverAbort(), 0)
    return evaluate_model(trainer.model, x_test, y_test)["accuracy"]


def compare(
    algorithms: Iterable[str] = COMPARED,
    alphas: Iterable[float] = (0.1, 0.5),
    *,
    clients: int = 8,
    rounds: int = 20,
    epochs: int = 5,
    seed: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    on_round: Callable[[float, str, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{alpha, algorithm, round, accuracy, loss}``; ``options[name]`` go to the workflow."""
    _, _, x_test, y_test = load_digits_split(seed=seed)
    rows = []
    for alpha in alphas:
        torch.manual_seed(seed)
        model = DigitsMLP()
        initial = {k: v.detach().clone().numpy() for k, v in model.state_dict().items()}
        with Controller("tcp://127.0.0.1:0", initial, evaluate=evaluator(model, x_test, y_test)) as ctl:
            procs = spawn_clients(ctl.endpoint, clients, partition=f"dirichlet:{alpha}", seed=seed, epochs=epochs)
            try:
                ctl.wait_for_clients(clients, timeout=120)
                for name in algorithms:
                    ctl.weights = {k: v.copy() for k, v in initial.items()}
                    ctl.history.clear()  # rounds count from 1 again: same batches as the others
                    workflow = make_workflow(name, **dict((options or {}).get(name, {})))
                    for record in ctl.run(rounds, workflow, min_clients=clients, timeout=300):
                        rows.append({"alpha": alpha, "algorithm": name, "round": record["round"], **record["global"]})
                        if on_round is not None:
                            on_round(alpha, name, record)
            finally:
                ctl.close()
                stop_clients(procs)
    return rows


def final_table(rows: list[dict[str, Any]], central: float) -> list[dict[str, Any]]:
    """Last-round accuracy per (alpha, algorithm) and its gap to the central model, in points."""
    last: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        last[(row["alpha"], row["algorithm"])] = row
    return [
        {"alpha": a, "algorithm": n, "accuracy": r.get("accuracy", np.nan), "central": central,
         "gap_points": 100 * (central - r.get("accuracy", np.nan))}
        for (a, n), r in last.items()
    ]  # fmt: skip


class _NeverAbort:
    triggered = False
