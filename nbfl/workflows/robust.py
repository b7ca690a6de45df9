"""Scatter-gather with a robust rule instead of the mean: median, trimmed mean, Krum.

Every checked result is kept as full weights (a WEIGHT_DIFF ``d`` becomes ``g + d``)
until the round's results are in, then :mod:`nbfl.aggregators.robust` combines them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..aggregators import robust
from ..protocol import names
from ..protocol.weights import UpdateError, Weights, full_weights
from .base import RoundFailed, needs_results

if TYPE_CHECKING:
    from .base import RoundContext

RULES = ("median", "trimmed_mean", "krum")


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
        if self.rule == "median":
            return robust.median(models)
        if self.rule == "trimmed_mean":
            return robust.trimmed_mean(models, self.beta)
        try:
            return robust.krum(models, self.f, self.m)
        except ValueError as exc:
            raise RoundFailed(str(exc)) from None
