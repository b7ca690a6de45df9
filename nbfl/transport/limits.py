"""Limits: a token bucket for those that count events over time (joins, messages, bytes),
and the process's own limit of open files.

``burst`` events may come at once; after that the bucket refills at ``rate`` a second.
A flood of joins (each would add a registry entry and a welcome) is then refused
cheaply, while a classroom of laptops joining within a few seconds is not.
"""

from __future__ import annotations

import logging
import resource
import time
from typing import Callable

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
    """Raise this process's limit of open files for ``connections`` more TCP connections (a
    controller expecting a thousand clients of their own processes): the soft limit is
    1,024 on Linux and 256 on macOS, and each connection costs a descriptor or two; up to
    the hard limit, with a warning where that is too low."""
    files = 2 * connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= files:
        return
    wanted = files if hard == resource.RLIM_INFINITY else min(files, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-file limit from %d to %d: %s", soft, wanted, exc)
        return
    if wanted < files:
        log.warning("open files are limited to %d here: about %d more connections fit", wanted, (wanted - 256) // 2)
