"""The seed's comparison on digits: several algorithms, same clients, same seeds.

For each Dirichlet ``alpha`` one controller and ``clients`` client processes start
once; every algorithm then runs from the same initial model for ``rounds`` rounds
(client batches are seeded by round, so each algorithm sees the same data order).
A centrally trained model on the pooled training data is the reference. Where
CIFAR-10 is on disk, :func:`compare_cifar10` does the same with the seed's SimpleNetwork.
``notebooks/02_algorithms.ipynb`` and ``benchmarks/accuracy.py`` both call this.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from .controller.controller import Controller
from .data import load_digits_split, partition
from .data.vision import CIFAR10
from .launch.spawn import spawn_clients, stop_clients
from .participant.client import Client
from .participant.executor import Signal
from .participant.models import DigitsMLP, SimpleNetwork
from .participant.trainers import ArrayTrainer, evaluate_model, evaluator
from .protocol.records import RoundRecord
from .workflows import make_workflow

__all__ = ["COMPARED", "central_accuracy", "cifar10_arrays", "compare", "compare_cifar10", "final_table"]

COMPARED = ("fedavg", "fedprox", "fedopt", "scaffold")
OnRound = Callable[[float, str, RoundRecord], None]


def central_accuracy(seed: int = 0, epochs: int = 40) -> float:
    """Test accuracy of the same network trained on the pooled training data."""
    torch.manual_seed(seed)
    x, y, x_test, y_test = load_digits_split(seed=seed)
    trainer = ArrayTrainer(DigitsMLP(), x, y, epochs=epochs, seed=seed, device="cpu")
    trainer.train(Signal(), 0)
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
    on_round: OnRound | None = None,
) -> list[dict[str, Any]]:
    """Digits in client processes. Rows ``{alpha, algorithm, round, accuracy, loss}``;
    ``options[name]`` go to that algorithm's workflow."""
    _, _, x_test, y_test = load_digits_split(seed=seed)
    rows: list[dict[str, Any]] = []
    for alpha in alphas:
        torch.manual_seed(seed)
        model = DigitsMLP()
        with Controller("tcp://127.0.0.1:0", model, evaluate=evaluator(model, x_test, y_test)) as ctl:
            procs = spawn_clients(ctl.endpoint, clients, partition=f"dirichlet:{alpha}", seed=seed, epochs=epochs)
            try:
                ctl.wait_for_clients(clients, timeout=120)
                rows += _each_algorithm(ctl, algorithms, rounds, alpha, options, on_round)
            finally:
                ctl.close()
                stop_clients(procs)
    return rows


def cifar10_arrays(root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10 from ``root`` (binary version, or torchvision's if installed) as normalized
    float32 ``(N, 3, 32, 32)`` images and int64 labels; FileNotFoundError if absent."""
    out = []
    for train in (True, False):
        data = CIFAR10(root, train=train)
        x = (np.asarray(data.data, np.float32).transpose(0, 3, 1, 2) / 255.0 - 0.5) / 0.5
        out += [x, np.asarray(data.targets, np.int64)]
    return out[0], out[1], out[2], out[3]


def compare_cifar10(
    root: str,
    algorithms: Iterable[str] = COMPARED,
    alpha: float = 0.5,
    *,
    clients: int = 8,
    rounds: int = 20,
    epochs: int = 1,
    seed: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    on_round: OnRound | None = None,
) -> list[dict[str, Any]]:
    """The seed's SimpleNetwork on CIFAR-10; clients run in this process (threads, real sockets),
    sharing the arrays read once instead of each reading 150 MB."""
    x, y, x_test, y_test = cifar10_arrays(root)
    torch.manual_seed(seed)
    model = SimpleNetwork()
    with Controller("tcp://127.0.0.1:0", model, evaluate=evaluator(model, x_test, y_test)) as ctl:
        members = []
        try:
            for i, part in enumerate(partition(f"dirichlet:{alpha}", y, clients, seed)):
                trainer = ArrayTrainer(SimpleNetwork(), x[part], y[part], epochs=epochs, lr=0.01, seed=seed + i)
                members.append(
                    Client(
                        ctl.endpoint, f"site-{i + 1}", trainer, samples=trainer.samples, device=trainer.device
                    ).start()
                )
            return _each_algorithm(ctl, algorithms, rounds, alpha, options, on_round)
        finally:
            for member in members:
                member.stop()


def _each_algorithm(
    ctl: Controller,
    algorithms: Iterable[str],
    rounds: int,
    alpha: float,
    options: Mapping[str, Mapping[str, Any]] | None,
    on_round: OnRound | None,
) -> list[dict[str, Any]]:
    """Every algorithm from the controller's current model, rounds counted from 1 each time."""
    initial = {k: v.copy() for k, v in ctl.weights.items()}
    rows = []
    for name in algorithms:
        ctl.restart({k: v.copy() for k, v in initial.items()})  # round 1 again: the same batches
        workflow = make_workflow(name, **dict((options or {}).get(name, {})))
        for record in ctl.run(rounds, workflow, min_clients=len(ctl.live_clients()), timeout=600):
            rows.append({"alpha": alpha, "algorithm": name, "round": record.round, **record.metrics})
            if on_round is not None:
                on_round(alpha, name, record)
    return rows


def final_table(rows: list[dict[str, Any]], central: float) -> list[dict[str, Any]]:
    """Last-round accuracy per (alpha, algorithm) and its gap to the central model, in points."""
    last: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        last[(row["alpha"], row["algorithm"])] = row
    return [
        {
            "alpha": a,
            "algorithm": n,
            "accuracy": r.get("accuracy", np.nan),
            "central": central,
            "gap_points": 100 * (central - r.get("accuracy", np.nan)),
        }
        for (a, n), r in last.items()
    ]
