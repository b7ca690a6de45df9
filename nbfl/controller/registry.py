"""The controller's live list of clients: who joined, on what, in which state.

The IO thread writes it (joins, heartbeats, lost and departed clients) and a run's
thread reads and updates it (training, idle, last results); magics and dashboards read
snapshots. One lock guards it, and a condition wakes whoever waits for clients to join.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Mapping

from ..protocol.names import ClientState
from ..protocol.records import ClientInfo

MAX_DEPARTED = 256  # clients that left, were lost or removed, kept for the table; the oldest go first


class Registry:
    def __init__(self) -> None:
        self._clients: dict[bytes, ClientInfo] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def snapshot(self) -> list[ClientInfo]:
        """Copies of every entry, including clients that were lost or left."""
        with self._lock:
            return [ClientInfo(**vars(c)) for c in self._clients.values()]

    def live(self) -> list[ClientInfo]:
        """Copies of the connected clients' entries (each round asks: the departed are not copied)."""
        with self._lock:
            return [ClientInfo(**vars(c)) for c in self._clients.values() if c.live]

    def name_of(self, peer: bytes) -> str:
        with self._lock:
            info = self._clients.get(peer)
        return info.name if info else f"<unknown {peer.hex()}>"

    def peer_of(self, name: str) -> bytes | None:
        with self._lock:
            return next((c.peer for c in self._clients.values() if c.name == name), None)

    def heard_from(self, peer: bytes) -> bool:
        """Note that ``peer`` is alive; False if it has not joined (or has left)."""
        with self._lock:
            info = self._clients.get(peer)
            if info is None or info.state in (ClientState.LEFT, ClientState.REMOVED):
                return False
            info.last_seen = time.time()
            return True

    def add(self, info: ClientInfo) -> bool:
        """Register a joining client; False if a connected client already has its name.

        A rejoin under a new connection replaces the old entry of the same name.
        """
        with self._lock:
            if any(c.name == info.name and c.peer != info.peer and c.live for c in self._clients.values()):
                return False
            for old in [p for p, c in self._clients.items() if c.name == info.name]:
                del self._clients[old]
            self._clients[info.peer] = info
            departed = [p for p, c in self._clients.items() if not c.live and c.state != ClientState.JOINING]
            for old in departed[: max(0, len(departed) - MAX_DEPARTED)]:  # a newcomer a minute all day must not grow it
                del self._clients[old]
            self._changed.notify_all()
        return True

    def present(self) -> list[str]:
        """Names of the clients connected now, or setting up (joining)."""
        with self._lock:
            return [c.name for c in self._clients.values() if c.live or c.state == ClientState.JOINING]

    def set_state(self, peer: bytes, state: ClientState) -> None:
        with self._lock:
            info = self._clients.get(peer)
            if info is not None:
                _move(info, state)
            self._changed.notify_all()

    def tasked(self, codes: Mapping[bytes, str]) -> None:
        """Clients sent a task: each is training, with the code it runs (its own, or ``%%fl_task``'s).
        One lock for the round's clients, not two each."""
        with self._lock:
            for peer, code in codes.items():
                info = self._clients.get(peer)
                if info is not None:
                    info.code = code
                    _move(info, ClientState.TRAINING)
            self._changed.notify_all()

    def ready(self, peer: bytes) -> None:
        """A client that was still setting up (``joining``) is ready for tasks: it counts as live."""
        with self._lock:
            info = self._clients.get(peer)
            if info is not None and info.state == ClientState.JOINING:
                info.state = ClientState.IDLE
                self._changed.notify_all()

    def update(self, peer: bytes, **fields: object) -> None:
        """Set some of a client's :class:`ClientInfo` fields (what it trains on, what it ran)."""
        with self._lock:
            info = self._clients.get(peer)
            if info is not None:
                for name, value in fields.items():
                    setattr(info, name, value)

    def record_result(self, peer: bytes, number: int, seconds: float, metrics: dict[str, float]) -> None:
        """A result came: its round, time and metrics, and an earlier failure is not the news any more."""
        with self._lock:
            info = self._clients.get(peer)
            if info is not None:
                info.last_round, info.last_seconds, info.last_metrics = number, seconds, metrics
                info.last_error = ""

    def wake(self) -> None:
        """Wake :meth:`wait_for` callers so they check their ``cancelled`` again."""
        with self._lock:
            self._changed.notify_all()

    def wait_for(
        self, n: int, timeout: float | None, where: str, cancelled: Callable[[], None] = lambda: None
    ) -> list[ClientInfo]:
        """Block until ``n`` clients are live; TimeoutError says how many came to ``where``.

        ``cancelled()`` is called while waiting and raises to give up early (a stopped
        run, a dead IO thread).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                cancelled()
                have = sum(c.live for c in self._clients.values())
                if have >= n:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"{have} of {n} clients joined {where} within {timeout} s")
                self._changed.wait(0.5 if remaining is None else min(remaining, 0.5))
        return self.live()


def _move(info: ClientInfo, state: ClientState) -> None:
    """Set ``info``'s state, the registry's lock held: a lost, left or removed client stays so
    until it joins again (only another departure replaces its state)."""
    if info.live or state in (ClientState.LOST, ClientState.LEFT, ClientState.REMOVED):
        info.state = state
