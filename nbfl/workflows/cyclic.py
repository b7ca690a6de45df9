"""Cyclic weight transfer: the model visits the clients one after another.

Each client trains the model it receives from the previous one; one round of this
workflow is one cycle through every live client, so ``run(rounds=N)`` makes N
cycles. The order is the clients' names sorted (``"fixed"``), a new shuffle each
cycle (``"shuffled"``, seeded), or a list of names. A client that fails or leaves
is skipped and the model goes on from the last good one.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Sequence

from ..protocol import names
from ..protocol.weights import UpdateError, Weights, full_weights
from .base import RoundFailed
from .registry import register

if TYPE_CHECKING:
    from ..protocol.records import ClientInfo
    from .base import RoundContext


@register("cyclic")
class Cyclic:
    name = "cyclic"
    trains = True

    def __init__(
        self,
        task_name: str = names.TRAIN,
        order: str | Sequence[str] = "fixed",
        seed: int = 0,
        task_meta: dict[str, Any] | None = None,
    ):
        if isinstance(order, str) and order not in ("fixed", "shuffled"):
            raise ValueError(f"order must be 'fixed', 'shuffled' or a list of client names, not {order!r}")
        self.task_name = task_name
        self.order = order if isinstance(order, str) else list(order)
        self.seed = seed
        self.task_meta = dict(task_meta or {})

    def visit_order(self, clients: list["ClientInfo"], number: int) -> list["ClientInfo"]:
        by_name = {c.name: c for c in clients}
        if self.order == "fixed":
            return [by_name[n] for n in sorted(by_name)]
        if self.order == "shuffled":
            names = sorted(by_name)
            random.Random(self.seed * 100_003 + number).shuffle(names)
            return [by_name[n] for n in names]
        missing = [n for n in self.order if n not in by_name]
        if missing:
            raise RoundFailed(f"clients in the declared order are not connected: {', '.join(missing)}")
        return [by_name[n] for n in self.order]

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        current, visited = weights, []
        for client in self.visit_order(run.live_clients(), number):
            for result in run.scatter(self.task_name, current, clients=[client], meta=self.task_meta):
                try:
                    current = full_weights(result.weights, result.kind, current)
                except UpdateError as exc:
                    run.reject(result, exc)
                    continue
                visited.append(client.name)
        run.note("order", visited)
        if not visited:
            raise RoundFailed("no client returned a usable model this cycle")
        return current
