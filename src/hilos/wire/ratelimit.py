"""A thread-safe token bucket that paces packet senders (`--rate`): the sweep and the scans."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]

# Sleeping shorter than this is useless (the scheduler wakes us late anyway); below it we let the
# debt accumulate and pay it in one longer sleep, so 100k pps never means 100k sleeps per second.
_MIN_SLEEP = 0.0005


class TokenBucket:
    """Pace callers to `rate` tokens per second with bursts of up to `burst` tokens.

    A generic cell rate algorithm: the bucket keeps the theoretical arrival time (TAT) of the
    next token instead of a token count, so `take(n)` is one lock, a few float operations and, when
    the caller is ahead of schedule, one sleep for the whole batch. Senders take tokens in small
    batches (e.g. 32 packets) to pace 100k+ packets per second without a sleep per packet.
    Several threads may share one bucket; each reservation is made under the lock, the sleep
    happens outside it. `rate=None` (or infinity) means unlimited: `take` returns at once.

        bucket = TokenBucket(rate=10_000, burst=64)
        for batch in batches:
            bucket.take(len(batch))
            send(batch)
    """

    __slots__ = ("_clock", "_interval", "_lock", "_sleep", "_tat", "_tolerance", "burst", "rate")

    def __init__(
        self,
        rate: float | None,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be positive or None, not {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self.rate = None if rate is None or rate == float("inf") else float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._interval = 0.0 if self.rate is None else 1.0 / self.rate
        # A full bucket lets `burst` tokens go at once: the TAT may run that far ahead of now.
        self._tolerance = self._interval * self.burst
        self._tat = clock()

    @property
    def unlimited(self) -> bool:
        return self.rate is None

    def reserve(self, n: int = 1) -> float:
        """Reserve `n` tokens now; return the seconds the caller must wait before using them."""
        if self.rate is None or n <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            tat = self._tat if self._tat > now else now
            self._tat = tat + n * self._interval
            return self._tat - self._tolerance - now

    def take(self, n: int = 1) -> float:
        """Block until `n` tokens are available and consume them; return the seconds slept."""
        wait = self.reserve(n)
        if wait < _MIN_SLEEP:
            return 0.0
        self._sleep(wait)
        return wait

    def try_take(self, n: int = 1) -> bool:
        """Consume `n` tokens if they are available right now, without blocking."""
        if self.rate is None or n <= 0:
            return True
        with self._lock:
            now = self._clock()
            tat = self._tat if self._tat > now else now
            new_tat = tat + n * self._interval
            if new_tat - self._tolerance > now:
                return False
            self._tat = new_tat
            return True

    def __repr__(self) -> str:
        rate = "unlimited" if self.rate is None else f"{self.rate:g}/s"
        return f"TokenBucket({rate}, burst={self.burst})"
