"""ZeroMQ sockets owned by one IO thread per side, with heartbeats.

ZeroMQ sockets are not thread-safe, so each side (controller, client) has exactly one
thread that touches its sockets. Other threads hand it outgoing messages through a
queue plus a wake-up byte on a socketpair, and learn of decoded messages through a
handler. Because the IO thread never runs user code, heartbeats keep
flowing while a client trains or the controller aggregates.

Events reach the owner through ``handler(kind, peer, payload)``, called on the IO
thread itself (so it must be quick and never block; nbfl's handlers only update a
registry, queue work for another thread or answer):

* ``("message", peer, Message)``  a decoded, valid message (peer is ``b""`` on a client)
* ``("heartbeat", peer, None)``   an admitted peer beat (controller side; already answered)
* ``("invalid", peer, str)``      frames that failed validation; already answered
* ``("lost", peer, None)``        no heartbeat from an admitted peer within the timeout,
                                  or a send to it failed
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from typing import Any, Callable, Mapping

import zmq

from . import wire

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TIMEOUT = 6.0

Handler = Callable[[str, bytes, Any], None]


class _IOThread(threading.Thread):
    """The shared loop: poll the socket and a wake-up pipe, send, receive, beat."""

    SOCKET_TYPE: int
    THREAD_NAME: str

    def __init__(
        self,
        endpoint: str,
        handler: Handler,
        context: zmq.Context | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
    ):
        super().__init__(name=self.THREAD_NAME, daemon=True)
        self._sock = (context or zmq.Context.instance()).socket(self.SOCKET_TYPE)
        self.endpoint = self._open(endpoint)
        self._handler = handler
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping = threading.Event()
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout

    def _open(self, endpoint: str) -> str:
        """Bind or connect the socket; return the endpoint as peers should use it."""
        raise NotImplementedError

    # -- called from any thread -------------------------------------------------
    def call(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the IO thread (the only one allowed to use the socket)."""
        if threading.current_thread() is self:
            fn(*args)
            return
        self._outbox.put((fn, args))
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):  # the pipe is full (already awake) or closed
            pass

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self.call(lambda: None)
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    # -- the IO thread ----------------------------------------------------------
    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        next_beat = time.monotonic()
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(now)
                    next_beat = now + self.heartbeat_interval
                ready = dict(poller.poll(max(0.0, next_beat - time.monotonic()) * 1000))
                if self._wake_r.fileno() in ready:  # zmq.Poller reports plain sockets by fd
                    self._drain_wake()
                self._run_calls()
                if self._sock in ready:
                    self._receive_all()
        except Exception:  # pragma: no cover - a bug in nbfl itself; do not die silently
            log.exception("IO thread %s crashed", self.name)
        finally:
            self._run_calls()  # flush goodbyes queued right before stop()
            self._sock.close(linger=500)
            self._wake_r.close()
            self._wake_w.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _run_calls(self) -> None:
        while True:
            try:
                fn, args = self._outbox.get_nowait()
            except queue.Empty:
                return
            fn(*args)

    def _receive_all(self) -> None:
        for _ in range(1000):  # bounded, so beats and sends are not starved by a flood
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._on_frames(frames)

    def _emit(self, kind: str, peer: bytes, payload: Any) -> None:
        try:
            self._handler(kind, peer, payload)
        except Exception:  # a bug in a handler must not stop heartbeats
            log.exception("handler failed on %s from %s", kind, peer.hex())

    def _beat(self, now: float) -> None:
        raise NotImplementedError

    def _on_frames(self, frames: list) -> None:
        raise NotImplementedError


