"""Start local client processes on 127.0.0.1, for demos, Binder and tests."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path


class ClientProcess(subprocess.Popen):
    """A spawned client; what it prints goes to :attr:`log`, not to the kernel's output.

    A kernel forwards its children's output to whichever cell runs at that moment, so a
    client's "joined" line or a traceback would land in some later, unrelated cell.
    """

    def __init__(self, cmd: list[str], log: Path):
        self.log = log
        with open(log, "wb") as out:
            super().__init__(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, lines: int = 20) -> str:
        """The end of what the process printed (why it failed to start, say)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


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
) -> list[ClientProcess]:
    """``n`` separate ``nbfl client`` processes, each training on its own part of ``data``.

    Each gets a session of its own, so the kernel's interrupt (Jupyter signals the
    kernel's whole process group) stops the round, not the clients. They leave when
    the controller says bye, or when this process ends (``--exit-with-parent``).
    Their output goes to a log file each, in a new temporary folder.

    With ``accept_code`` they run ``%%fl_task`` code the controller sends on that part.
    """
    logs = Path(tempfile.mkdtemp(prefix="nbfl-clients-"))
    procs = []
    for i in range(n):
        name = f"{name_prefix}-{i + 1}"
        cmd = [
            sys.executable, "-m", "nbfl", "client", endpoint,
            "--name", name,
            "--data", data, "--partition", partition,
            "--index", str(i), "--num-clients", str(n),
            "--seed", str(seed), "--epochs", str(epochs), "--exit-with-parent",
            *(["--accept-code"] if accept_code else []),
        ]  # fmt: skip
        procs.append(ClientProcess(cmd, logs / f"{name}.log"))
    return procs


def stop_clients(procs: list[subprocess.Popen], timeout: float = 10.0) -> None:
    """Wait for clients to leave after the controller's bye; terminate stragglers."""
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(5)
