"""Models as ``dict[str, np.ndarray]``: checks, diffs and updates, numpy only.

Every update from a client is checked against the global model here before it can
touch an aggregate: the same names, shapes and dtypes, and only finite numbers.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..errors import NbflError
from .names import DataKind

Weights = dict[str, np.ndarray]


class UpdateError(NbflError, ValueError):
    """An update that must not reach the global model; the text goes back to the client."""


def check_update(update: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`UpdateError` unless ``update`` matches ``reference`` and is finite."""
    missing = reference.keys() - update.keys()
    extra = update.keys() - reference.keys()
    if missing or extra:
        raise UpdateError(f"names differ from the model: missing {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}")
    with np.errstate(over="ignore", invalid="ignore"):  # once an update, not once a tensor: it costs more than a check
        for name, ref in reference.items():
            arr = update[name]
            if arr.shape != ref.shape:
                raise UpdateError(f"{name}: shape {arr.shape}, the model has {ref.shape}")
            if arr.dtype != ref.dtype:
                raise UpdateError(f"{name}: dtype {arr.dtype}, the model has {ref.dtype}")
            if arr.dtype.kind == "f" and not _finite(arr):
                raise UpdateError(f"{name}: contains NaN or Inf")


def _finite(arr: np.ndarray) -> bool:
    """Whether ``arr`` (a float array) holds no NaN or Inf; the caller silences overflow warnings."""
    # One BLAS pass, no temporary: a sum of squares is finite unless some element is
    # NaN or Inf (squares cannot cancel) or huge enough to overflow; only then pay
    # for the exact element-wise check.
    flat = arr.reshape(-1)
    return math.isfinite(np.dot(flat, flat)) or bool(np.isfinite(arr).all())


def first_not_finite(tensors: Mapping[str, np.ndarray]) -> str | None:
    """The name of the first float tensor holding NaN or Inf, or None if all are finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        return next((name for name, arr in tensors.items() if arr.dtype.kind == "f" and not _finite(arr)), None)


def diff(new: Mapping[str, np.ndarray], old: Mapping[str, np.ndarray]) -> Weights:
    """``new - old`` per tensor (what a client sends as WEIGHT_DIFF)."""
    return {name: np.subtract(new[name], old[name]) for name in old}


def apply_diff(weights: Mapping[str, np.ndarray], delta: Mapping[str, np.ndarray]) -> Weights:
    """``weights + delta`` per tensor, as new arrays (the old ones may still be in flight)."""
    return {name: np.add(weights[name], delta[name]).astype(weights[name].dtype, copy=False) for name in weights}


def cast_like(mean: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A mean (median, ...) of tensors of ``dtype`` back in ``dtype``, the one way every
    aggregator does it: a bool is true where at least half were, integers are rounded."""
    if dtype.kind == "b":
        return mean >= 0.5
    return np.rint(mean).astype(dtype) if dtype.kind in "iu" else mean.astype(dtype)


def full_weights(update: Mapping[str, np.ndarray], kind: str, reference: Mapping[str, np.ndarray]) -> Weights:
    """A checked result as full weights: itself (WEIGHTS) or ``reference + update`` (WEIGHT_DIFF).

    For workflows that keep or pass on whole models (cyclic, robust rules); raises
    :class:`UpdateError` for a bad update or any other kind of data.
    """
    check_update(update, reference)
    if kind == DataKind.WEIGHTS:
        return dict(update)
    if kind == DataKind.WEIGHT_DIFF:
        return apply_diff(reference, update)
    raise UpdateError(f"expected WEIGHTS or WEIGHT_DIFF, got data of kind {kind!r}")


def split(tensors: Mapping[str, np.ndarray], prefix: str) -> tuple[Weights, Weights]:
    """``(the rest, the tensors under prefix with the prefix removed)``."""
    rest = {k: v for k, v in tensors.items() if not k.startswith(prefix)}
    under = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return rest, under
