"""Workflows decide what a round sends and how results are combined: the controller's
side, run by a run's thread in the controller's kernel. A workflow sees only a
:class:`~nbfl.workflows.base.RoundContext`; the numpy maths it folds results with is
in :mod:`nbfl.aggregators`. Never imports the participant side."""

from functools import partial
from typing import Any, Callable

from .base import RoundContext, RoundFailed, RoundStopped, Workflow
from .cross_site import CrossSiteEval, CrossSiteMatrix
from .cyclic import Cyclic
from .fedopt import FedOpt
from .fedprox import FedProx
from .robust import RobustAggregation
from .scaffold import Scaffold
from .scatter_gather import FedAvg
from .stats import FederatedStatistics

__all__ = [
    "ALGORITHMS",
    "CrossSiteEval",
    "CrossSiteMatrix",
    "Cyclic",
    "FedAvg",
    "FederatedStatistics",
    "FedOpt",
    "FedProx",
    "RobustAggregation",
    "RoundContext",
    "RoundFailed",
    "RoundStopped",
    "Scaffold",
    "Workflow",
    "make_workflow",
]

ALGORITHMS: dict[str, Callable[..., Any]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedopt": partial(FedOpt, "sgd"),
    "fedadam": partial(FedOpt, "adam"),
    "fedyogi": partial(FedOpt, "yogi"),
    "fedadagrad": partial(FedOpt, "adagrad"),
    "scaffold": Scaffold,
    "cyclic": Cyclic,
    "median": partial(RobustAggregation, "median"),
    "trimmed_mean": partial(RobustAggregation, "trimmed_mean"),
    "krum": partial(RobustAggregation, "krum"),
}  # the training workflows, by their %fl_round --algorithm names


def make_workflow(name: str, **options: Any) -> Any:
    """A fresh workflow by its ``%fl_round --algorithm`` name, e.g. ``make_workflow("fedopt", lr=1.0)``."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}: use one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name](**options)
