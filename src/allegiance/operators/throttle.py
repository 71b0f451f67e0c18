"""Sign-in throttling: after too many failures for one e-mail (or from one address) in a
window, further attempts are refused until the window moves on. In-process, like the API's
rate limiter; a successful sign-in clears the e-mail's failures."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from allegiance.operators.errors import TooManyAttempts

WINDOW_SECONDS = 15 * 60
PER_EMAIL = 5
PER_ADDRESS = 50


class Throttle:
    def __init__(self, per_email: int = PER_EMAIL, per_address: int = PER_ADDRESS,
                 window: float = WINDOW_SECONDS) -> None:
        self.per_email, self.per_address, self.window = per_email, per_address, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def check(self, email: str, address: str) -> None:
        """Raise :class:`TooManyAttempts` while either key is over its limit."""
        now = time.monotonic()
        with self._lock:
            for key, limit in ((f"e:{email}", self.per_email), (f"a:{address}", self.per_address)):
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = math.ceil(times[0] + self.window - now)
                    raise TooManyAttempts(
                        f"too many failed sign-ins; try again in {max(1, wait // 60)} minutes",
                        retry_after=max(1, wait))

    def failed(self, email: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (f"e:{email}", f"a:{address}"):
                self._recent(key, now).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of e-mails
                self._failures = {k: v for k, v in self._failures.items() if v}

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failures.pop(f"e:{email}", None)
