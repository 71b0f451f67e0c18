"""Who is calling: a principal (a tenant's API key with scopes) and what scopes allow.
Feature-agnostic, so the web layer in ``kit.web`` can check scopes without knowing tenants."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

SCOPES = ("admin", "integration", "read")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant's API key with its scopes (and optional program restriction)."""

    tenant_id: str
    key_id: str
    scopes: tuple[str, ...]
    program_ids: tuple[str, ...] = ()

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_id}"


def scope_allows(granted: list[str], needed: str) -> bool:
    """``admin`` may do everything, ``integration`` may write and read, ``read`` may read."""
    if "admin" in granted:
        return True
    if needed == "read":
        return bool({"integration", "read"} & set(granted))
    if needed == "integration":
        return "integration" in granted
    return needed in granted


class PrincipalCache:
    """Principals of recently checked API keys, by digest of the secret, so a request does not
    read the key's row every time.

    Correct on change: :meth:`changed` (called by revocation and rotation, and again after their
    commit) makes every entry of that key filled before the mark unusable at once in this
    process; other processes see a revocation within ``ttl`` seconds (the entry's age limit).
    An entry never outlives the key's own expiry (``valid_before``, wall clock of ``kit.clock``).
    """

    def __init__(self, ttl: float, now: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._now = now
        self._entries: dict[str, tuple[Principal, float, datetime | None]] = {}
        self._changed: dict[str, float] = {}
        self._lock = threading.Lock()

    def started(self) -> float:
        """The time to pass to :meth:`put` for a lookup starting now (before reading the key)."""
        return self._now()

    def get(self, digest: str, wall_now: datetime) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, filled, valid_before = entry
        if (self._now() - filled >= self.ttl
                or filled <= self._changed.get(principal.key_id, float("-inf"))
                or (valid_before is not None and wall_now >= valid_before)):
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: str, principal: Principal, started: float,
            valid_before: datetime | None) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if started <= self._changed.get(principal.key_id, float("-inf")):
                return  # the key changed while it was being read
            if len(self._entries) >= 10_000:
                self._entries.clear()
            self._entries[digest] = (principal, started, valid_before)

    def changed(self, key_id: str) -> None:
        with self._lock:
            self._changed[key_id] = self._now()
            for digest in [d for d, e in self._entries.items() if e[0].key_id == key_id]:
                del self._entries[digest]
