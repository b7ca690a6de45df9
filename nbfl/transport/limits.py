"""A token bucket, for limits that count events over time (joins, messages, bytes).

``burst`` events may come at once; after that the bucket refills at ``rate`` a second.
A flood of joins (each would add a registry entry and a welcome) is then refused
cheaply, while a classroom of laptops joining within a few seconds is not.
"""

from __future__ import annotations

import time
from typing import Callable


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
