"""Filters: what may leave a site, applied on the site, in order, before anything is sent.

A filter is a callable ``(tensors, kind, ctx) -> (tensors, kind)``; it may change the
data (clip and add noise, zero out coordinates, encrypt) and its kind (a WEIGHTS result
becomes a WEIGHT_DIFF once it is taken relative to the model the task carried, which
``ctx.reference`` holds). It must not change the arrays it was given: they may be the
model itself or a receive buffer.

Two sources, one pipeline on each client:

* the **controller** asks for filters per run (``Controller.run(..., filters=[...])``)
  as plain specs, ``{"name": "dp", "clip": 1.0, "noise_multiplier": 1.0}``; a client
  builds them from :data:`REGISTRY` (names of local classes, never code) and refuses
  the task, saying why, if it does not know one or its parameters are bad;
* the **client's own policy** (``Client(..., filters=[...])``) runs after those, every
  time: the controller cannot turn it off.

What ran is listed in the result's meta under ``"filters"`` (name and parameters), so
the controller knows, and shows, what each update went through.
"""

from .base import REGISTRY, Filter, FilterContext, FilterError, Weights, apply, as_diff, build, register
from .dp import GaussianPrivacy
from .exclude import ExcludeVars
from .percentile import PercentilePrivacy
from .svt import SVTPrivacy

__all__ = [
    "REGISTRY",
    "ExcludeVars",
    "Filter",
    "FilterContext",
    "FilterError",
    "GaussianPrivacy",
    "PercentilePrivacy",
    "SVTPrivacy",
    "Weights",
    "apply",
    "as_diff",
    "build",
    "register",
]
