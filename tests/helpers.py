"""What many test modules need, in one place: a free port, polling until something holds,
and the small train tasks the run and panel tests give their clients. (Fixtures and the
small model live in ``conftest.py``.)"""

from __future__ import annotations

import socket
import time
from typing import Callable

import nbfl


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll ``condition()`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)


def adder(delta: float = 1.0) -> dict:
    """A train task that adds ``delta`` to every weight."""

    def train(weights, ctx):
        return nbfl.Update({k: v + delta for k, v in weights.items()}, num_samples=1)

    return {"train": train}


def slow_adder(seconds: float = 0.05) -> dict:
    """A train task that adds 1 after ``seconds`` (or an abort), reporting accuracy 0.5."""

    def train(weights, ctx):
        ctx.abort.wait(seconds)
        return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=1, metrics={"accuracy": 0.5})

    return {"train": train}
