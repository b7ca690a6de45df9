"""TensorBoard scalars of every round, written with the standard library alone.

``%fl_round 30 --log-dir runs/fedavg`` (``RunSettings.log_dir``) writes, after each round,
the global model's metrics (``global/accuracy``), the round's time and how many clients
answered, failed and were sampled (``round/...``), and the mean of each metric the
clients reported (``clients/train_loss``): a thousand clients would otherwise be a
thousand tags. ``tensorboard --logdir runs`` then shows runs side by side.

A TensorBoard event file is a sequence of records, each its length, a masked CRC-32C of
the length, the data, and a masked CRC-32C of the data; the data is an ``Event``
protocol buffer. The few fields needed here are encoded by hand, so neither TensorFlow
nor the tensorboard package is needed to write them (only to look at them).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path
from typing import Mapping

from ..protocol.records import RoundRecord


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # Castagnoli's polynomial, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protocol-buffer field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def event(wall_time: float, step: int = 0, scalars: Mapping[str, float] | None = None, version: str = "") -> bytes:
    """An ``Event``: wall_time (1, double), step (2, int64), file_version (3) or a summary
    (5) of ``Value``s, each a tag (1) and a simple_value (2, float)."""
    data = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step)
    if version:
        data += _field(3, version.encode())
    if scalars:
        values = b"".join(
            _field(1, _field(1, tag.encode()) + b"\x15" + struct.pack("<f", value)) for tag, value in scalars.items()
        )
        data += _field(5, values)
    return data


def record(data: bytes) -> bytes:
    """``data`` framed as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(crc32c(length))) + data + struct.pack("<I", _masked(crc32c(data)))


def scalars_of(done: RoundRecord) -> dict[str, float]:
    """What one round contributes: global metrics, the round's figures, the clients' mean metrics."""
    out = {f"global/{k}": float(v) for k, v in done.metrics.items()}
    out["round/seconds"] = done.seconds
    out["round/clients"] = float(len(done.clients))
    out["round/failed"] = float(len(done.failed))
    if done.sampled:
        out["round/sampled"] = float(len(done.sampled))
    names = sorted({k for metrics in done.clients.values() for k in metrics})
    for name in names:
        values = [m[name] for m in done.clients.values() if name in m]
        out[f"clients/{name}"] = sum(values) / len(values)
    return out


class ScalarLog:
    """One event file in ``folder`` (made if missing), a record a round."""

    def __init__(self, folder: str | os.PathLike[str]):
        Path(folder).mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = Path(folder) / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.nbfl"
        with open(self.path, "ab") as f:
            f.write(record(event(now, version="brain.Event:2")))

    def write(self, done: RoundRecord) -> None:
        """Append ``done``'s scalars at step ``done.round`` (rounds count over the controller's life)."""
        with open(self.path, "ab") as f:
            f.write(record(event(time.time(), done.round, scalars_of(done))))
