"""The bandwidth cap: one token bucket that every upload worker and sink draws bytes from.

A sink calls its throttle with the number of bytes it is about to send or copy, and the call
returns once the configured average rate allows them. Waits are measured on the monotonic
clock, so a step of the wall clock (NTP) neither stalls nor bursts uploads. It knows nothing of
files, rows or servers, and decides nothing but how long to wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# What a sink is handed: called with a byte count before those bytes go out.
Throttle = Callable[[int], None]


class RateLimit:
    """A token bucket shared by all workers: at most `rate` bytes/s on average."""

    BURST_S = 0.25

    def __init__(
        self,
        rate: int,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate)
        self.monotonic = monotonic
        self.sleep = sleep
        self.lock = threading.Lock()
        self.ready_at = monotonic()

    def __call__(self, nbytes: int) -> None:
        with self.lock:
            now = self.monotonic()
            self.ready_at = max(self.ready_at, now - self.BURST_S) + nbytes / self.rate
            delay = self.ready_at - now - self.BURST_S
        if delay > 0:
            self.sleep(delay)
