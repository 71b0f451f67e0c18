"""Points liability: what members hold, × the unit's value, by unit, tier and age, at any date.

Now (``at=None``) it is read from ``liability_holding``: per tier and UTC day of credit, the
sum over the member wallets of the part of their balance those credits make up (the ledger's
aging, ``ledger_aging``), kept by the database in each posting's transaction — a read of a
few rows per tier and day, whatever the number of members or postings. At a past date it
is computed from the postings (one statement with window functions). Both are exact: the
outstanding units of a unit add up to the posted balances of the program's member wallets
(``reconcile`` compares them with the ledger's own counters). Age is FIFO — the balance is made
of the wallet's most recent credits, as lots are consumed oldest first — and counted in whole
UTC days: a credit of day D is ``n`` days old on day D + n. Pending amounts (holds)
are reported apart: ``pending_in`` (earnings waiting to be released into wallets) and
``pending_out`` (points reserved for redemptions awaiting approval).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from allegiance import ledger, members
from allegiance.analytics import summaries
from allegiance.analytics.common import (
    MEMBER_OWNERS,
    Report,
    member_account,
    program_of,
    units,
    value_of,
)
from allegiance.kit import clock

# Age buckets in days since the credit: (upper bound inclusive, label); older is "over 365".
AGE_BUCKETS: tuple[tuple[int, str], ...] = (
    (30, "0-30"), (90, "31-90"), (180, "91-180"), (365, "181-365"),
)
OLDEST = "over 365"
NEGATIVE = "negative"
COLUMNS = ["unit", "tier", "age", "outstanding", "value"]


@dataclass(frozen=True)
class UnitTotals:
    unit_id: str
    outstanding: int
    pending_in: int
    pending_out: int
    receivable: int


def _wallets(program_id: str, tenant_id: str) -> Any:
    account = ledger.LedgerAccount
    return and_(account.tenant_id == tenant_id, account.program_id == program_id,
                account.owner_type.in_(MEMBER_OWNERS))


def _bucket(moment: Any, at: datetime) -> ColumnElement[str]:
    """The age bucket of a credit at ``moment`` (a timestamp), in whole UTC days at ``at``."""
    today = datetime.combine(at.astimezone(UTC).date(), time(), tzinfo=UTC)
    whens = [(moment >= today - timedelta(days=days), literal(label))
             for days, label in AGE_BUCKETS]
    return case(*whens, else_=literal(OLDEST))


def aged_now(session: Session, tenant_id: str,
             program_id: str) -> list[tuple[str, str | None, str, int]]:
    """(unit, tier, age bucket, outstanding units) now, from ``liability_holding`` (the
    wallets' remaining balance per tier and credit day, kept by the database in each
    posting's transaction; see :mod:`allegiance.analytics.summaries`): a few rows per tier and
    day, bucketed here by age. A tier's ``negative`` row is the sum of its wallets' balances
    below zero: each wallet's days hold max(0, balance), so ``net - remaining`` over the
    tier's days is the sum of min(0, balance)."""
    today = ledger.aging_day(clock.now())
    labels = [label for _, label in AGE_BUCKETS] + [OLDEST]
    held: dict[tuple[str, str | None], list[int]] = defaultdict(
        lambda: [0] * (len(labels) + 1))
    for unit_id, tier, day, remaining, net in summaries.holdings(session, tenant_id,
                                                                 program_id):
        sums = held[(unit_id, tier or None)]
        age = today - day
        index = next((i for i, (days, _) in enumerate(AGE_BUCKETS) if age <= days),
                     len(AGE_BUCKETS))
        sums[index] += remaining
        sums[-1] += net - remaining
    out: list[tuple[str, str | None, str, int]] = []
    for (unit_of, tier_of), totals in held.items():
        out += [(unit_of, tier_of, label, amount)
                for label, amount in zip(labels, totals, strict=False) if amount]
        if totals[-1]:
            out.append((unit_of, tier_of, NEGATIVE, totals[-1]))
    return out


def outstanding_rows(session: Session, tenant_id: str, program_id: str,
                     at: datetime | None) -> list[tuple[str, str | None, str, int]]:
    """(unit, tier, age bucket, outstanding units) at ``at`` (all postings when None).

    One statement, one pass over the wallets' postings: window functions give each posting its
    wallet's balance and the credits newer than it; a credit holds min(amount, balance −
    newer credits) when that is positive; a wallet below zero is one row of its balance."""
    entry, posting, account = ledger.JournalEntry, ledger.Posting, ledger.LedgerAccount
    user, enrolment = members.User, members.Enrolment
    signed = case((posting.side == "C", posting.amount), else_=-posting.amount)
    credit = case((posting.side == "C", posting.amount), else_=0)
    newest_first = (entry.effective_at.desc(), entry.seq.desc(), posting.line_no.desc())
    windowed = (
        select(
            posting.account_id, posting.unit_id, posting.side, posting.amount,
            entry.effective_at,
            func.sum(signed).over(partition_by=posting.account_id).label("balance"),
            func.sum(credit).over(partition_by=posting.account_id, order_by=newest_first,
                                  rows=(None, 0)).label("newer"),
            func.row_number().over(partition_by=posting.account_id,
                                   order_by=newest_first).label("rn"),
        )
        .join(entry, and_(entry.tenant_id == posting.tenant_id, entry.id == posting.entry_id))
        .join(account, and_(account.tenant_id == posting.tenant_id,
                            account.id == posting.account_id))
        .where(posting.tenant_id == tenant_id, _wallets(program_id, tenant_id),
               account.purpose == "wallet")
    )
    if at is not None:
        windowed = windowed.where(entry.effective_at < at)
    w = windowed.subquery("w")
    room = w.c.balance - (w.c.newer - w.c.amount)
    part = case(
        (w.c.balance < 0, case((w.c.rn == 1, w.c.balance), else_=0)),
        (and_(w.c.side == "C", room > 0),
         case((room >= w.c.amount, w.c.amount), else_=room)),
        else_=0,
    )
    bucket = case((w.c.balance < 0, literal(NEGATIVE)),
                  else_=_bucket(w.c.effective_at, at or clock.now()))
    parts = (
        select(w.c.account_id, w.c.unit_id, bucket.label("age"), part.label("part"))
        .where(part != 0)
    ).subquery("parts")
    member = member_account(account.owner_type, account.owner_id, user.account_id)
    rows = session.execute(
        select(parts.c.unit_id, enrolment.tier, parts.c.age, func.sum(parts.c.part))
        .join(account, and_(account.tenant_id == tenant_id, account.id == parts.c.account_id))
        .outerjoin(user, and_(user.tenant_id == tenant_id, user.id == account.owner_id,
                              account.owner_type == "user"))
        .outerjoin(enrolment, and_(enrolment.tenant_id == tenant_id,
                                   enrolment.program_id == program_id,
                                   enrolment.account_id == member))
        .group_by(parts.c.unit_id, enrolment.tier, parts.c.age)
    ).all()
    return [(r[0], r[1], str(r[2]), int(r[3])) for r in rows if int(r[3]) != 0]


def pending(session: Session, tenant_id: str, program_id: str,
            at: datetime | None) -> dict[str, tuple[int, int]]:
    """Per unit: (pending into member wallets, pending out of them) at ``at``."""
    hold, account = ledger.Hold, ledger.LedgerAccount
    wallet_ids = select(account.id).where(_wallets(program_id, tenant_id),
                                          account.purpose == "wallet")
    into = hold.credit_account_id.in_(wallet_ids)
    out = hold.debit_account_id.in_(wallet_ids)
    query = select(
        hold.unit_id,
        func.sum(case((into, hold.amount), else_=0)),
        func.sum(case((out, hold.amount), else_=0)),
    ).where(hold.tenant_id == tenant_id, hold.program_id == program_id)
    if at is None:
        query = query.where(hold.state == "pending")
    else:
        query = query.where(hold.created_at < at,
                            or_(hold.resolved_at.is_(None), hold.resolved_at >= at))
    rows = session.execute(query.group_by(hold.unit_id)).all()
    return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in rows}


