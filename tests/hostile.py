"""What someone on a workshop's Wi-Fi can do, as tools for tests/integration/test_hostile.py and
benchmarks/hostile.py: a room (a workshop controller with honest participants), strangers
who know the join line's address and key but not the token, and a participant who holds
the token and sends what it likes.

Attackers connect from their own loopback address (127.0.0.66 by default), as a laptop in
the room has its own, so what the controller counts per address is theirs alone.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

import nbfl
from nbfl.protocol import compress, wire

ATTACKER = "127.0.0.66"


def train(weights, ctx):
    """An honest participant: one step of +1 on every weight, three samples."""
    return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=3)


def model(params: int = 1000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"w": rng.normal(size=params).astype(np.float32), "b": np.zeros(10, np.float32)}


@dataclass
class Room:
    controller: nbfl.Controller
    participants: list[nbfl.Client]

    @property
    def code(self) -> nbfl.JoinCode:
        code = self.controller.join_code
        assert code is not None
        return code

    def rounds(self, n: int) -> tuple[list, float]:
        """Run ``n`` rounds with every participant; return the records and the rounds a second."""
        started = time.perf_counter()
        records = self.controller.run(n, min_clients=len(self.participants), timeout=60)
        return records, n / (time.perf_counter() - started)

    def close(self) -> None:
        for client in self.participants:
            client.stop()
        self.controller.close()


def open_room(participants: int = 3, params: int = 1000, **controller: object) -> Room:
    """A workshop controller on 127.0.0.1 and ``participants`` honest clients joined with its line."""
    workshop = nbfl.Workshop(capacity=participants + 2, host="127.0.0.1")
    ctl = nbfl.Controller("tcp://127.0.0.1:0", model(params), workshop=workshop, **controller)  # type: ignore[arg-type]
    clients = [
        nbfl.Client(str(ctl.join_code), f"honest-{i}", tasks={"train": train}) for i in range(1, participants + 1)
    ]
    for client in clients:
        client.start(wait=60)
    ctl.wait_for_clients(participants)
    return Room(ctl, clients)


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


_statm: dict[int, int] = {}  # pid -> its /proc/self/statm, opened once


def rss_mib() -> float:
    """This process's resident memory, read from a file opened once: sampling during a
    connection flood must not need a free file descriptor (the flood may hold them all)."""
    fd = _statm.get(os.getpid())
    if fd is None:
        fd = _statm[os.getpid()] = os.open("/proc/self/statm", os.O_RDONLY)
    resident_pages = int(os.pread(fd, 256, 0).split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """The process's peak RSS while the block runs, sampled every 20 ms (MiB)."""

    def __enter__(self) -> "PeakRSS":
        self.peak = rss_mib()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def stranger(code: nbfl.JoinCode, source: str = ATTACKER, queue_all: bool = True) -> zmq.Socket:
    """A DEALER that finishes the CurveZMQ handshake with the controller's key (the join
    line's), from ``source``, and holds no token. With ``queue_all`` it queues all it sends
    (it lives in the test's process: keep such floods small), and it reads nothing itself."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    public, secret = zmq.curve_keypair()
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_SERVERKEY, code.server_key)
    if queue_all:  # never drop: every message reaches the controller
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{source}:0;{code.host}:{code.port}")
    return sock


class Insider:
    """A participant that holds the token and sends what it likes: it joins as ``name``, then
    answers each task with ``answer(task_message) -> (fields, tensors)`` (None: no answer)
    and, once started, sends ``chatter`` (frames) as fast as it can whenever it has nothing to read;
    it beats every second, as an honest client does."""

    def __init__(self, code: nbfl.JoinCode, name: str, answer=None, source: str = ATTACKER):
        self.sock = stranger(code, source, queue_all=False)
        self.name = name
        self.answer = answer
        self.tasks = 0
        self.chatter: list[bytes] | None = None
        self.welcomed = threading.Event()
        self._stop = threading.Event()
        self.send(wire.message("join", name=name, token=code.token, codecs=list(compress.CODECS), host="insider"))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self.welcomed.wait(30):
            raise AssertionError(f"{name} was not welcomed")

    def send(self, msg: wire.Message) -> None:
        self.sock.send_multipart(wire.encode(msg), copy=False)

    def _read(self) -> None:  # the socket's only user once started
        beat, next_beat = heartbeat(), time.monotonic()
        while not self._stop.is_set():
            if self.welcomed.is_set() and time.monotonic() >= next_beat:  # alive, as an honest client is
                self.sock.send_multipart(beat, zmq.NOBLOCK)
                next_beat += 1.0
            frames = self.sock.recv_multipart(zmq.NOBLOCK) if self.sock.poll(0 if self.chatter else 5) else None
            if frames is None:
                if self.chatter is not None:
                    flood(self.sock, 100, self.chatter, drop=True)
                continue
            msg = wire.decode(frames)
            if msg.kind == "welcome":
                self.welcomed.set()
            elif msg.kind == "heartbeat" or msg.kind == "pull":
                continue
            elif msg.kind == "task" and self.answer is not None:
                self.tasks += 1
                reply = self.answer(msg)
                if reply is not None:
                    fields, tensors = reply
                    self.send(wire.Message("result", {"task_id": msg.get("task_id"), **fields}, tensors))
        self.sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def unchanged(msg: wire.Message, **meta: object) -> tuple[dict, dict]:
    """A result that returns the model it got (decompressed), with ``meta``."""
    weights = compress.received(msg)
    return {"kind": "WEIGHTS", "meta": {"num_samples": 3, **meta}}, {k: np.array(v) for k, v in weights.items()}


def claims_float64(msg: wire.Message) -> tuple[dict, dict]:
    """An int8 result whose header says every tensor was float64 (the model is float32)."""
    weights = compress.received(msg)
    packed, spec = compress.pack({k: np.asarray(v, np.float64) for k, v in weights.items()}, "int8")
    return {"kind": "WEIGHTS", "meta": {"num_samples": 3}, "compress": spec}, packed


def huge_steps(msg: wire.Message) -> tuple[dict, dict]:
    """The model it got back, weighted by 1e300 steps."""
    return unchanged(msg, NUM_STEPS_CURRENT_ROUND=1e300)


def bloated_metrics(msg: wire.Message) -> tuple[dict, dict]:
    """A result with 30,000 metric keys (about 900 kB of header)."""
    fields, tensors = unchanged(msg)
    fields["meta"]["metrics"] = {f"metric-{i:06d}-{'x' * 12}": 0.5 for i in range(30_000)}
    return fields, tensors


def greeting_then_huge_frame(
    host: str, port: int, declared: int = 4 << 30, send: int = 512 << 20, source: str = ATTACKER
) -> int:
    """A raw TCP connection with no key: a ZMTP 3.0 greeting for CURVE, then a frame declared as
    ``declared`` bytes, and zeros after it until ``send`` bytes or the controller hangs up.
    Returns the bytes of the frame that were sent."""
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"CURVE".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
    sock = socket.create_connection((host, port), source_address=(source, 0))
    sock.settimeout(10)
    sent = 0
    try:
        sock.sendall(greeting)
        sock.sendall(b"\x02" + struct.pack(">Q", declared))  # a long frame, no "more"
        chunk = bytes(1 << 20)
        while sent < send:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:  # the controller closed the connection
        pass
    finally:
        sock.close()
    return sent


def flood(sock: zmq.Socket, count: int, frames: list[bytes] | None = None, drop: bool = False) -> int:
    """Send ``count`` messages (8 bytes each by default) as fast as the socket takes them; with
    ``drop``, those its full queue does not take are dropped (as fast as the link drains).
    Returns how many were queued."""
    frames = frames or [b"\x00" * 8]
    queued = 0
    for _ in range(count):
        try:
            sock.send_multipart(frames, zmq.NOBLOCK if drop else 0)
            queued += 1
        except zmq.Again:
            pass
    return queued


def heartbeat() -> list[bytes]:
    return [bytes(f) for f in wire.encode(wire.message("heartbeat"))]


def join_with(token: str, name: str) -> list[bytes]:
    return [bytes(f) for f in wire.encode(wire.message("join", name=name, token=token))]


def big_frame(code: nbfl.JoinCode, size: int, source: str = ATTACKER) -> float:
    """In a process of its own (its own buffers must not count as the controller's memory): finish
    the handshake as a stranger, send one frame of ``size`` bytes, and return the seconds until the
    controller hung up (the socket then reconnects, which the controller sees as a new stranger)."""
    args = [code.host, str(code.port), code.server_key.decode(), str(size), source]
    out = subprocess.run([sys.executable, __file__, "big-frame", *args], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"the attacker process failed: {out.stderr[-2000:]}")
    return float(out.stdout.split()[-1])


def _big_frame(host: str, port: str, server_key: str, size: str, source: str) -> None:
    code = nbfl.JoinCode(host, int(port), server_key.encode(), "x" * 8)
    sock = stranger(code, source, queue_all=False)
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    from zmq.utils.monitor import recv_monitor_message

    while recv_monitor_message(monitor)["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED:
        pass
    started = time.perf_counter()
    sock.send(bytes(int(size)), copy=False)
    while recv_monitor_message(monitor)["event"] != zmq.EVENT_DISCONNECTED:
        pass
    print(time.perf_counter() - started)
    sock.close(linger=0)


def connection_flood(code: nbfl.JoinCode, count: int, source: str = ATTACKER) -> subprocess.Popen:
    """A process of its own that opens ``count`` CurveZMQ connections as a stranger and keeps
    them open without joining (ZeroMQ reconnects those the controller closes). Kill it to end it."""
    args = [code.host, str(code.port), code.server_key.decode(), str(count), source]
    proc = subprocess.Popen([sys.executable, __file__, "connections", *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "connecting", "the attacker did not start"
    return proc


def _connections(host: str, port: str, server_key: str, count: str, source: str) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    code = nbfl.JoinCode(host, int(port), server_key.encode(), "x" * 8)
    sockets = [stranger(code, source, queue_all=False) for _ in range(int(count))]
    print("connecting", flush=True)
    threading.Event().wait()  # until killed
    del sockets


class RoomProcess:
    """A room (:func:`open_room`) in a process of its own, with ``fd_limit`` file descriptors
    (macOS gives 256), driven line by line: :meth:`step` lets it take its next step and
    returns what it printed."""

    def __init__(self, fd_limit: int):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "room", str(fd_limit)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.code = nbfl.JoinCode.parse(self._line())

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the room's process ended ({self.proc.wait()})")
        return line.strip()

    def step(self) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _room(fd_limit: str) -> None:
    """The other side of :class:`RoomProcess`: rounds before an attack (step 1), during a
    connection flood (step 2), and with a fourth participant (step 3)."""
    import json
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (int(fd_limit), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    room = open_room()
    ctl = room.controller
    print(room.code, flush=True)
    sys.stdin.readline()
    room.rounds(2)
    print(json.dumps({"before": room.rounds(5)[1]}), flush=True)
    sys.stdin.readline()
    with PeakRSS() as peak:  # sampled: a child's ru_maxrss counts its parent's at the fork
        wait_until(lambda: ctl.defense()["closed_connections"] > 0, "connections closed")
        records, during = room.rounds(5)
        print(json.dumps({"during": during, "ok": all(r.status == "ok" for r in records)}), flush=True)
        sys.stdin.readline()
        ctl.wait_for_clients(4, timeout=60)
        records, _ = room.rounds(5)
    print(
        json.dumps(
            {
                "ok": all(r.status == "ok" for r in records),
                "clients": sorted(records[-1].clients),
                "pending": ctl.io.connections.counts()[1],
                "pending_cap": ctl.io.connections.pending,
                "defense": ctl.defense(),
                "peak_rss_mib": peak.peak,
            }
        ),
        flush=True,
    )
    room.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    {"big-frame": _big_frame, "connections": _connections, "room": _room}[sys.argv[1]](*sys.argv[2:])
