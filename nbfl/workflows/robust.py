"""Scatter-gather with a robust rule instead of the mean: median, trimmed mean, Krum.

Every checked result is kept as full weights (a WEIGHT_DIFF ``d`` becomes ``g + d``)
until the round's results are in, then :mod:`nbfl.aggregators.robust` combines them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..aggregators import robust
from ..protocol import names
from ..protocol.weights import UpdateError, Weights, full_weights
from .base import RoundFailed, needs_results
from .registry import register

if TYPE_CHECKING:
    from .base import RoundContext


class RobustAggregation:
    """``rule``: ``median``, ``trimmed_mean`` (``beta``) or ``krum`` (``f`` attackers, ``m`` kept)."""

    trains = True

    def __init__(
        self,
        rule: str = "median",
        task_name: str = names.TRAIN,
        *,
        beta: float = 0.2,
        f: int = 1,
        m: int = 1,
        task_meta: dict[str, Any] | None = None,
    ):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}: use one of {', '.join(RULES)}")
        self.rule, self.name = rule, rule
        self.task_name = task_name
        self.beta, self.f, self.m = beta, f, m
        self.task_meta = dict(task_meta or {})

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        models: list[Weights] = []
        for result in run.scatter(self.task_name, weights, meta=self.task_meta):
            try:
                models.append(full_weights(result.weights, result.kind, weights))
            except UpdateError as exc:
                run.reject(result, exc)
        needs_results(run, len(models))
        try:
            return RULES[self.rule](self, models)
        except ValueError as exc:  # Krum with too few results for its f
            raise RoundFailed(str(exc)) from None


# each rule: how it combines the round's full models; each is an --algorithm name of its own
RULES: dict[str, Callable[[RobustAggregation, list[Weights]], Weights]] = {
    "median": lambda workflow, models: robust.median(models),
    "trimmed_mean": lambda workflow, models: robust.trimmed_mean(models, workflow.beta),
    "krum": lambda workflow, models: robust.krum(models, workflow.f, workflow.m),
}
for _rule in RULES:
    register(_rule, rule=_rule)(RobustAggregation)
