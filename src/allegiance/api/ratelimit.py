"""The API's limiter: a token bucket per API key (see :mod:`allegiance.kit.ratelimit`)."""

from __future__ import annotations

from allegiance.kit.ratelimit import RateLimiter

__all__ = ["RateLimiter"]