def receivables(session: Session, tenant_id: str, program_id: str,
                at: datetime | None) -> dict[str, int]:
    """Per unit: what members owe (receivable accounts: debits − credits)."""
    entry, posting, account = ledger.JournalEntry, ledger.Posting, ledger.LedgerAccount
    signed = case((posting.side == "D", posting.amount), else_=-posting.amount)
    query = (
        select(posting.unit_id, func.sum(signed))
        .join(account, and_(account.tenant_id == posting.tenant_id,
                            account.id == posting.account_id))
        .where(posting.tenant_id == tenant_id, _wallets(program_id, tenant_id),
               account.purpose == "receivable")
        .group_by(posting.unit_id)
    )
    if at is not None:
        query = query.join(entry, and_(entry.tenant_id == posting.tenant_id,
                                       entry.id == posting.entry_id)
                           ).where(entry.effective_at < at)
    return {r[0]: int(r[1] or 0) for r in session.execute(query).all()}


def ledger_balances(session: Session, tenant_id: str,
                    program_id: str) -> dict[str, tuple[int, int, int]]:
    """The ledger's own counters of the member wallets per unit: (posted, credits pending,
    debits pending)."""
    account = ledger.LedgerAccount
    rows = session.execute(
        select(account.unit_id, func.sum(account.credits_posted - account.debits_posted),
               func.sum(account.credits_pending), func.sum(account.debits_pending))
        .where(_wallets(program_id, tenant_id), account.purpose == "wallet")
        .group_by(account.unit_id)
    ).all()
    return {r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in rows}


