"""Plain functions as tasks: ``@nbfl.task("train")`` instead of writing an Executor.

A task function takes the weights the controller sent (``dict[str, np.ndarray]``,
views of the received frames, not copies) and a :class:`TaskContext`, and returns
either a dict of arrays (sent back as WEIGHTS) or an :class:`Update`.
"""

from __future__ import annotations

import functools
import inspect
import linecache
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..protocol.names import DataKind, MetaKey
from .executor import DXO, Executor, FLContext, ReturnCode, Shareable, Signal, from_shareable, make_reply

TaskFunction = Callable[..., Any]

registry: dict[str, TaskFunction] = {}


@dataclass
class TaskContext:
    """What a task function may want besides the weights."""

    task_name: str
    round: int
    client: str
    meta: dict[str, Any]
    abort: Signal
    data: Any = None  # what the client was given as its local data, e.g. (x, y) arrays
    device: str = "cpu"


@dataclass
class Update:
    """A task function's answer when it has more to say than new weights."""

    weights: dict[str, np.ndarray]
    kind: str = DataKind.WEIGHTS
    num_samples: int | None = None
    num_steps: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # anything else the workflow reads


def task(name: str, tasks: dict[str, TaskFunction] | None = None) -> Callable[[TaskFunction], TaskFunction]:
    """Register the decorated function as the client's handler for task ``name``."""

    def register(fn: TaskFunction) -> TaskFunction:
        (registry if tasks is None else tasks)[name] = fn
        return fn

    return register


class FunctionExecutor(Executor):
    """Runs registered task functions behind the seed-style Executor API."""

    def __init__(self, tasks: Mapping[str, TaskFunction], data: Any = None, device: str = "cpu"):
        super().__init__()
        self.tasks = dict(tasks)
        self.data = data
        self.device = device

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        fn = self.tasks.get(task_name)
        if fn is None:
            return make_reply(ReturnCode.TASK_UNKNOWN)
        dxo = from_shareable(shareable)
        ctx = TaskContext(
            task_name,
            fl_ctx.get_prop("current_round", 0),
            fl_ctx.get_identity_name(),
            dxo.meta,
            abort_signal,
            self.data,
            self.device,
        )
        answer = fn(dxo.data, ctx) if _wants_context(fn) else fn(dxo.data)
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        if isinstance(answer, dict):
            answer = Update(answer)
        if not isinstance(answer, Update):
            raise TypeError(
                f"task {task_name!r} returned {type(answer).__name__}; return a dict of arrays or nbfl.Update"
            )
        meta: dict[str, Any] = {**answer.meta, "metrics": dict(answer.metrics)}
        if answer.num_steps is not None:
            meta[MetaKey.NUM_STEPS_CURRENT_ROUND] = answer.num_steps
        if answer.num_samples is not None:
            meta["num_samples"] = answer.num_samples
        return DXO(answer.kind, answer.weights, meta).to_shareable()


@functools.lru_cache(maxsize=256)
def _wants_context(fn: TaskFunction) -> bool:
    """Whether ``fn`` takes a :class:`TaskContext` after the weights; asked once per function,
    not per task (``inspect.signature`` costs more than a small model's whole task)."""
    return len(inspect.signature(fn).parameters) >= 2


def tasks_from_source(source: str, filename: str = "<%%fl_task>") -> dict[str, TaskFunction]:
    """The functions a ``%%fl_task`` cell defines, run in a fresh namespace.

    This executes code sent by a controller; the client calls it only when it opted in
    to receiving code when it joined. The source is put in :mod:`linecache` under
    ``filename``, so a traceback from it shows its lines, not only their numbers.
    """
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "nbfl_task"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - the opt-in is the point
    return {name: fn for name, fn in namespace.items() if inspect.isfunction(fn) and fn.__module__ == "nbfl_task"}
