"""A token bucket per caller (in-process; each process limits on its own): per API key for the
API, per signed-in user for the member portal. A refused call raises :class:`RateLimited`
with ``retry_after`` seconds, answered as 429 with a ``Retry-After`` header."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from allegiance.kit.errors import RateLimited


class RateLimiter:
    """``per_minute`` calls a minute per key, in bursts of at most ``burst`` (default: a sixth
    of the minute's allowance)."""

    def __init__(self, per_minute: int, burst: int | None = None, *,
                 message: str = "too many requests for this API key",
                 now: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute // 6))
        self.message = message
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        now = self._now()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate) if self.rate > 0 else 60
                raise RateLimited(self.message, retry_after=max(1, wait))
            self._buckets[key] = (tokens - 1.0, now)
