"""The expiry job: posts the remainder of expired lots to the program's ``expired`` account.

Two passes, each in chunks, every chunk in its own committed transaction (set-based:
:mod:`allegiance.ledger.expiry_bulk`):

- lots past their ``expires_at`` (N months after earning, end of month/quarter/year), in
  (expires_at, id) order;
- every open lot of wallets whose unit expires points after N months without activity and
  whose last activity is that old.

Resumable and idempotent: each lot's expiry has the business key ``expiry:<lot>:<n>`` (``n``:
the lot's remaining before it), a committed chunk's lots have nothing left to expire, and an
interrupted run started again finds only what is left. Points that a pending hold reserves stay
in the lot; they expire in a later run once the hold is voided or expired (a hold posted
consumes them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from allegiance.kit import clock
from allegiance.kit.errors import Conflict
from allegiance.ledger import expiry_bulk as bulk

CHUNK = 20_000
# A chunk that meets a concurrent writer (a lot used, a wallet changed) is read again.
ATTEMPTS = 5

Transaction = Callable[[], AbstractContextManager[Session]]
Cursor = TypeVar("Cursor")


@dataclass
class ExpiryReport:
    lots: int = 0
    points: int = 0
    entries: int = 0

    def add(self, other: ExpiryReport | bulk.Written) -> None:
        self.lots += other.lots
        self.points += other.points
        self.entries += other.entries


def _report(written: bulk.Written) -> ExpiryReport:
    return ExpiryReport(written.lots, written.points, written.entries)


def expire_due_lots(session: Session, *, limit: int = CHUNK) -> ExpiryReport:
    """Expire the first ``limit`` lots whose date has passed, in the caller's transaction.
    :func:`run_expiry` walks all of them, chunk after chunk."""
    now = clock.now()
    lots, _ = bulk.due_chunk(session, now, limit)
    return _report(bulk.expire(session, lots, now, check_keys=True))


def expire_inactive(session: Session, *, limit: int = CHUNK) -> ExpiryReport:
    """Expire every open lot of wallets inactive for their unit's N months (the first
    ``limit`` such wallets), in the caller's transaction."""
    now = clock.now()
    policies = bulk.inactivity_policies(session)
    report = ExpiryReport()
    after: tuple[str, str] | None = None
    while True:
        lots, after = bulk.inactive_chunk(session, now, policies, limit, after)
        report.add(bulk.expire(session, lots, now, check_keys=True))
        if after is None:
            return report


def _chunks(
    transaction: Transaction,
    step: Callable[[Session, Cursor | None, bool], tuple[bulk.Written, Cursor | None]],
    max_chunks: int,
) -> Iterator[bulk.Written]:
    """Run ``step`` chunk after chunk, each in its own transaction, until it returns no
    position; a chunk that meets a concurrent writer (or a taken key) is rolled back and run
    again, its keys looked up first."""
    after: Cursor | None = None
    for _ in range(max_chunks):
        for attempt in range(ATTEMPTS):
            try:
                with transaction() as session:
                    written, position = step(session, after, attempt > 0)
                break
            except Conflict:
                if attempt == ATTEMPTS - 1:
                    raise
        yield written
        if position is None:
            return
        after = position


def run_expiry(
    transaction: Transaction, *, batch: int = CHUNK, max_batches: int = 1_000_000
) -> ExpiryReport:
    """Run the whole job: due lots, then inactive wallets; ``batch`` lots (or wallets) per
    chunk, each chunk in its own committed transaction.

    ``transaction`` is a context-manager factory yielding a session (``Database.transaction``).
    """
    now = clock.now()
    total = ExpiryReport()

    def due(session: Session, after: tuple[datetime, str] | None, check: bool
            ) -> tuple[bulk.Written, tuple[datetime, str] | None]:
        lots, position = bulk.due_chunk(session, now, batch, after)
        return bulk.expire(session, lots, now, check_keys=check), position

    for written in _chunks(transaction, due, max_batches):
        total.add(written)

    policies: dict[tuple[str, str], int] | None = None

    def idle(session: Session, after: tuple[str, str] | None, check: bool
             ) -> tuple[bulk.Written, tuple[str, str] | None]:
        nonlocal policies
        if policies is None:
            policies = bulk.inactivity_policies(session)
        # A wallet has a few lots: a chunk of wallets is about ``batch`` lots.
        lots, position = bulk.inactive_chunk(session, now, policies, max(1, batch // 4), after)
        return bulk.expire(session, lots, now, check_keys=check), position

    for written in _chunks(transaction, idle, max_batches):
        total.add(written)
    return total
