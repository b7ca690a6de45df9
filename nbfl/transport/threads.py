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
* ``("back", b"", None)``         (client side) the controller answers again after "lost"
* ``("refused", b"", str)``       (client side) the handshake with the controller failed;
                                  the text names the likely cause
* ``("died", b"", exception)``    the IO thread itself ended on a bug; the last event.
                                  Nothing that arrives on a socket can cause it: every
                                  message, ZAP request and queued call is handled inside
                                  its own ``try``, so bad input is logged and dropped.

Hosted clients: a process that simulates many clients (:mod:`nbfl.participant.host`) sends
all of theirs over one connection (:class:`SharedConnection`), each message behind a *via*
frame that names the client (:data:`VIA` and a few bytes). The controller gives each a
peer id of its own (:func:`hosted_peer`), so everything above this module sees separate
clients, while the controller pays for one connection a host instead of one a client.
Only a controller without CurveZMQ accepts them (a kit's or a workshop's key names one
participant).

Security: with :class:`CurveConfig` keys (from a startup kit, :mod:`nbfl.transport.provision`, or
a workshop's join code, :mod:`nbfl.controller.workshop`) every connection is CurveZMQ, encrypted
and authenticated. The controller answers ZAP (ZeroMQ's authentication protocol)
itself, on its IO thread: with a kit it admits only the client keys the kit lists, and
the name ZAP gives a key is the client's identity; in a workshop it admits any key but
a removed participant's, and the join token decides. Without keys, only loopback
endpoints are allowed unless ``insecure=True`` says otherwise.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, cast

import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from ..errors import NbflError
from ..protocol import wire
from ..protocol.names import IoEvent, MessageKind
from .connections import Connections
from .guard import Guard, GuardSettings, Peer

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TIMEOUT = 6.0
REMOVED_GRACE = 1.0  # seconds a removed participant's connection stays open, so the bye queued for it goes out

Handler = Callable[[str, bytes, Any], None]

# ZeroMQ looks for the ZAP handler at this address in the server socket's own context
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"nbfl"
PLAINTEXT_NOTE = "connection unencrypted and unauthenticated: use loopback or a network you trust"


VIA = b"\x01"  # first byte of a via frame: a header starts with "{", so a via frame is never one
MAX_VIA = 32  # bytes a via frame names its client with, at most
MAX_HOSTED_JOIN = 16 << 10  # bytes a hosted client sends before it has joined: a header (a join), no tensors
# a hosted client's peer id starts so, and has at least 6 bytes: ZeroMQ's own routing ids have 5
HOSTED = b"\x00\x00\x01"
# plain ints: pyzmq's multipart helpers combine its flag enums per frame and ask RCVMORE with a
# getsockopt per frame, which costs more than a small model's whole message (see send_all)
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)


def send_all(sock: zmq.Socket, frames: list) -> None:
    """``sock.send_multipart(frames, NOBLOCK, copy=False)``, a frame at a time with plain int
    flags. ZeroMQ takes all of a multipart message once it took its first frame, so a full
    queue raises ``zmq.Again`` on the first frame only, as with ``send_multipart``."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        sock.send(frame, _MORE_NOBLOCK if i < last else _NOBLOCK, copy=False)


def receive_all(sock: zmq.Socket) -> list:
    """One waiting multipart message as ``zmq.Frame`` objects (``recv_multipart(NOBLOCK, copy=False)``,
    reading each frame's ``more`` instead of a getsockopt per frame)."""
    parts = [sock.recv(_NOBLOCK, copy=False)]
    while parts[-1].more:
        parts.append(sock.recv(_NOBLOCK, copy=False))
    return parts


def hosted_peer(routing_id: bytes, client: bytes) -> bytes:
    """The peer id of ``client`` hosted behind the connection ``routing_id``."""
    return HOSTED + bytes([len(routing_id)]) + routing_id + client


def split_peer(peer: bytes) -> tuple[bytes, bytes | None]:
    """``(routing id, via frame)`` of a hosted client's peer id; ``(peer, None)`` for any other."""
    end = 4 + peer[3] if len(peer) >= 6 and peer.startswith(HOSTED) else 0
    if not 4 < end < len(peer):
        return peer, None
    return peer[4:end], VIA + peer[end:]


class InsecureTransportError(NbflError, ValueError):
    """A plaintext endpoint other machines could reach, without ``insecure=True``."""


class BindError(NbflError, ValueError):
    """An address this machine cannot listen on; the message says what to change."""


BIND_HINTS = {
    zmq.EADDRINUSE: "another program (or another controller) uses that port: choose another port, or 0 for a free one",
    zmq.EADDRNOTAVAIL: "this machine has no such address: use one of its own, or 0.0.0.0 for all of them",
    errno.ENODEV: "this machine has no such address or interface: use one of its own, or 0.0.0.0 for all of them",
    errno.EACCES: "ports below 1024 need privileges: choose a port from 1024 up, or 0 for a free one",
}


@dataclass(frozen=True)
class CurveConfig:
    """One party's CurveZMQ keys (z85 text), and whom it trusts.

    A client sets ``server_key`` (the controller's public key); a controller sets
    ``allowed`` (client public key -> the name that client is listed under) or, instead,
    ``admit(key) -> User-Id or None`` (workshop mode admits keys it has not seen).
    ``source`` says where the keys came from, for error messages.
    """

    public_key: bytes
    secret_key: bytes = field(repr=False)
    server_key: bytes | None = None
    allowed: Mapping[bytes, str] = field(default_factory=dict)
    admit: Callable[[bytes], str | None] | None = None
    source: str = "startup kit"


def is_loopback(endpoint: str, connect: bool = False) -> bool:
    """True when only this machine can use ``endpoint``: 127.0.0.0/8, ::1, localhost,
    ``ipc://``, ``inproc://``; to connect to, also 0.0.0.0 (which means this machine).
    A name that does not resolve counts as reachable from outside."""
    scheme, sep, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or not sep:
        return False
    host = rest.rsplit(":", 1)[0].split(";")[-1].strip("[]")  # tcp://[src;]host:port
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [
                ipaddress.ip_address(cast(str, info[4][0]).split("%")[0])  # an IP sockaddr starts with its host
                for info in socket.getaddrinfo(host, None)
            ]
        except (OSError, ValueError):
            return False
    return bool(addresses) and all(a.is_loopback or (connect and a.is_unspecified) for a in addresses)


def check_plaintext(endpoint: str, insecure: bool, connect: bool) -> None:
    """Refuse plaintext off loopback unless the caller said ``insecure=True``: weights
    and task code would cross the network readable and from anyone."""
    if insecure or is_loopback(endpoint, connect):
        return
    verb = "connect to" if connect else "listen on"
    raise InsecureTransportError(
        f"refusing to {verb} {endpoint} without encryption: it is not a loopback address. Use a workshop's join "
        f"line (nbfl://...; %fl_controller start --workshop) or a startup kit (nbfl provision; --kit DIR) for "
        f"CurveZMQ, or pass insecure=True (--insecure) on a network you trust"
    )


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
        *,
        curve: CurveConfig | None = None,
        insecure: bool = False,
    ):
        super().__init__(name=self.THREAD_NAME, daemon=True)
        self.curve = curve
        self._insecure = insecure
        # a ZAP handler serves its whole context: a CURVE server gets a context of its
        # own, so two controllers in one process never answer for each other
        self._own_context = curve is not None and self.SOCKET_TYPE == zmq.ROUTER and context is None
        self._context = zmq.Context() if self._own_context else (context or zmq.Context.instance())
        self._sock = self._context.socket(self.SOCKET_TYPE)
        self._extra: dict[zmq.Socket, Callable[[], None]] = {}  # more sockets the loop polls (ZAP, monitor)
        self._quiet: set[zmq.Socket] = set()  # those of them read once a beat instead (see _read_at_beats)
        self._poller = zmq.Poller()
        try:
            self.endpoint = self._open(endpoint)
        except BaseException:
            self._close_sockets()
            raise
        self._handler = handler
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping = threading.Event()
        self.failure: BaseException | None = None  # what ended the thread, if not stop()
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
        poller = self._poller
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        for extra in self._extra:
            poller.register(extra, zmq.POLLIN)
        next_beat = time.monotonic()
        try:
            while not self._stopping.is_set():
                ready = dict(poller.poll(int(max(0.0, next_beat - time.monotonic()) * 1000)))  # poll int()s a float too
                if self._wake_r.fileno() in ready:  # zmq.Poller reports plain sockets by fd
                    self._drain_wake()
                self._run_calls()
                for extra, handle in self._extra.items():
                    if extra in ready:
                        self._contained(handle, "a ZAP or monitor event")
                if self._sock in ready:
                    self._receive_all()
                # beats are judged after what arrived is read: if this thread was kept from
                # running (a busy process, a long C call holding the GIL), the peers' beats
                # are waiting in the socket and must count before anyone is called lost
                now = time.monotonic()
                if now >= next_beat:
                    for extra in self._quiet:
                        self._contained(self._extra[extra], "a monitor event")
                    self._beat(now)
                    next_beat = now + self.heartbeat_interval
        except BaseException as exc:  # a bug in nbfl itself: say so, and tell the owner below
            self.failure = exc
            log.critical("IO thread %s died: %r", self.name, exc, exc_info=exc)
        finally:
            self._run_calls()  # flush goodbyes queued right before stop()
            self._close_sockets(linger=500)
            self._wake_r.close()
            self._wake_w.close()
            if self.failure is not None:
                self._emit(IoEvent.DIED, b"", self.failure)

    def _read_at_beats(self, extra: zmq.Socket) -> None:
        """Read ``extra`` once a beat from now on, not each time the loop wakes: every socket
        polled costs each wake-up a few system calls, which a small model's task notices. IO thread."""
        if extra not in self._quiet:
            self._poller.unregister(extra)
            self._quiet.add(extra)

    def _close_sockets(self, linger: int = 0) -> None:
        for extra in self._extra:
            extra.close(linger=0)
        self._sock.close(linger=linger)
        if self._own_context:
            self._context.term()

    def _drain_wake(self) -> None:
        try:  # one read: if more than this many wake-ups wait, the next poll reads the rest
            self._wake_r.recv(4096)
        except (BlockingIOError, OSError):
            pass

    def _run_calls(self) -> None:
        # tested with empty(), not by catching Empty: an exception a wake-up costs more than
        # a small message's send (this thread is the queue's only reader)
        while not self._outbox.empty():
            fn, args = self._outbox.get_nowait()
            self._contained(fn, "a queued call", *args)

    def _receive_all(self) -> None:
        for _ in range(1000):  # bounded, so beats and sends are not starved by a flood
            if not cast(int, self._sock.get(zmq.EVENTS)) & _POLLIN:  # asked, not tried: zmq.Again costs more
                return
            self._contained(self._on_frames, "a message", receive_all(self._sock))

    def _contained(self, fn: Callable[..., None], what: str, *args: Any) -> None:
        """Run ``fn(*args)``; an exception is logged and dropped, so no input ends this thread."""
        try:
            fn(*args)
        except Exception:
            log.exception("%s: %s failed and was dropped", self.name, what)

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
    """Controller side: a ROUTER bound to ``endpoint``; peers are ZeroMQ identities.

    No peer can block or starve it (:mod:`nbfl.transport.guard`): sends never block (a participant
    whose queue is full is dropped as lost, a stranger's answer is dropped), every
    message is weighed against its peer's budget before it is decoded, a peer that has
    not joined may send headers only and is answered a few times at most, ZeroMQ
    refuses frames over ``guard.settings.max_frame`` and handshakes slower than
    ``handshake_seconds`` before it allocates or waits for them, and connections that
    have not joined are capped and timed (:mod:`nbfl.transport.connections`).
    """

    SOCKET_TYPE = zmq.ROUTER
    THREAD_NAME = "nbfl-controller-io"
    RCVHWM = 100  # messages queued from one peer; an honest one has a result, a few heartbeats and a ready

    def __init__(self, *args: Any, guard: GuardSettings | None = None, **kwargs: Any):
        self._admitted: dict[bytes, float] = {}  # peer -> last time heard from
        self._hosts: dict[bytes, set[bytes]] = {}  # a host's connection -> its admitted clients' peer ids
        self._traffic: dict[bytes, list[int]] = {}  # peer -> [bytes sent, bytes received]
        self._traffic_lock = threading.Lock()
        self.guard = Guard((guard or GuardSettings()).for_model(0, 0))  # for_model keeps what is set already
        super().__init__(*args, **kwargs)

    def traffic(self) -> dict[bytes, tuple[int, int]]:
        """Bytes sent to and received from each joined peer so far (message frames, before
        ZeroMQ's framing and encryption). Any thread."""
        with self._traffic_lock:
            return {peer: (sent, received) for peer, (sent, received) in self._traffic.items()}

    def _count(self, peer: bytes, frames: list, direction: int) -> None:
        if peer not in self._admitted:  # only joined clients: a flood of strangers must not grow this
            return
        # every frame is bytes, a zmq.Frame or a memoryview of bytes (wire.encode casts each
        # tensor's view to "B"), so len() counts bytes, here and in the budgets' sizes
        size = sum(map(len, frames))
        with self._traffic_lock:
            self._traffic.setdefault(peer, [0, 0])[direction] += size

    def _open(self, endpoint: str) -> str:
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unknown peer -> error, not silent drop
        self._sock.setsockopt(zmq.LINGER, 0)
        settings = self.guard.settings
        assert settings.max_frame is not None
        self._sock.setsockopt(zmq.MAXMSGSIZE, settings.max_frame)  # per frame: a larger one disconnects its sender
        self._sock.setsockopt(zmq.HANDSHAKE_IVL, int(settings.handshake_seconds * 1000))
        self._sock.setsockopt(zmq.RCVHWM, self.RCVHWM)
        self.connections = Connections(
            self._sock,
            pending=settings.pending_connections,
            pending_per_address=settings.pending_per_address,
            join_seconds=settings.join_seconds,
            on_close=self.guard.closed_connection,
            on_ended=self.guard.ended_unjoined,
        )
        self._extra[self.connections.monitor] = self.connections.on_events
        if self.curve is None:
            check_plaintext(endpoint, self._insecure, connect=False)
        else:
            # the handler must be bound before the first client can connect
            zap = self._context.socket(zmq.REP)
            zap.setsockopt(zmq.LINGER, 0)
            zap.bind(ZAP_ENDPOINT)
            self._extra[zap] = lambda: self._answer_zap(zap)
            self._sock.setsockopt(zmq.CURVE_SERVER, 1)
            self._sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.public_key)
            self._sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.secret_key)
            self._sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        try:
            if not endpoint.endswith(":0"):
                self._sock.bind(endpoint)
                return endpoint
            host = endpoint.rsplit(":", 1)[0]
            return f"{host}:{self._sock.bind_to_random_port(host)}"
        except zmq.ZMQError as exc:  # one line that says what to change, not a traceback
            code = cast(int, exc.errno)  # always set: ZMQError takes zmq_errno() when given none
            hint = BIND_HINTS.get(code, "check the host and port")
            raise BindError(f"cannot listen on {endpoint}: {os.strerror(code)}; {hint}") from None

    def send(self, peer: bytes, msg: wire.Message) -> None:
        """Queue ``msg`` for ``peer``; tensors go zero-copy, so do not mutate them."""
        frames = wire.encode(msg)
        self.call(self._send_frames, peer, frames)

    def broadcast(
        self, kind: str, tensors: Mapping[str, Any], fields_by_peer: Mapping[bytes, Mapping[str, Any]]
    ) -> None:
        """Send the same tensors to many peers, each with its own header fields.

        The tensors are wrapped in ``zmq.Frame`` objects once; every peer's message
        reuses them (libzmq counts references), so a model goes to N clients with
        one copy (a small tensor) or one zero-copy registration (a large one), not N.
        """
        specs, buffers = wire.encode_tensors(tensors)  # specs as JSON text: each header embeds it
        # copy unset: tensors under zmq.COPY_THRESHOLD (64 KiB) are copied once, larger ones shared
        # zero-copy; forcing zero-copy on a small one costs more than the copy (pyzmq's release thread)
        shared = [zmq.Frame(buf) for buf in buffers]
        sends = [(peer, [wire.encode_header(kind, fields, specs), *shared]) for peer, fields in fields_by_peer.items()]
        send = self._send_task if kind == "task" else self._send_frames
        # one call, so one wake-up: a call each hands the GIL back and forth with this thread per
        # peer; each send still contained alone, so one that fails does not stop the others
        self.call(self._send_each, send, sends)

    def _send_each(self, send: Callable[[bytes, list], None], sends: list[tuple[bytes, list]]) -> None:
        for peer, frames in sends:
            self._contained(send, "a send", peer, frames)

    def _send_task(self, peer: bytes, frames: list) -> None:
        self.guard.tasked(peer)
        self._send_frames(peer, frames)

    def admit(self, peer: bytes) -> None:
        """Track ``peer``'s heartbeats from now on, with a participant's budgets (it has joined)."""
        self.call(self._admit, peer)

    def forget(self, peer: bytes) -> None:
        self.call(self._drop, peer)

    def ban(self, peer: bytes) -> None:
        """Read nothing more from ``peer`` (a removed participant's connection) and forget it."""
        self.call(self._ban, peer)

    def answer(self, peer: bytes, msg: wire.Message) -> None:
        """Send ``msg`` to ``peer`` if it has joined, or if a stranger's few answers allow it.
        IO thread only (a reply to what the peer sent)."""
        entry = self._peer(peer)
        if self.guard.answer(entry):
            self._send_frames(peer, wire.encode(msg))

    def join_refusal(self, peer: bytes, known: bool) -> str | None:
        """Why ``peer``'s join is refused for load (:meth:`Guard.join_refusal`), or None. IO thread only."""
        return self.guard.join_refusal(self._peer(peer), known)

    def refuse_join(self, peer: bytes, msg: wire.Message, log_text: str, *args: Any) -> None:
        """Count a refused join, log it quietly and answer it (as :meth:`answer`). IO thread only."""
        self.guard.refused_join(self._peer(peer).address, log_text, *args)
        self.answer(peer, msg)

    def address(self, peer: bytes) -> str:
        """The network address ``peer`` connects from ("?" if not known). IO thread only."""
        return self._peer(peer).address

    def authenticated_id(self, peer: bytes) -> str | None:
        """The User-Id our ZAP answer gave ``peer``'s CurveZMQ key when it joined: the
        kit's name for it, or in a workshop the key itself (None in plaintext).

        IO thread only: call it from the handler, while it handles that peer's join.
        """
        return self._peer(peer).user_id

    def _peer(self, peer: bytes, frame: Any = None) -> Peer:
        return self.guard.peer(peer, lambda: _address(frame))

    def _admit(self, peer: bytes) -> None:
        self._admitted[peer] = time.monotonic()
        routing_id, via = split_peer(peer)
        if via is not None:
            self._hosts.setdefault(routing_id, set()).add(peer)
        self.guard.joined(peer)
        self.connections.joined(self._peer(peer).fd)

    def _ban(self, peer: bytes) -> None:
        fd = self._peer(peer).fd  # read before _drop makes the peer a stranger again
        self._drop(peer)
        if split_peer(peer)[1] is None:  # a hosted client shares its host's connection with the others
            self.connections.close(fd, "its participant was removed", after=REMOVED_GRACE)  # its bye goes out first
        self.guard.ban(peer)

    def _drop(self, peer: bytes) -> bool:
        with self._traffic_lock:
            self._traffic.pop(peer, None)
        self.guard.left(peer)
        routing_id, via = split_peer(peer)
        hosted = self._hosts.get(routing_id) if via is not None else None
        if hosted is not None:
            hosted.discard(peer)
            if not hosted:
                del self._hosts[routing_id]
        return self._admitted.pop(peer, None) is not None

    def _answer_zap(self, zap: zmq.Socket) -> None:
        """Answer libzmq's ZAP requests (RFC 27): admit a CURVE key only if the kit
        lists it, and make the client's listed name the connection's User-Id."""
        for _ in range(100):
            try:
                request = zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            request_id = request[1] if len(request) > 1 else b""
            try:
                status, text, user = self._zap_verdict(request)
            except Exception:  # a REP socket must answer before it can read the next request
                log.exception("ZAP request could not be judged; refused")
                status, text, user = b"500", b"internal error", b""
            zap.send_multipart([b"1.0", request_id, status, text, user, b""])

    def _zap_verdict(self, request: list[bytes]) -> tuple[bytes, bytes, bytes]:
        """(status, text, user id) for one ZAP request: 200 with the key's listed name, or 400."""
        # version, request id, domain, address, routing id, mechanism, credentials...
        address = request[3].decode(errors="replace") if len(request) > 3 else "?"
        curve = len(request) == 7 and request[0] == b"1.0" and request[5] == b"CURVE" and len(request[6]) == 32
        key = z85.encode(request[6]) if curve else None
        name = None
        if key is not None and self.curve is not None:
            name = (self.curve.admit or self.curve.allowed.get)(key)
        if name is None:
            shown = key.decode() if key is not None else "?"
            log.warning("refused a connection from %s: CurveZMQ key %s is not admitted", address, shown)
            return b"400", b"key not allowed", b""
        return b"200", b"OK", name.encode()

    def _send_frames(self, peer: bytes, frames: list) -> None:
        """Send without blocking: a peer that does not read cannot hold this thread."""
        routing_id, via = split_peer(peer)
        try:
            send_all(self._sock, [routing_id, *([via] if via else []), *frames])
        except zmq.Again:  # its queue is full: it has not read for a long time
            address = self._peer(peer).address
            if self._drop(peer):
                self.guard.dropped(address)
                self.guard.warn("full", "a participant at %s does not read what it is sent: dropped as lost", address)
                self._emit(IoEvent.LOST, peer, None)
            return
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the peer's connection is gone
            log.debug("send to %s failed: %s", peer.hex(), exc)
            if self._drop(peer):
                self._emit(IoEvent.LOST, peer, None)
            return
        self._count(peer, frames, 0)

    def _on_frames(self, frames: list) -> None:
        peer = frames[0].bytes
        if split_peer(peer)[1] is not None or (len(frames) > 2 and bytes(frames[1].buffer[:1]) == VIA):
            hosted = self._hosted(peer, frames)
            if hosted is None:
                return
            peer, frames = hosted
        entry = self._peer(peer, frames[-1])
        sizes = list(map(len, frames))
        if not self.guard.allow(entry, sum(sizes), sizes[1] if len(sizes) > 1 else 0):
            # no honest client gets here: close its connection, or it keeps this thread reading
            # (not a hosted client's: its host's other clients share the connection)
            if split_peer(peer)[1] is None:
                self.connections.close(_source_fd(frames[-1]), "it sent more than its budget")
            if entry.joined and self._drop(peer):  # a participant flooding: the run goes on without it
                self.guard.dropped(entry.address)
                self._emit(IoEvent.LOST, peer, None)
            return
        admitted = peer in self._admitted
        if not admitted and len(frames) > 2:  # join, heartbeat and bye are a header alone
            self.guard.refused_message(
                entry.address, "stranger", "a peer at %s that has not joined sent tensors: dropped", entry.address
            )
            return
        self._count(peer, frames[1:], 1)
        try:
            msg = wire.decode(frames[1:])
        except wire.WireError as exc:
            self.guard.refused_message(entry.address, "invalid", "refused a message from %s: %s", entry.address, exc)
            self._emit(IoEvent.INVALID, peer, str(exc))
            self.answer(peer, wire.message(MessageKind.ERROR, reason=f"refused: {exc}"))
            return
        if admitted:
            self._admitted[peer] = time.monotonic()
        if msg.kind == MessageKind.JOIN:
            entry.fd = _source_fd(frames[-1])  # the connection it joins on: marked joined, or closed on removal
            if self.curve is not None:
                # set by our ZAP answer for this connection's key; a message cannot forge it
                try:
                    entry.user_id = str(frames[-1].get("User-Id"))
                except zmq.ZMQError:  # no User-Id: not admitted by our ZAP answer; the join is refused
                    entry.user_id = None
        if msg.kind == MessageKind.HEARTBEAT:
            if admitted:
                self._send_frames(peer, wire.encode(wire.message(MessageKind.HEARTBEAT)))
                # a host beats once for all its clients: they live while their connection's IO thread does
                routing_id, behind = split_peer(peer)
                alive = self._hosts.get(routing_id, set()) if behind is not None else {peer}
                now = time.monotonic()
                for client in [c for c in alive if c in self._admitted]:  # the send may have dropped the peer
                    self._admitted[client] = now
                    self._emit(IoEvent.HEARTBEAT, client, None)
            else:  # e.g. the controller restarted: tell the client to join again
                self.answer(peer, wire.message(MessageKind.ERROR, reason="not joined", rejoin=True))
            return
        self._emit(IoEvent.MESSAGE, peer, msg)

    def _hosted(self, routing_id: bytes, frames: list) -> tuple[bytes, list] | None:
        """A hosted client's message as its own peer's (its peer id, the frames without the via
        frame), or None: refused, and the connection closed where no honest peer sends it.

        A hosted client that has not joined may send a small header only (its join), charged
        to its connection's byte budget, so that naming new clients is no way around a budget.
        """
        connection = self._peer(routing_id, frames[-1])
        via = bytes(frames[1].buffer[: MAX_VIA + 2])
        refusal = None
        if split_peer(routing_id)[1] is not None:
            refusal = "its routing id is shaped like a hosted client's, which only a forger sets"
        elif self.curve is not None:
            refusal = "it sent a hosted client's message, which a controller with keys never takes"
        elif not 2 <= len(via) <= MAX_VIA + 1 or len(routing_id) > 255:
            refusal = "its via frame is not one"
        peer = hosted_peer(routing_id, via[1:])
        if refusal is None and peer not in self._admitted:
            size = sum(map(len, frames[2:]))
            if len(frames) != 3 or size > MAX_HOSTED_JOIN or not self.guard.take_bytes(connection, size):
                refusal = "its clients that had not joined sent more than a join"
        if refusal is None:
            return peer, [frames[0], *frames[2:]]
        address = connection.address
        self.guard.refused_message(address, "hosted", "refused a message from %s: %s", address, refusal)
        self.connections.close(_source_fd(frames[-1]), refusal)
        return None

    def _close_sockets(self, linger: int = 0) -> None:
        if hasattr(self, "connections"):
            self.connections.stop()
        super()._close_sockets(linger)

    def _beat(self, now: float) -> None:
        self.connections.sweep()
        for peer, seen in list(self._admitted.items()):
            if now - seen > self.heartbeat_timeout:
                self._drop(peer)
                self._emit(IoEvent.LOST, peer, None)


