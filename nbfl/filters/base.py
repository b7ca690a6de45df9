"""The parts every filter shares: its context, the registry of requestable names,
building filters from a controller's specs and running a pipeline. See :mod:`nbfl.filters`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from ..errors import NbflError
from ..protocol import names
from ..protocol.names import DataKind

Weights = dict[str, np.ndarray]


@dataclass
class FilterContext:
    """Where a filter runs: which task, round and client, and the model the task carried."""

    task_name: str
    round: int
    client: str
    reference: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # the result's meta; filters may add to it


class Filter(Protocol):
    name: str

    def __call__(self, tensors: Mapping[str, np.ndarray], kind: str, ctx: FilterContext) -> tuple[Weights, str]: ...

    def spec(self) -> dict[str, Any]:
        """``{"name": ..., **parameters}``: how the filter is requested and reported."""
        ...


REGISTRY: dict[str, Callable[..., Filter]] = {}


def register(cls: Any) -> Any:
    """Class decorator: make a filter requestable by its ``name``."""
    REGISTRY[cls.name] = cls
    return cls


class FilterError(NbflError, ValueError):
    """A requested filter is unknown or badly parameterized; the client refuses the task."""


def build(specs: Any) -> list[Filter]:
    """Filters from specs sent by a controller; only names in :data:`REGISTRY`, only keyword numbers/strings."""
    if specs is None:
        return []
    if not isinstance(specs, list):
        raise FilterError("'filters' must be a list of {'name': ..., parameters} objects")
    filters = []
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise FilterError(f"a filter spec needs a 'name': {spec!r:.200}")
        params = {k: v for k, v in spec.items() if k != "name"}
        cls = REGISTRY.get(spec["name"])
        if cls is None:
            raise FilterError(f"unknown filter {spec['name']!r}; this client knows {', '.join(sorted(REGISTRY))}")
        try:
            filters.append(cls(**params))
        except (TypeError, ValueError) as exc:
            raise FilterError(f"filter {spec['name']!r}: {exc}") from None
    return filters


def apply(
    filters: Sequence[Filter], tensors: Mapping[str, np.ndarray], kind: str, ctx: FilterContext
) -> tuple[Weights, str]:
    """Run ``filters`` in order and list them in ``ctx.meta["filters"]``."""
    out, applied = dict(tensors), ctx.meta.setdefault(names.FILTERS, [])
    for f in filters:
        out, kind = f(out, kind, ctx)
        applied.append(f.spec())
    return out, kind


def as_diff(tensors: Mapping[str, np.ndarray], kind: str, reference: Mapping[str, np.ndarray]) -> Weights:
    """The update relative to the model the task carried (new float64-free arrays, model dtypes)."""
    if kind == DataKind.WEIGHT_DIFF:
        return {k: np.array(v) for k, v in tensors.items()}
    if kind != DataKind.WEIGHTS:
        raise FilterError(f"this filter works on WEIGHTS or WEIGHT_DIFF, not {kind}")
    missing = [k for k in tensors if k not in reference]
    if missing:
        raise FilterError(f"no reference for {missing[:5]}: the task did not carry these tensors")
    return {k: np.subtract(v, reference[k]).astype(v.dtype, copy=False) for k, v in tensors.items()}
