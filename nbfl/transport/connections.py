"""The controller's TCP connections: how many may wait to join, from where, and for how long.

Anyone who can reach a workshop's port can open connections; each costs the controller a
file descriptor (macOS gives a process 256) and a little memory, and ZeroMQ by itself
keeps them for as long as the peer likes. ZeroMQ's socket monitor reports each accepted
connection with its file descriptor, so this module can count and close them: a
connection that has not joined (a *pending* one) is closed once more than
``pending_per_address`` come from its address or more than ``pending`` in all, and when
it has not joined within ``join_seconds``. A participant's connection is marked joined
through the descriptor its join message came from (ZeroMQ's ``SRCFD``), and is closed
when the instructor removes them.

A connection is closed with ``shutdown()`` on a duplicate of its descriptor, after
checking that the descriptor still belongs to the same remote address and port (a
descriptor number is reused once ZeroMQ closes it); ZeroMQ then sees the connection end
and cleans up as for any peer that left. The IO thread alone uses this class.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED


@dataclass
class Connection:
    address: str
    port: int
    since: float
    joined: bool = False
    close_at: float | None = None  # when to close it (see Connections.close)
    why: str = ""


def pending_cap(wanted: int) -> int:
    """``wanted``, or a quarter of this process's file-descriptor limit if that is lower:
    pending connections must never use up the descriptors honest participants need."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(8, min(wanted, soft // 4)) if soft != resource.RLIM_INFINITY else wanted


class Connections:
    """Counts, caps and closes a ROUTER's TCP connections (see the module's docstring)."""

    def __init__(
        self,
        sock: zmq.Socket,
        *,
        pending: int,
        pending_per_address: int,
        join_seconds: float,
        on_close: Callable[[str, str], None],
        on_ended: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.monitor = sock.get_monitor_socket(EVENTS)
        self._sock = sock
        self.pending, self.pending_per_address, self.join_seconds = (
            pending_cap(pending),
            pending_per_address,
            join_seconds,
        )
        self._on_close = on_close  # (address, why): counted and said by the guard
        self._on_ended = on_ended  # (address): a connection that ended before joining, not by our hand
        self._clock = clock
        self._open: dict[int, Connection] = {}  # file descriptor -> connection
        # descriptors whose join came before the monitor's word of their connection: the join
        # arrives on the ROUTER, the event on another socket, and either may be read first
        self._joined_early: set[int] = set()

    def on_events(self) -> None:
        """Read the monitor's events (the IO thread, when its socket is readable)."""
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            fd = event["value"]
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._accepted(fd)
            else:
                connection = self._open.pop(fd, None)
                self._joined_early.discard(fd)
                if connection is not None and not connection.joined:  # ZeroMQ hung up (a frame too large, a
                    self._on_ended(connection.address)  # handshake that failed) or the peer left unjoined

    def joined(self, fd: int | None) -> None:
        """The connection on ``fd`` carried a join that was welcomed: it no longer counts as pending."""
        if fd is None:
            return
        connection = self._open.get(fd)
        if connection is not None:
            connection.joined = True
        else:
            self._joined_early.add(fd)

    def close(self, fd: int | None, why: str, after: float = 0.0) -> None:
        """Close the connection on ``fd``, at once or ``after`` seconds (a removed participant's,
        once the goodbye queued for it has gone out)."""
        connection = self._open.get(fd) if fd is not None else None
        if fd is None or connection is None:
            return
        if after > 0:
            connection.close_at, connection.why = self._clock() + after, why
        else:
            self._shut(fd, connection, why)

    def sweep(self) -> None:
        """Close pending connections older than ``join_seconds``, and those due (called with the heartbeats)."""
        now = self._clock()
        for fd, connection in list(self._open.items()):
            if connection.close_at is not None and now >= connection.close_at:
                self._shut(fd, connection, connection.why)
            elif not connection.joined and now - connection.since > self.join_seconds:
                self._shut(fd, connection, f"it did not join within {self.join_seconds:g} s")

    def counts(self) -> tuple[int, int]:
        """(connections open, of which pending)."""
        return len(self._open), sum(not c.joined for c in self._open.values())

    def stop(self) -> None:
        self._sock.disable_monitor()
        self.monitor.close(linger=0)

    def _accepted(self, fd: int) -> None:
        # already gone (ZeroMQ hung up before this event was read): kept under "?" all the same,
        # so that its end, reported next, is counted
        peer = _remote(fd) or ("?", 0)
        connection = self._open[fd] = Connection(peer[0], peer[1], self._clock())
        if fd in self._joined_early:
            self._joined_early.discard(fd)
            connection.joined = True
            return
        pending = [c for c in self._open.values() if not c.joined]
        from_there = Counter(c.address for c in pending)[connection.address]
        if from_there > self.pending_per_address:
            self._shut(
                fd, connection, f"more than {self.pending_per_address} connections from its address wait to join"
            )
        elif len(pending) > self.pending:
            self._shut(fd, connection, f"more than {self.pending} connections wait to join")

    def _shut(self, fd: int, connection: Connection, why: str) -> None:
        self._open.pop(fd, None)
        if _remote(fd) != (connection.address, connection.port):  # the descriptor is another's by now
            return
        self._on_close(connection.address, why)  # counted first: the peer may see the end before this thread runs on
        try:
            with socket.socket(fileno=os.dup(fd)) as dup:
                dup.shutdown(socket.SHUT_RDWR)
        except OSError:  # it ended by itself in between
            pass


def _remote(fd: int) -> tuple[str, int] | None:
    """The remote (address, port) of a TCP descriptor, or None if it is not one (any more)."""
    try:
        with socket.socket(fileno=os.dup(fd)) as dup:
            peer = dup.getpeername()
    except OSError:
        return None
    return (peer[0], peer[1]) if isinstance(peer, tuple) else None
