"""The member wallets' aging (``ledger_aging``), recomputed from the postings.

The table itself is written by the database (a trigger on ``posting``, migration
``0018_aging``); this module states what it must hold, from the immutable postings, so tests
and reconciliation can compare the two.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from allegiance.ledger.models import Aging, JournalEntry, LedgerAccount, Posting

EPOCH = date(1970, 1, 1)
MEMBER_OWNERS = ("account", "user")

AgingRows = dict[tuple[str, int], tuple[int, int, int]]


def day_number(moment: datetime) -> int:
    """Days since 1970-01-01 of the UTC date of ``moment``."""
    return (moment.astimezone(UTC).date() - EPOCH).days


def recompute(session: Session, tenant_id: str) -> AgingRows:
    """(wallet, day) → (credits, debits, remaining) from the postings of the tenant's member
    wallets: a day's credits and debits are summed; the balance is made of the newest
    credits (debits consume the oldest first), so walking the days newest first each day
    keeps min(its credits, what is left of the balance); nothing while the balance is < 0."""
    rows = session.execute(
        select(Posting.account_id, JournalEntry.effective_at, Posting.side, Posting.amount)
        .join(JournalEntry, and_(JournalEntry.tenant_id == Posting.tenant_id,
                                 JournalEntry.id == Posting.entry_id))
        .join(LedgerAccount, and_(LedgerAccount.tenant_id == Posting.tenant_id,
                                  LedgerAccount.id == Posting.account_id))
        .where(Posting.tenant_id == tenant_id, LedgerAccount.purpose == "wallet",
               LedgerAccount.owner_type.in_(MEMBER_OWNERS))
    ).all()
    days: dict[str, dict[int, list[int]]] = defaultdict(dict)
    for account_id, effective_at, side, amount in rows:
        totals = days[account_id].setdefault(day_number(effective_at), [0, 0])
        totals[0 if side == "C" else 1] += int(amount)
    out: AgingRows = {}
    for account_id, by_day in days.items():
        left = sum(c - d for c, d in by_day.values())
        for day in sorted(by_day, reverse=True):
            credits, debits = by_day[day]
            part = max(0, min(credits, left))
            left -= part
            out[(account_id, day)] = (credits, debits, part)
    return out


def stored(session: Session, tenant_id: str) -> AgingRows:
    """The rows the trigger keeps, in the same shape as :func:`recompute`."""
    rows = session.execute(
        select(Aging.account_id, Aging.day, Aging.credits, Aging.debits, Aging.remaining)
        .where(Aging.tenant_id == tenant_id)
    ).all()
    return {(r[0], int(r[1])): (int(r[2]), int(r[3]), int(r[4])) for r in rows}
