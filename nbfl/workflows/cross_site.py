"""Cross-site evaluation: every client's model and the global one, tested on every site.

A global model can look fine on average while a site's own model does better at home
and worse everywhere else; the matrix shows that. Like NVIDIA FLARE's cross-site model
validation, one round runs two phases:

1. ``submit_task`` goes to the live clients with the global model; each answers with
   its locally trained model (WEIGHTS), checked like any update before it is kept;
2. each kept model, then the global model, goes out as ``validate_task`` to all those
   sites, and each site's ``metrics[metric]`` fills one cell.

The result is a ``(N + 1) x N`` matrix, rows the models (client names sorted, then
``"global"``), columns the sites (the same names); a cell stays NaN where a model never
came or a site did not answer. It is kept as :attr:`CrossSiteEval.matrix` and in the
round's record under ``"cross_site"``. The global model is not changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..protocol import names
from ..protocol.names import DataKind
from ..protocol.weights import UpdateError, Weights, check_update
from .base import RoundFailed

if TYPE_CHECKING:
    from ..protocol.records import ClientInfo
    from .base import RoundContext

GLOBAL = "global"


@dataclass
class CrossSiteMatrix:
    """``values[i, j]``: ``metric`` of model ``models[i]`` on site ``sites[j]``'s data."""

    models: list[str]
    sites: list[str]
    metric: str
    values: np.ndarray

    def as_record(self) -> dict[str, Any]:
        """Plain JSON for the round record: missing cells become None, not NaN (not JSON)."""
        values = [[None if np.isnan(v) else float(v) for v in row] for row in self.values]
        return {"models": list(self.models), "sites": list(self.sites), "metric": self.metric, "values": values}


class CrossSiteEval:
    """One round of cross-site evaluation; the model it returns is the one it was given.

    The controller holds every submitted client model at once (N models, received
    frames kept as they came), since each one goes to all sites before the next;
    plan memory for ``N + 1`` models, not one.
    """

    name = "cross_site"
    trains = False  # the global model is unchanged, so the controller does not rate it again

    def __init__(
        self, submit_task: str = names.SUBMIT_MODEL, validate_task: str = names.VALIDATE, metric: str = "accuracy"
    ):
        self.submit_task = submit_task
        self.validate_task = validate_task
        self.metric = metric
        self.matrix: CrossSiteMatrix | None = None

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        sites = sorted(run.live_clients(), key=lambda c: c.name)
        if not sites:
            raise RoundFailed("no live clients to evaluate on")
        names = [c.name for c in sites]
        models = self._collect_models(run, weights, sites)
        row_names = [*names, GLOBAL]
        values = np.full((len(row_names), len(names)), np.nan)
        for row, model_name in enumerate(row_names):
            model = weights if model_name == GLOBAL else models.get(model_name)
            if model is None:  # that client submitted no usable model: its row stays NaN
                continue
            for result in run.scatter(self.validate_task, model, clients=_still_live(run, names)):
                value = result.metrics.get(self.metric)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[row, names.index(result.client)] = float(value)
                else:
                    run.reject(result, f"no number {self.metric!r} in its {self.validate_task!r} metrics")
        if np.isnan(values).all():
            raise RoundFailed(f"no site answered {self.validate_task!r} with {self.metric!r}")
        self.matrix = CrossSiteMatrix(row_names, names, self.metric, values)
        run.note("cross_site", self.matrix.as_record())
        return weights

    def _collect_models(self, run: "RoundContext", weights: Weights, sites: list["ClientInfo"]) -> dict[str, Weights]:
        """Phase 1: each site's locally trained model, by client name; bad ones rejected."""
        models: dict[str, Weights] = {}
        for result in run.scatter(self.submit_task, weights, clients=sites):
            try:
                if result.kind != DataKind.WEIGHTS:
                    raise UpdateError(f"{self.submit_task!r} must answer with WEIGHTS, not {result.kind}")
                check_update(result.weights, weights)
            except UpdateError as exc:
                run.reject(result, exc)
                continue
            models[result.client] = result.weights
        return models


def _still_live(run: "RoundContext", names: list[str]) -> list["ClientInfo"]:
    """The round's sites that are still connected: a lost one would only be waited for."""
    return [c for c in run.live_clients() if c.name in names]
