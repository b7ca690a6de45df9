"""Keep named variables on the site: their part of the update is sent as zeros.

``names`` are exact names or shell-style patterns (``"fc2.*"``, ``"*.bias"``). An
excluded variable's update becomes zero, which the controller reads as "no change
from this site", so a layer every site excludes stays as the global model had it;
its values never leave. (Zeros still take bytes on the wire; that keeps every update
the same shape, so aggregators need no special case.)
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Mapping

import numpy as np

from ..protocol.names import DataKind
from .base import FilterContext, Weights, as_diff, register


@register
class ExcludeVars:
    name = "exclude"

    def __init__(self, names: list[str] | str):
        names = [names] if isinstance(names, str) else list(names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError("names must be a non-empty list of variable names or patterns")
        self.names = names

    def excluded(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.names)

    def __call__(self, tensors: Mapping[str, np.ndarray], kind: str, ctx: FilterContext) -> tuple[Weights, str]:
        diff = as_diff(tensors, kind, ctx.reference)
        for name, d in diff.items():
            if self.excluded(name):
                d[...] = 0
        return diff, DataKind.WEIGHT_DIFF

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "names": list(self.names)}
