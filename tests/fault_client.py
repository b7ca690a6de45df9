"""One client process for the fault-injection test (tests/integration/test_faults.py).

    python fault_client.py NAME ENDPOINT CONTROL_DIR

It runs one real ``nbfl.Client`` named NAME with a deterministic "train" task: the
update is the incoming weights plus :func:`delta` (NAME, round), with :func:`samples`
(NAME) as ``num_samples``, so a test can recompute FedAvg from the history alone. The
task reports its round and this process's pid as metrics, so the history also says
which incarnation of a restarted client took part.

The harness steers it through CONTROL_DIR, without timing: if ``hold-NAME-ROUND``
exists when the task of that round starts, the task writes ``started-NAME-ROUND`` and
blocks until the process is killed (a SIGKILL that lands mid-round, at a known point).

The process leaves when its standard input closes (the test, or whatever ran it, went
away), so no client outlives a crashed test run.
"""

from __future__ import annotations

import os
import sys
import threading
import zlib
from pathlib import Path

import numpy as np

import nbfl


def samples(name: str) -> int:
    """The FedAvg weight this client reports: fixed per name, different across names."""
    return 10 + zlib.crc32(name.encode()) % 90


def delta(name: str, round_number: int, shape: tuple[int, ...]) -> np.ndarray:
    """This client's float64 step in ``round_number`` for one tensor of ``shape``."""
    rng = np.random.default_rng([zlib.crc32(name.encode()), round_number, len(shape), *shape])
    return rng.normal(size=shape)


def update(name: str, round_number: int, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the client sends back: each tensor plus its delta, in the tensor's own dtype."""
    return {k: (v + delta(name, round_number, v.shape)).astype(v.dtype) for k, v in weights.items()}


def main(name: str, endpoint: str, control: str) -> None:
    control_dir = Path(control)

    def train(weights, ctx):
        if (control_dir / f"hold-{name}-{ctx.round}").exists():
            (control_dir / f"started-{name}-{ctx.round}").touch()
            threading.Event().wait()  # until the harness's SIGKILL
        return nbfl.Update(
            update(name, ctx.round, weights),
            num_samples=samples(name),
            metrics={"round": float(ctx.round), "pid": float(os.getpid())},
        )

    def leave_with_parent() -> None:
        sys.stdin.read()  # EOF: the parent closed our stdin or died
        os._exit(0)

    threading.Thread(target=leave_with_parent, daemon=True).start()
    client = nbfl.Client(endpoint, name, tasks={"train": train}, heartbeat_interval=0.2, heartbeat_timeout=5.0)
    client.run()  # until the controller says bye


if __name__ == "__main__":
    main(*sys.argv[1:4])
