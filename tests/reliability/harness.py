"""Shared helpers of the reliability tests: a world per tenant, bounded thread pools,
retry-on-contention, and table/row counts."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from allegiance.kit.db import Database

T = TypeVar("T")

# Per-test time bound for any loop in this package (seconds); pytest-timeout backs it up.
LOOP_BUDGET = float(os.environ.get("ALLEGIANCE_RELIABILITY_BUDGET", "60"))


def is_retryable(exc: BaseException) -> bool:
    """Serialization failure / deadlock (PostgreSQL) or a busy database (SQLite)."""
    orig = getattr(exc, "orig", exc)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("40001", "40P01"):
        return True
    message = str(orig).lower()
    return ("database is locked" in message or "database is busy" in message
            or "too many clients" in message)


@dataclass
class Retries:
    """Counts the contention retries of a run (thread-safe)."""

    count: int = 0
    busy: int = 0
    connect: int = 0
    busy_errors: list[str] = field(default_factory=list)  # the first few, as raised
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, exc: BaseException) -> None:
        text = str(getattr(exc, "orig", exc))
        message = text.lower()
        with self.lock:
            if "too many clients" in message:  # a shared server ran out of connection slots
                self.connect += 1
                return
            self.count += 1
            if "locked" in message:
                self.busy += 1
                if len(self.busy_errors) < 3:
                    self.busy_errors.append(text)


def with_retries(fn: Callable[[], T], retries: Retries, attempts: int = 20) -> T:
    """Run ``fn`` (one whole transaction) again on serialization failures and deadlocks."""
    for attempt in range(attempts):
        try:
            return fn()
        except (OperationalError, DBAPIError) as exc:
            if not is_retryable(exc) or attempt == attempts - 1:
                raise
            retries.note(exc)
            crowded = "too many clients" in str(getattr(exc, "orig", exc)).lower()
            time.sleep((0.05 if crowded else 0.001) * (attempt + 1))
    raise AssertionError("unreachable")


def run_threads(
    n: int, target: Callable[[int, threading.Barrier], Any], *, timeout: float = 60.0
) -> list[Any]:
    """Start ``n`` threads released together by a barrier; returns each result or exception."""
    barrier = threading.Barrier(n, timeout=timeout)
    results: list[Any] = [None] * n

    def runner(i: int) -> None:
        try:
            results[i] = target(i, barrier)
        except BaseException as exc:  # reported to the caller, never swallowed
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not stuck, f"threads {stuck} did not finish within {timeout}s"
    return results


def connection_budget(db: Database, wanted: int, *, spare: int = 12, least: int = 16) -> int:
    """How many threads may each hold a connection: ``wanted``, or fewer when a shared
    PostgreSQL server has fewer free slots (never below ``least``). SQLite: ``wanted``."""
    if db.is_sqlite:
        return wanted
    with db.read() as s:
        free = int(s.execute(text(
            "SELECT current_setting('max_connections')::int - COUNT(*) FROM pg_stat_activity"
        )).scalar_one())
    return max(least, min(wanted, free - spare))


def count(db: Database, sql: str, **params: Any) -> int:
    with db.read() as s:
        return int(s.execute(text(sql), params).scalar_one())


def engine_name(db: Database) -> str:
    return "sqlite" if db.is_sqlite else "postgres"
