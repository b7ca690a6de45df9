"""How a cell waits for a run and still hears the Stop button.

A kernel handles one shell message at a time: while a cell blocks, a click on a widget
waits in the queue behind it, and ``Button.on_click`` runs only when the cell is over.
ipykernel 7 makes one exception: while an *async* cell awaits, comm messages (widget
events) are dispatched at once. (jupyter-ui-poll, made for the blocking case, calls
``kernel.do_one_iteration()``, which ipykernel 7 no longer has; it silently does
nothing there.)

So a top-level ``%fl_round`` or ``%fl_wait`` is rewritten, by an IPython input
transformer, into an ``await`` of the same magic: the cell becomes an async cell, it
still runs top to bottom and blocks "Run All" and nbclient as before, and the Stop
button's click reaches :meth:`nbfl.controller.run.Run.stop` while it waits. The kernel's
interrupt cancels the awaited cell; the wait turns that into a clean stop.

Only top-level lines are rewritten (an ``await`` inside a loop body of a cell would be
just as valid, but one inside a ``def`` would not), and only in a kernel that runs
async cells on asyncio (``%autoawait`` on, the default).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from typing import Any

from ..controller.run import Run

BLOCKING = ("fl_round", "fl_wait")
POLL = 0.1  # seconds between looks at the run while a cell awaits it
_CALL = re.compile(r"^get_ipython\(\)\.run_line_magic\('(%s)', (.*)\)(\s*)$" % "|".join(BLOCKING))
# the arguments are expanded ($NAME, {expr}) in the cell's own frame, as run_line_magic does
_AWAITED = r"await get_ipython().magics_manager.registry['RunMagics'].awaited('\1', get_ipython().var_expand(\2))\3"


def await_blocking_magics(lines: list[str]) -> list[str]:
    """IPython ``input_transformers_post`` entry: await top-level blocking ``%fl_*`` magics."""
    from IPython import get_ipython
    from IPython.core.async_helpers import _asyncio_runner

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return lines
    if not shell.autoawait or shell.loop_runner is not _asyncio_runner:
        return lines
    return [_CALL.sub(_AWAITED, line) for line in lines]


def wait_blocking(run: Run, stop: bool) -> None:
    """Wait in a plain (not awaited) cell until the run ends, :meth:`Run.detach` lets the
    cell go, or Ctrl-C (the kernel's interrupt) comes; with ``stop`` the interrupt also
    stops the run and waits for its abort."""
    released = run.hold()
    try:
        released.wait()
    except KeyboardInterrupt:
        _interrupted(run, stop)
    finally:
        released.set()


async def wait_awaited(run: Run, stop: bool) -> None:
    """Wait in an awaited cell, where widget events are handled meanwhile; the end, a
    detach and the kernel's interrupt (a cancellation here) as in :func:`wait_blocking`.

    It wakes every 0.1 s rather than awaiting the run's future once: ipykernel 7.4
    queues the interrupt's cancellation of an async cell on its event loop without
    waking it, so one long await would hear the interrupt only when the run ended.
    """
    released = run.hold()
    try:
        while not released.is_set():
            await asyncio.sleep(POLL)
    except asyncio.CancelledError:
        _interrupted(run, stop)
    finally:
        released.set()


def _interrupted(run: Run, stop: bool) -> None:
    if stop:
        run.interrupt()
        concurrent.futures.wait([run.future()], timeout=30)


def unregister(shell: Any) -> None:
    if await_blocking_magics in shell.input_transformers_post:
        shell.input_transformers_post.remove(await_blocking_magics)
