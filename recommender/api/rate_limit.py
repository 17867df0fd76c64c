"""Requests per API key: a token bucket per key, in this worker process's memory.

A key may make ``burst`` requests at once, then ``rate`` a second. The buckets are
bounded: beyond ``max_keys`` keys the least recently seen bucket is forgotten (that key
starts again with a full bucket). With several workers each keeps its own buckets, so a
key's allowance is per worker.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import HTTPException, status

MAX_KEYS = 10_000


class RateLimiter:
    """``take(key_id)`` spends one request of the key's allowance; ``rate`` or ``burst`` 0: unlimited."""

    def __init__(
        self, rate: float, burst: int, max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key_id -> (tokens, when counted)

    @property
    def enabled(self) -> bool:
        return self.rate > 0 and self.burst > 0

    def take(self, key_id: str) -> None:
        """Count one request of ``key_id``; HTTPException 429 with ``Retry-After`` when its allowance is spent."""
        if not self.enabled:
            return
        now = self.clock()
        tokens, counted = self._buckets.pop(key_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - counted) * self.rate)
        allowed = tokens >= 1 - 1e-9  # a wait of Retry-After seconds refills a whole token despite rounding
        self._buckets[key_id] = (tokens - 1 if allowed else tokens, now)  # the most recently seen last
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        if not allowed:
            wait = max(1, math.ceil((1 - tokens) / self.rate))
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"this API key's limit of {self.rate:g} requests a second (bursts of {self.burst}) is spent;"
                f" retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
