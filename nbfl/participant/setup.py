"""What a participant keeps for itself: its key pair for a controller, and what it trains with."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq


def participant_keys(server_key: bytes, name: str) -> tuple[bytes, bytes]:
    """This participant's CurveZMQ key pair for the controller with ``server_key``, kept in a file
    (mode 0600) so that a restarted kernel or client is the same participant to that controller,
    which keeps a name for the key that first joined with it. ``$NBFL_KEYS`` names the folder
    (default ``~/.local/share/nbfl/keys``); where it cannot be written, a new pair is made."""
    folder = Path(
        os.environ.get("NBFL_KEYS")
        or Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "nbfl/keys"
    )
    path = folder / (hashlib.sha256(server_key + b"\0" + name.encode()).hexdigest()[:32] + ".key")
    try:
        public, secret = path.read_bytes().split()
        if zmq.curve_public(secret) == public:
            return public, secret
    except (OSError, ValueError):
        pass
    public, secret = zmq.curve_keypair()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(public + b"\n" + secret + b"\n")
    except OSError:  # a read-only home: this run's pair only
        pass
    return public, secret


@dataclass
class LocalSetup:
    """What a client trains with once it knows its share: an Executor, the data task
    functions see, and what the controller's table shows (samples, device, samples per class)."""

    executor: Any
    data: Any = None
    samples: int = 0
    device: str = "cpu"
    labels: list[int] = field(default_factory=list)