def _source_fd(frame: Any) -> int | None:
    """The file descriptor of the connection a received frame came from (ZeroMQ's SRCFD), or None."""
    try:
        return int(frame.get(zmq.SRCFD))
    except (zmq.ZMQError, AttributeError, TypeError, ValueError):
        return None


def _address(frame: Any) -> str:
    """The address a received frame came from (ZeroMQ's Peer-Address), or "?"."""
    try:
        return str(frame.get("Peer-Address"))
    except (zmq.ZMQError, AttributeError):
        return "?"


class ClientIO(_IOThread):
    """Client side: a DEALER connected to the controller; beats every interval."""

    SOCKET_TYPE = zmq.DEALER
    THREAD_NAME = "nbfl-client-io"

    # what the monitor reports: handshake outcomes (a failure once per streak), and
    # connections made or refused (before the first, refusals mean nobody listens there)
    MONITORED = (
        zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_CONNECTED
        | zmq.EVENT_CONNECT_RETRIED
    )
    # refused connections before a first one that say nothing listens at the address:
    # retries back off from 0.1 s, so five take about three seconds
    UNREACHABLE_AFTER = 5
    RECONNECT_IVL_MS, RECONNECT_IVL_MAX_MS = 100, 2000

    def __init__(self, *args: Any, **kwargs: Any):
        self._last_heard = time.monotonic()
        self._controller_lost = False
        self._heard_once = False  # no beats before the controller first welcomes this client
        self._handshake_failed = False
        self._monitored = False
        self._connected_once = False
        self._refusals = 0  # connections refused before the first one was made
        super().__init__(*args, **kwargs)

    def _open(self, endpoint: str) -> str:
        self._sock.setsockopt(zmq.LINGER, 1000)
        # a controller that went away is tried again, less and less often (a restart takes seconds)
        self._sock.setsockopt(zmq.RECONNECT_IVL, self.RECONNECT_IVL_MS)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, self.RECONNECT_IVL_MAX_MS)
        if self.curve is None:
            check_plaintext(endpoint, self._insecure, connect=True)
        else:
            if self.curve.server_key is None:
                raise ValueError("a CurveZMQ client needs the controller's public key")
            self._sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.public_key)
            self._sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.secret_key)
            self._sock.setsockopt(zmq.CURVE_SERVERKEY, self.curve.server_key)
        # a failed handshake is otherwise silent: libzmq just retries. The monitor
        # lets start() fail at once with the likely cause instead of timing out
        monitor = self._sock.get_monitor_socket(self.MONITORED)
        self._monitored = True
        self._extra[monitor] = lambda: self._on_monitor(monitor)
        self._sock.connect(endpoint)
        return endpoint

    def _close_sockets(self, linger: int = 0) -> None:
        if self._monitored:
            self._sock.disable_monitor()
        super()._close_sockets(linger)

    def _on_monitor(self, monitor: zmq.Socket) -> None:
        while monitor.poll(0):
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_CONNECTED:
                self._connected_once = True
            elif event == zmq.EVENT_CONNECT_RETRIED:
                self._on_refused()
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_failed = False
            elif not self._handshake_failed:
                self._handshake_failed = True
                self._emit(IoEvent.REFUSED, b"", self._handshake_cause(event))

    @property
    def connected(self) -> bool:
        """Whether a TCP connection to the controller was ever made (the handshake aside)."""
        return self._connected_once

    def _on_refused(self) -> None:
        """Say once, a few seconds after connecting, that nothing listens at the address
        (a controller that answered before and went away is only tried again)."""
        if self._connected_once:
            return
        self._refusals += 1
        if self._refusals == self.UNREACHABLE_AFTER:
            self._emit(
                IoEvent.REFUSED,
                b"",
                f"nothing answers at {self.endpoint} (the connection was refused "
                f"{self._refusals} times): is the controller running, with this address and port?",
            )

    def _handshake_cause(self, event: int) -> str:
        if self.curve is None:
            return (
                "handshake failed: the controller probably requires CurveZMQ (join with its startup kit or join line)"
            )
        source = self.curve.source
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            if source == "startup kit":
                return "the controller refused this client's CurveZMQ key: it is not in the controller's kit"
            return "the controller refused this client: it was removed by the instructor"
        return (
            f"CurveZMQ handshake failed: the controller's public key in this {source} does not match the controller "
            f"at {self.endpoint} (a mistyped or altered {source}, or another controller answers there), "
            "or the controller runs without encryption"
        )

    def send(self, msg: wire.Message) -> None:
        self.send_frames(wire.encode(msg))

    def send_frames(self, frames: list) -> None:
        """Queue frames made by :func:`wire.encode` (a result already encoded once)."""
        self.call(self._send_frames, frames)

    def _send_frames(self, frames: list) -> None:
        try:
            send_all(self._sock, frames)
        except zmq.Again:  # queue to the controller full: it has been gone a long time
            log.warning("controller at %s unreachable; a %d-frame message was dropped", self.endpoint, len(frames))

    def _heard(self) -> None:
        """The controller sent something: it is there (again, if it was lost)."""
        self._last_heard = time.monotonic()
        if self._controller_lost:
            self._controller_lost = False
            self._emit(IoEvent.BACK, b"", None)

    def _welcomed(self) -> None:
        """Let in: beat from now on. What the monitor tells from now on (a failed handshake after a
        reconnect) can wait for the next beat, so each task's wake-up skips the monitor."""
        self._heard_once = True
        for monitor in self._extra:
            self._read_at_beats(monitor)

    def _check_lost(self, now: float) -> None:
        """Say once that the controller has not been heard from within the timeout."""
        if not self._controller_lost and now - self._last_heard > self.heartbeat_timeout:
            self._controller_lost = True
            self._emit(IoEvent.LOST, b"", None)

    def _on_frames(self, frames: list) -> None:
        self._heard()
        try:
            msg = wire.decode(frames)
        except wire.WireError as exc:
            self._emit(IoEvent.INVALID, b"", str(exc))
            return
        if msg.kind == MessageKind.WELCOME:  # beats only once joined: a refused client has nothing to keep alive
            self._welcomed()
        if msg.kind != MessageKind.HEARTBEAT:
            self._emit(IoEvent.MESSAGE, b"", msg)

    def _beat(self, now: float) -> None:
        if self._heard_once:
            self._send_frames(wire.encode(wire.message(MessageKind.HEARTBEAT)))
        self._check_lost(now)


