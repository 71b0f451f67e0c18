"""A token bucket per API key (in-process; each API process limits on its own)."""

from __future__ import annotations

import math
import threading
import time

from allegiance.kit.errors import RateLimited


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute // 6))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate) if self.rate > 0 else 60
                raise RateLimited("too many requests for this API key", retry_after=wait)
            self._buckets[key] = (tokens - 1.0, now)
