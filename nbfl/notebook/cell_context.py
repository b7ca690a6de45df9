"""Callbacks from nbfl's threads that touch the notebook run in the context of the cell
that set them up.

ipykernel keeps the current request (the "parent" that routes an output or a widget
message to its cell) in context variables. A thread nbfl starts (a run's, a client's)
does not inherit them: ipykernel 7.0 then raises ``LookupError: <ContextVar
name='shell_parent'>`` on the first widget change or display update from that thread
(7.1 and 6.x fall back to a default). Capturing the cell's context when the callback is
made, and running each call in a copy of it, gives every version the cell's parent.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Callable, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def in_cell(callback: Callable[P, R]) -> Callable[P, R]:
    """``callback``, called from any thread, in the context of the cell running now.

    Each call gets its own copy, since one context cannot be entered by two threads at once.
    """
    cell = contextvars.copy_context()

    @functools.wraps(callback)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return cell.copy().run(callback, *args, **kwargs)

    return call