class ServerIO(_IOThread):
    """Controller side: a ROUTER bound to ``endpoint``; peers are ZeroMQ identities."""

    SOCKET_TYPE = zmq.ROUTER
    THREAD_NAME = "nbfl-controller-io"

    def __init__(self, *args: Any, **kwargs: Any):
        self._admitted: dict[bytes, float] = {}  # peer -> last time heard from
        super().__init__(*args, **kwargs)

    def _open(self, endpoint: str) -> str:
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unknown peer -> error, not silent drop
        self._sock.setsockopt(zmq.LINGER, 0)
        if not endpoint.endswith(":0"):
            self._sock.bind(endpoint)
            return endpoint
        host = endpoint.rsplit(":", 1)[0]
        return f"{host}:{self._sock.bind_to_random_port(host)}"

    def send(self, peer: bytes, msg: wire.Message) -> None:
        """Queue ``msg`` for ``peer``; tensors go zero-copy, so do not mutate them."""
        frames = wire.encode(msg)
        self.call(self._send_frames, peer, frames)

    def broadcast(self, kind: str, tensors: Mapping[str, Any], fields_by_peer: Mapping[bytes, Mapping[str, Any]]) -> None:
        """Send the same tensors to many peers, each with its own header fields.

        The tensors are wrapped in ``zmq.Frame`` objects once; every peer's message
        reuses them (libzmq counts references), so a model goes to N clients with
        one zero-copy registration instead of N.
        """
        specs, buffers = wire.encode_tensors(tensors)
        shared = [zmq.Frame(buf, copy=False) for buf in buffers]
        sends = [(peer, [wire.encode_header(kind, fields, specs), *shared]) for peer, fields in fields_by_peer.items()]
        for peer, frames in sends:
            self.call(self._send_frames, peer, frames)

    def admit(self, peer: bytes) -> None:
        """Track ``peer``'s heartbeats from now on (it has joined)."""
        self.call(self._admitted.__setitem__, peer, time.monotonic())

    def forget(self, peer: bytes) -> None:
        self.call(self._admitted.pop, peer, None)

    def _send_frames(self, peer: bytes, frames: list) -> None:
        try:
            self._sock.send_multipart([peer, *frames], copy=False)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the peer's connection is gone
            log.debug("send to %s failed: %s", peer.hex(), exc)
            if self._admitted.pop(peer, None) is not None:
                self._emit("lost", peer, None)

    def _on_frames(self, frames: list) -> None:
        peer = frames[0].bytes
        try:
            msg = wire.decode(frames[1:])
        except wire.WireError as exc:
            self._emit("invalid", peer, str(exc))
            self._send_frames(peer, wire.encode(wire.message("error", reason=f"refused: {exc}")))
            return
        if peer in self._admitted:
            self._admitted[peer] = time.monotonic()
        if msg.kind == "heartbeat":
            if peer in self._admitted:
                self._send_frames(peer, wire.encode(wire.message("heartbeat")))
                self._emit("heartbeat", peer, None)
            else:  # e.g. the controller restarted: tell the client to join again
                self._send_frames(peer, wire.encode(wire.message("error", reason="not joined", rejoin=True)))
            return
        self._emit("message", peer, msg)

    def _beat(self, now: float) -> None:
        for peer, seen in list(self._admitted.items()):
            if now - seen > self.heartbeat_timeout:
                del self._admitted[peer]
                self._emit("lost", peer, None)


class ClientIO(_IOThread):
    """Client side: a DEALER connected to the controller; beats every interval."""

    SOCKET_TYPE = zmq.DEALER
    THREAD_NAME = "nbfl-client-io"

    def __init__(self, *args: Any, **kwargs: Any):
        self._last_heard = time.monotonic()
        self._controller_lost = False
        self._heard_once = False  # no beats before the controller first answers (the join)
        super().__init__(*args, **kwargs)

    def _open(self, endpoint: str) -> str:
        self._sock.setsockopt(zmq.LINGER, 1000)
        self._sock.connect(endpoint)
        return endpoint

    def send(self, msg: wire.Message) -> None:
        self.send_frames(wire.encode(msg))

    def send_frames(self, frames: list) -> None:
        """Queue frames made by :func:`wire.encode` (a result already encoded once)."""
        self.call(self._send_frames, frames)

    def _send_frames(self, frames: list) -> None:
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:  # queue to the controller full: it has been gone a long time
            log.warning("controller at %s unreachable; a %d-frame message was dropped", self.endpoint, len(frames))

    def _on_frames(self, frames: list) -> None:
        self._last_heard = time.monotonic()
        self._controller_lost = False
        self._heard_once = True
        try:
            msg = wire.decode(frames)
        except wire.WireError as exc:
            self._emit("invalid", b"", str(exc))
            return
        if msg.kind != "heartbeat":
            self._emit("message", b"", msg)

    def _beat(self, now: float) -> None:
        if self._heard_once:
            self._send_frames(wire.encode(wire.message("heartbeat")))
        if not self._controller_lost and now - self._last_heard > self.heartbeat_timeout:
            self._controller_lost = True
            self._emit("lost", b"", None)
