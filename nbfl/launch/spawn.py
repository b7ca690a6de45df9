"""Start local client processes on 127.0.0.1, for demos, Binder and tests.

By default the clients are forked from a warm template process (:mod:`nbfl.launch.template`)
that has imported torch, numpy, pyzmq and nbfl once, so their memory is shared
copy-on-write: four clients cost little more than one. One template serves a whole
kernel: it starts on the first spawn, is reused while clients it forked run, and ends
when :func:`stop_clients` has stopped the last of them. ``spawn_clients(..., template=False)``
or the environment variable ``NBFL_SPAWN=processes`` starts separate processes instead
(each importing everything on its own), as does a template that cannot be started (a
warning in the log says so).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Protocol

from ..participant.host import MAX_CLIENTS
from ..protocol.joining import is_join_code
from .template import TemplateChild, TemplateError, get_template, release_template

log = logging.getLogger(__name__)
SPAWN_ENV = "NBFL_SPAWN"  # "template" (the default) or "processes"
CLIENT = "nbfl.participant"  # what a client runs: python -m nbfl.participant (the same as `nbfl client`)
# What a client imports, in the template, before any fork: the participant's command
# line brings the client; the digits ship in nbfl.data. Where torch is not installed its
# modules fail to import (the template says so) and the clients train with numpy.
PRELOAD = (
    "numpy",
    "zmq",
    "torch",
    "torch._dynamo",  # the first optimizer step imports it: 800 modules, some 70 MB
    "nbfl.participant.command",
    "nbfl.participant.numpy_trainer",
    "nbfl.participant.models",
    "nbfl.participant.trainers",
    "nbfl.protocol.torch_adapter",
)


class ClientProcess(subprocess.Popen):
    """A spawned client; what it prints goes to :attr:`log`, not to the kernel's output.

    A kernel forwards its children's output to whichever cell runs at that moment, so a
    client's "joined" line or a traceback would land in some later, unrelated cell.
    """

    def __init__(self, cmd: list[str], log: Path):
        self.log = log
        with open(log, "wb") as out:
            super().__init__(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tail(self, lines: int = 20) -> str:
        """The end of what the process printed (why it failed to start, say)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Expecting(Protocol):
    """A controller, as :func:`spawn_clients` uses one: where it listens, and how to tell it
    that clients are coming (:meth:`nbfl.Controller.expect_joins`)."""

    endpoint: str

    def expect_joins(self, n: int, address: str = ...) -> None: ...


def spawn_clients(
    endpoint: str | Expecting,
    n: int,
    *,
    data: str = "digits",
    partition: str = "dirichlet:0.5",
    seed: int = 0,
    epochs: int = 1,
    name_prefix: str = "site",
    names: list[str] | None = None,
    accept_code: bool = False,
    gpus: list[int] | None = None,
    template: bool | None = None,
    per_process: int = 1,
) -> list[ClientProcess | TemplateChild]:
    """``n`` separate client processes (``python -m nbfl.participant``, as ``nbfl client``
    starts one), each training on its own part of ``data``.

    Each gets a session of its own, so the kernel's interrupt (Jupyter signals the
    kernel's whole process group) stops the round, not the clients. They leave when
    the controller says bye, or when this process ends (``--exit-with-parent``).
    Their output goes to a log file each, in a new temporary folder. They are named
    ``{name_prefix}-1`` to ``{name_prefix}-{n}``, or ``names`` (one for each): a resumed
    controller's sites come back under the names they had.

    With ``accept_code`` they run ``%%fl_task`` code the controller sends on that part.
    ``endpoint`` may be a workshop's join code: they join like participants and the
    controller assigns each its share (``partition`` and ``seed`` are then the workshop's).
    ``gpus`` (``[0, 1]``) puts process ``k`` on ``cuda:{gpus[k % len(gpus)]}``.

    ``per_process`` (say 250) simulates that many clients in each process (the last may have
    fewer; :mod:`nbfl.participant.host`): each still joins as a client of its own, with its
    own share and name, so ``n`` may be a thousand. Given a controller instead of an
    endpoint, this tells it to expect the ``n`` joins (:meth:`nbfl.Controller.expect_joins`),
    which it otherwise admits at a room's pace.

    ``template`` (default: ``True`` unless ``$NBFL_SPAWN`` is ``processes``) forks them
    from this process's warm template, which is their parent then; ``False`` starts
    each as a process of its own. Either way each has the same command line and the
    same handle interface (``pid``, ``poll()``, ``wait()``, ``terminate()``, ``kill()``,
    ``returncode``, ``log``, ``tail()``).
    """
    names = names if names is not None else [f"{name_prefix}-{i + 1}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{n} clients need {n} names, not {len(names)}")
    if not 1 <= per_process <= MAX_CLIENTS:
        raise ValueError(f"per_process takes 1 to {MAX_CLIENTS} clients a process, not {per_process}")
    if not isinstance(endpoint, str):
        endpoint.expect_joins(n)
        endpoint = endpoint.endpoint
    if per_process > 1 and is_join_code(endpoint):
        raise ValueError("simulated clients (per_process > 1) train on shares given here: not with a join line")
    launch = _launcher(template)
    logs = Path(tempfile.mkdtemp(prefix="nbfl-clients-"))
    procs = []
    for k, i in enumerate(range(0, n, per_process)):  # process k hosts clients i, i + 1, ...
        batch = names[i : i + per_process]
        share = [] if is_join_code(endpoint) else ["--index", str(i), "--num-clients", str(n)]
        if per_process > 1:
            listed = logs / f"host-{k + 1}.names"
            listed.write_text("".join(f"{name}\n" for name in batch), encoding="utf-8")
            who, log_name = ["--names-file", str(listed)], listed.stem
        else:
            who, log_name = ["--name", batch[0]], batch[0]
        cmd = [
            sys.executable,
            "-m",
            CLIENT,
            endpoint,
            *who,
            "--data",
            data,
            "--partition",
            partition,
            *share,
            "--seed",
            str(seed),
            "--epochs",
            str(epochs),
            "--exit-with-parent",
            *(["--accept-code"] if accept_code else []),
            *(["--device", f"cuda:{gpus[k % len(gpus)]}"] if gpus else []),  # round-robin over the GPUs
        ]
        procs.append(launch(cmd, logs / f"{log_name}.log"))
    return procs


def _launcher(template: bool | None):
    """How to start one client: fork it from the template, or a separate process."""
    if template is None:
        choice = os.environ.get(SPAWN_ENV, "template").strip().lower() or "template"
        if choice not in ("template", "processes"):
            log.warning("nbfl: %s=%r is neither 'template' nor 'processes'; using the template", SPAWN_ENV, choice)
        template = choice != "processes"
    warm = get_template(PRELOAD) if template else None
    if warm is None:
        return ClientProcess

    def launch(cmd: list[str], log_file: Path) -> ClientProcess | TemplateChild:
        try:
            return warm.spawn(cmd, log_file)
        except TemplateError as exc:
            log.warning("nbfl: the template could not fork a client (%s); starting a separate process", exc)
            return ClientProcess(cmd, log_file)

    return launch


def stop_clients(procs: list[ClientProcess | TemplateChild], timeout: float = 10.0) -> None:
    """Wait for clients to leave after the controller's bye; terminate stragglers. Once no
    client of the template runs, the template ends too (the next spawn starts it again):
    a finished notebook should not keep a process that imported torch."""
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(5)
    release_template()
