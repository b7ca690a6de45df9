"""The contract between a run and a workflow: what each may expect of the other.

A workflow decides what one round sends and how the answers become the next global
model. It sees the run only through :class:`RoundContext` (scatter a task, reject a
result, note a finding, the run's ``min_clients``), never the controller, so workflows
do not import the controller and cannot reach another run's settings.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Protocol, runtime_checkable

import numpy as np

from ..errors import NbflError
from ..protocol.records import ClientInfo, Result
from ..protocol.weights import Weights


class RoundFailed(NbflError, RuntimeError):
    """Not enough usable results this round; the global model stays as it was."""


class RoundStopped(NbflError):
    """The run was stopped (``Run.stop``, a Stop button, an interrupt) during this round."""


class RoundContext(Protocol):
    """What a workflow may use of the run it is part of (:class:`nbfl.controller.run.Run` implements it)."""

    min_clients: int  # connected clients a round starts with
    min_results: int  # usable results a round needs (its quorum)
    evaluate: Callable[[Weights], Mapping[str, float]] | None  # the controller's, None if it has none
    he_context: bytes | None  # the public HE context of the controller's kit (a he = true project), else None

    def live_clients(self) -> list[ClientInfo]:
        """The clients connected now."""
        ...

    def scatter(
        self,
        task_name: str,
        weights: Mapping[str, np.ndarray],
        clients: list[ClientInfo] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Iterator[Result]:
        """Send one task to each client (all live ones by default); yield results as they arrive."""
        ...

    def reject(self, result: Result, reason: Exception | str) -> None:
        """Refuse ``result``: record why, tell its client."""
        ...

    def note(self, key: str, value: Any) -> None:
        """Add ``key`` to this round's record (``notes``): a cross-site matrix, statistics."""
        ...


@runtime_checkable
class Workflow(Protocol):
    """One algorithm. ``trains`` is False for workflows that leave the model alone
    (evaluation, statistics): the controller does not rate the model after them."""

    name: str
    trains: bool

    def round(self, run: RoundContext, weights: Weights, number: int) -> Weights:
        """Round ``number`` from global ``weights``; return the new global model.

        Raise :class:`RoundFailed` to keep the old one; :class:`RoundStopped` comes out
        of ``run.scatter`` when the run is stopped and should be let through.
        """
        ...


@runtime_checkable
class Stateful(Protocol):
    """A workflow that keeps state across rounds (FedOpt's moments, SCAFFOLD's control
    variate) declares it with these two: each checkpoint saves :meth:`state`, and the
    first run of the same workflow after a resume gets it back through :meth:`load_state`."""

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, meta)``: numpy arrays, and JSON-able values."""
        ...

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Take up what :meth:`state` gave (from a checkpoint)."""
        ...


def needs_results(run: RoundContext, count: int) -> None:
    """Fail the round unless ``count`` usable results reached the run's quorum (``min_results``)."""
    if count < max(1, run.min_results):
        raise RoundFailed(f"{count} usable results, {run.min_results} needed: the global model is unchanged")
