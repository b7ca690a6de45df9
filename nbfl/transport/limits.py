"""A token bucket, for limits that count events over time (joins, messages, bytes).

``burst`` events may come at once; after that the bucket refills at ``rate`` a second.
A flood of joins (each would add a registry entry and a welcome) is then refused
cheaply, while a classroom of laptops joining within a few seconds is not.
"""

from __future__ import annotations

import logging
import resource
import time
from typing import Callable

import zmq

log = logging.getLogger(__name__)


class RateLimit:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate < 0 or burst < 1:
            raise ValueError(f"rate must not be negative and burst at least 1, got {rate} and {burst}")
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.last = clock()

    def allow(self) -> bool:
        """Take one token if there is one."""
        return self.take(1)

    def take(self, cost: float) -> bool:
        """Take ``cost`` tokens if there are that many (a budget of bytes takes a message's size)."""
        now = self.clock()
        if self.tokens < self.burst:  # granted tokens above the burst stay until they are spent
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def grant(self, tokens: float) -> None:
        """Add ``tokens`` beyond the steady rate, even above the burst (what a task asks a client to send)."""
        self.tokens += tokens


def make_room_for(connections: int) -> None:
    """Raise this process's limits for ``connections`` ZeroMQ connections (a host's logical
    clients, a controller expecting a thousand): open files (the soft limit is 1,024 on
    Linux and 256 on macOS; each connection costs a few descriptors) up to the hard limit,
    and the sockets of ZeroMQ's shared context (1,023 by default; a client has three)."""
    files = 8 * connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < files:
        wanted = files if hard == resource.RLIM_INFINITY else min(files, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, wanted, exc)
        if wanted < files:
            log.warning("open files are limited to %d here: about %d connections fit", wanted, wanted // 8)
    context: zmq.Context = zmq.Context.instance()
    if context.get(zmq.MAX_SOCKETS) < 4 * connections + 64:
        context.set(zmq.MAX_SOCKETS, 4 * connections + 64)