def liability(session: Session, tenant_id: str, program_id: str,
              at: datetime | None = None) -> Report:
    """The liability report; ``at=None`` means now, with every posting, and reconciles."""
    program_of(session, tenant_id, program_id)
    by_unit = units(session, tenant_id, program_id)
    order = {label: i for i, (_, label) in enumerate(AGE_BUCKETS)}
    order[OLDEST], order[NEGATIVE] = len(order), len(order) + 1
    raw = (aged_now(session, tenant_id, program_id) if at is None
           else outstanding_rows(session, tenant_id, program_id, at))
    raw.sort(key=lambda r: (by_unit[r[0]].code, r[1] or "", order[r[2]]))
    rows: list[dict[str, Any]] = []
    totals: dict[str, int] = defaultdict(int)
    for unit_id, tier, age, amount in raw:
        unit = by_unit[unit_id]
        rows.append({"unit": unit.code, "tier": tier, "age": age, "outstanding": amount,
                     "value": value_of(amount, unit)})
        totals[unit_id] += amount
    holds = pending(session, tenant_id, program_id, at)
    owed = receivables(session, tenant_id, program_id, at)
    counters = ledger_balances(session, tenant_id, program_id) if at is None else {}
    per_unit = []
    total_value = Decimal(0)
    for unit_id, unit in sorted(by_unit.items(), key=lambda item: item[1].code):
        amount = totals.get(unit_id, 0)
        pin, pout = holds.get(unit_id, (0, 0))
        entry: dict[str, Any] = {
            "unit": unit.code, "kind": unit.kind, "unit_value": Decimal(unit.value_in_base),
            "outstanding": amount, "value": value_of(amount, unit),
            "pending_in": pin, "pending_out": pout,
            "pending_in_value": value_of(pin, unit), "pending_out_value": value_of(pout, unit),
            "receivable": owed.get(unit_id, 0),
        }
        if at is None:
            posted, cpend, dpend = counters.get(unit_id, (0, 0, 0))
            entry["ledger_posted"] = posted
            entry["reconciled"] = posted == amount and cpend == pin and dpend == pout
        total_value += entry["value"]
        per_unit.append(entry)
    summary = {"at": at or clock.now(), "units": per_unit, "total_value": total_value}
    return Report("liability", program_id, "Points liability", COLUMNS, rows, summary,
                  {"at": at})
