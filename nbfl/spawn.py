"""Start local client processes on 127.0.0.1, for demos, Binder and tests."""

from __future__ import annotations

import subprocess
import sys


def spawn_clients(
    endpoint: str,
    n: int,
    *,
    data: str = "digits",
    partition: str = "dirichlet:0.5",
    seed: int = 0,
    epochs: int = 1,
    name_prefix: str = "site",
    accept_code: bool = False,
) -> list[subprocess.Popen]:
    """``n`` separate ``nbfl client`` processes, each training on its own part of ``data``.

    Each gets a session of its own, so the kernel's interrupt (Jupyter signals the
    kernel's whole process group) stops the round, not the clients. They leave when
    the controller says bye, or when this process ends (``--exit-with-parent``).

    With ``accept_code`` they run ``%%fl_task`` code the controller sends on that part.
    """
    procs = []
    for i in range(n):
        cmd = [
            sys.executable, "-m", "nbfl", "client", endpoint,
            "--name", f"{name_prefix}-{i + 1}",
            "--data", data, "--partition", partition,
            "--index", str(i), "--num-clients", str(n),
            "--seed", str(seed), "--epochs", str(epochs), "--exit-with-parent",
            *(["--accept-code"] if accept_code else []),
        ]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True))
    return procs


def stop_clients(procs: list[subprocess.Popen], timeout: float = 10.0) -> None:
    """Wait for clients to leave after the controller's bye; terminate stragglers."""
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(5)
