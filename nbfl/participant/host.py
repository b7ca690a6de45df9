"""Many logical clients in one process: simulation at research scale.

A thousand participants as a thousand processes would cost a thousand Python
interpreters. A :class:`Host` runs many :class:`~nbfl.participant.client.Client` objects
in one process instead. Each keeps its own name, data share and state (SCAFFOLD's control
variate, say), and joins as a client of its own, so the controller lists, samples, times
out and drops each one as it would a separate process; killing the host loses exactly
its clients.

What they share is the process, one connection to the controller with its one IO thread
(:class:`~nbfl.transport.threads.SharedConnection`: each client's messages go behind a
frame that names it), and one :class:`~nbfl.participant.client.Runner`: the clients a
round samples train one after another (or ``workers`` at a time), and a client that is
not sampled costs only its data. A connection costs the controller some 27 KiB of
ZeroMQ's buffers, so a thousand clients on four connections keep its memory nearly flat.
Only a controller without CurveZMQ takes hosted clients: a kit's or a workshop's key
names one participant.
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

from ..protocol.names import ParticipantState
from ..transport.threads import HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, SharedConnection
from .client import Client, Runner

JOIN_WAVE = 16  # joins a host has unanswered at once: a controller admits 32 at once from one address
MAX_CLIENTS = 500  # a host's clients at most: a round's tasks to all of them fit the connection's queue (1,000)

log = logging.getLogger(__name__)


class Host:
    """``len(names)`` logical clients of ``endpoint`` in this process, on one connection.

    ``setup(i)`` gives the :class:`~nbfl.participant.client.Client` keyword arguments of
    client ``i`` (its executor, data, samples, labels, share); ``common`` are those all
    share (``accept_code``...). ``workers`` clients train at once, each on a thread of
    its own (one by default: a process of many clients trains one task at a time, as the
    round's sampled clients come).
    """

    def __init__(
        self,
        endpoint: str,
        names: Sequence[str],
        setup: Callable[[int], Mapping[str, Any]],
        *,
        workers: int = 1,
        insecure: bool = False,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        **common: Any,
    ):
        if len(set(names)) != len(names):
            raise ValueError("each client of a host needs a name of its own")
        if not 0 < len(names) <= MAX_CLIENTS:
            raise ValueError(f"a host takes 1 to {MAX_CLIENTS} clients, not {len(names)}: start more hosts")
        self.connection = SharedConnection(
            endpoint, heartbeat_interval=heartbeat_interval, heartbeat_timeout=heartbeat_timeout, insecure=insecure
        )
        self._runners = [Runner(f"nbfl-host-worker-{k}") for k in range(max(1, workers))]
        self.clients = [
            Client(
                endpoint,
                name,
                runner=self._runners[i % len(self._runners)],
                link=functools.partial(self.connection.link, str(i).encode()),
                insecure=insecure,
                **setup(i),
                **common,
            )
            for i, name in enumerate(names)
        ]
        self._stopped = threading.Event()

    def start(self, wait: float = 60.0) -> "Host":
        """Join every client, :data:`JOIN_WAVE` at a time, each waiting up to ``wait`` seconds for
        its welcome. Clients that could not join are logged and left out; a ConnectionError
        says why when none could."""
        self.connection.start()
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
        """Every client leaves (a bye each), then the workers and the connection end."""
        for client in self.clients:
            client.stop()
        for runner in self._runners:
            runner.close()
        self.connection.stop()
        self._stopped.set()


def _join(client: Client, wait: float) -> str | None:
    try:
        client.start(wait=wait)
    except ConnectionError as exc:
        return str(exc)
    return None
