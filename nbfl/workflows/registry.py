"""Algorithms by name: what ``%fl_round --algorithm``, ``nbfl controller --algorithm``,
``Controller.start(rounds, "name")`` and :func:`make_workflow` all read.

A workflow class registers itself with :func:`register` in its own file (one algorithm
per file in :mod:`nbfl.workflows`, all of which are imported with the package), once
per name it answers to, each with its preset options (FedOpt's server optimizers, the
robust rules). So a new server-side algorithm is one file (and its test).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, TypeVar

ALGORITHMS: dict[str, Callable[..., Any]] = {}  # the training workflows, by their --algorithm names
T = TypeVar("T", bound=type)


def register(name: str, **preset: Any) -> Callable[[T], T]:
    """Class decorator: ``make_workflow(name, **options)`` builds ``cls(**preset, **options)``."""

    def add(cls: T) -> T:
        if not name.isidentifier() or name in ALGORITHMS:
            raise ValueError(f"an algorithm needs a new name, a Python identifier: {name!r}")
        ALGORITHMS[name] = partial(cls, **preset) if preset else cls
        return cls

    return add


def make_workflow(name: str, **options: Any) -> Any:
    """A fresh workflow by its ``--algorithm`` name, e.g. ``make_workflow("fedopt", lr=1.0)``."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}: use one of {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name](**options)
