"""Many logical clients in one process: simulation at research scale.

A thousand participants as a thousand processes would cost a thousand Python
interpreters. A :class:`Host` runs many :class:`~nbfl.participant.client.Client` objects
in one process instead. Each keeps its own name, data share, state (SCAFFOLD's control
variate, say) and its own connection, so the controller lists, samples, times out and
drops each one as it would a separate process; killing the host loses exactly its
clients. What they share is the process and one :class:`~nbfl.participant.client.Runner`:
the clients a round samples train one after another (or ``workers`` at a time), and a
client that is not sampled costs only its data and its idle connection.

Clients join in waves of :data:`JOIN_WAVE`, so a host never has more connections
waiting to be admitted than a controller allows from one address.

Each client's connection has its IO thread, so a host has hundreds of threads; glibc's
malloc would give many of them an arena of their own, which for 250 clients costs about
12 MiB a host for nothing. A host keeps to :data:`MALLOC_ARENAS`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

from ..protocol.names import ParticipantState
from ..transport.limits import make_room_for
from .client import Client, Runner

JOIN_WAVE = 8  # joins a host has unanswered at once; four hosts stay within a controller's 32 per address
MALLOC_ARENAS = 2

log = logging.getLogger(__name__)


class Host:
    """``len(names)`` logical clients of ``endpoint`` in this process.

    ``setup(i)`` gives the :class:`~nbfl.participant.client.Client` keyword arguments of
    client ``i`` (its executor, data, samples, labels, share); ``common`` are those all
    share (``accept_code``, ``insecure``, ``heartbeat_timeout``...). ``workers`` clients
    train at once, each on a thread of its own (one by default: a process of many
    clients trains one task at a time, as the round's sampled clients come).
    """

    def __init__(
        self,
        endpoint: str,
        names: Sequence[str],
        setup: Callable[[int], Mapping[str, Any]],
        *,
        workers: int = 1,
        **common: Any,
    ):
        if len(set(names)) != len(names):
            raise ValueError("each client of a host needs a name of its own")
        make_room_for(len(names))
        _fewer_arenas()
        self._runners = [Runner(f"nbfl-host-worker-{k}") for k in range(max(1, workers))]
        self.clients = [
            Client(endpoint, name, runner=self._runners[i % len(self._runners)], **setup(i), **common)
            for i, name in enumerate(names)
        ]
        self._stopped = threading.Event()

    def start(self, wait: float = 60.0) -> "Host":
        """Join every client, :data:`JOIN_WAVE` at a time, each waiting up to ``wait`` seconds for
        its welcome. Clients that could not join are logged and left out; a ConnectionError
        says why when none could."""
        for runner in self._runners:
            runner.start()
        with ThreadPoolExecutor(JOIN_WAVE, thread_name_prefix="nbfl-host-join") as pool:
            errors = [e for e in pool.map(lambda c: _join(c, wait), self.clients) if e is not None]
        if errors:
            log.warning("%d of %d clients could not join; the first: %s", len(errors), len(self.clients), errors[0])
        if len(errors) == len(self.clients):
            self.stop()
            raise ConnectionError(f"none of {len(self.clients)} clients could join: {errors[0]}")
        return self

    @property
    def joined(self) -> list[Client]:
        """The clients the controller welcomed and that have not left."""
        return [c for c in self.clients if c.state not in (ParticipantState.CONNECTING, ParticipantState.STOPPED)]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every client has stopped (the controller said bye) or :meth:`stop` ran."""
        if self._stopped.wait(timeout):
            return True
        return all(c.wait(0) for c in self.clients)

    def stop(self) -> None:
        """Every client leaves (a bye each), then the workers end."""
        with ThreadPoolExecutor(JOIN_WAVE, thread_name_prefix="nbfl-host-stop") as pool:
            list(pool.map(lambda c: c.stop(), self.clients))
        for runner in self._runners:
            runner.close()
        self._stopped.set()


def _join(client: Client, wait: float) -> str | None:
    try:
        client.start(wait=wait)
    except ConnectionError as exc:
        return str(exc)
    return None


def _fewer_arenas() -> None:
    """Keep glibc's malloc to :data:`MALLOC_ARENAS` arenas (``M_ARENA_MAX``), before the
    clients' threads start; elsewhere (not glibc) nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # musl has no mallopt
        return
    mallopt(-8, MALLOC_ARENAS)  # -8 is M_ARENA_MAX in glibc's malloc.h