class SharedConnection(ClientIO):
    """One connection to the controller for many hosted clients (:mod:`nbfl.participant.host`),
    owned by one IO thread: each client's messages go behind its via frame, and what comes
    back is handed to that client's :class:`Link`. One beat a second, through any joined
    client, keeps them all alive at the controller (they live while this thread does). That
    the controller answers or not is the connection's, so "lost" and "back" reach every link.
    """

    THREAD_NAME = "nbfl-host-io"

    def __init__(self, endpoint: str, **kwargs: Any):
        self._links: dict[bytes, Link] = {}  # via frame -> link; the IO thread's, but for link() and close
        super().__init__(endpoint, self._to_all, **kwargs)

    def link(self, name: bytes, handler: Handler) -> "Link":
        """A client's way through this connection; ``name`` (at most :data:`MAX_VIA` bytes) is its
        via frame's. It takes effect on the IO thread, before anything the client sends."""
        if not 0 < len(name) <= MAX_VIA:
            raise ValueError(f"a hosted client's via name takes 1 to {MAX_VIA} bytes, not {len(name)}")
        made = Link(self, VIA + name, handler)
        self.call(self._links.__setitem__, made.via, made)
        return made

    def _to_all(self, kind: str, peer: bytes, payload: Any) -> None:
        for link in list(self._links.values()):
            if kind != IoEvent.REFUSED or not link.welcomed:
                link.handler(kind, peer, payload)

    def _on_frames(self, frames: list) -> None:
        self._heard()
        if len(frames) < 2:
            return
        via = bytes(frames[0].buffer[: MAX_VIA + 2])
        link = self._links.get(via)
        try:
            msg = wire.decode(frames[1:])
        except wire.WireError as exc:
            if link is not None:
                link.handler(IoEvent.INVALID, b"", str(exc))
            return
        if link is None:  # a client that left before its join was answered: it is not coming
            if msg.kind in (MessageKind.WELCOME, MessageKind.TASK, MessageKind.PULL):
                self._send_frames([via, *wire.encode(wire.message(MessageKind.BYE, reason="it left its host"))])
            return
        if msg.kind == MessageKind.ERROR and msg.get("rejoin") is True:
            # the controller does not know this connection's clients (it restarted, or the connection
            # is a new one to it): the one that beat was told, and every client must join again
            for each in list(self._links.values()):
                each.welcomed = False
                each.handler(IoEvent.MESSAGE, b"", msg)
            return
        if msg.kind == MessageKind.WELCOME:
            link.welcomed = True
            self._welcomed()
        if msg.kind != MessageKind.HEARTBEAT:
            link.handler(IoEvent.MESSAGE, b"", msg)

    def _beat(self, now: float) -> None:
        # one beat for all: the controller counts it for every client of this connection
        via = next((via for via, link in list(self._links.items()) if link.welcomed), None)
        if via is not None:
            self._send_frames([via, *wire.encode(wire.message(MessageKind.HEARTBEAT))])
        if self._heard_once:  # before any welcome, "lost" would only repeat to every client that none came
            self._check_lost(now)


class Link:
    """What a hosted :class:`~nbfl.participant.client.Client` sends and hears through its
    host's :class:`SharedConnection`; it offers the client what a :class:`ClientIO` does."""

    def __init__(self, shared: SharedConnection, via: bytes, handler: Handler):
        self._shared, self.via, self.handler = shared, via, handler
        self.welcomed = False

    @property
    def connected(self) -> bool:
        return self._shared.connected

    def start(self) -> None:
        """Nothing: the host started the shared connection."""

    def send(self, msg: wire.Message) -> None:
        self.send_frames(wire.encode(msg))

    def send_frames(self, frames: list) -> None:
        self._shared.send_frames([self.via, *frames])

    def stop(self) -> None:
        """Leave the connection: what this client queued (its bye) goes out first."""
        self._shared.call(self._shared._links.pop, self.via, None)
