"""Finance statements: every movement of members' wallets in a period, by what caused it
(cash-outs, donations, commissions, rebates, fund reimbursements, payouts…), straight from
the journal, so the statement reconciles with the ledger to the cent.

Finance pays money: each line also carries its value in the program's base currency (the
unit's ``value_in_base`` × the amount, rounded half-even to the currency's minor unit — exact
for money units and for points worth whole cents) and that currency; a unit with no value
(``value_in_base`` 0) has none (``value`` empty)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import ledger, rewards, tenants
from allegiance.kit.errors import NotFound
from allegiance.kit.money import currency_exponent
from allegiance.payouts.domain import safe_cell
from allegiance.payouts.errors import InvalidPayout

COLUMNS = ("entry_id", "seq", "effective_at", "category", "kind", "source_type", "source_id",
           "owner_type", "owner_id", "unit", "amount", "detail", "currency", "value")


@dataclass(frozen=True)
class StatementLine:
    entry_id: str
    seq: int
    effective_at: datetime
    category: str
    kind: str
    source_type: str
    source_id: str
    owner_type: str
    owner_id: str
    unit: str
    amount: int  # credit to the member positive, debit negative
    detail: str
    currency: str  # the program's base currency ("" when the unit has no value)
    value: Decimal | None  # the amount's value in it, to the minor unit; None: no value


def _value(amount: int, per_unit: Decimal, quantum: Decimal) -> Decimal | None:
    if per_unit <= 0:
        return None
    return (per_unit * amount).quantize(quantum, rounding=ROUND_HALF_EVEN)


def _category(session: Session, tenant_id: str, kind: str, source_type: str | None,
              source_id: str | None, cache: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(category, detail): a redemption is named by its reward's kind (cashout, donation…)."""
    if source_type == "redemption" and source_id:
        if source_id not in cache:
            try:
                row = rewards.get_redemption(session, tenant_id, source_id)
                reward = rewards.get_reward(session, tenant_id, row.reward_id)
                cache[source_id] = (reward.kind, row.cause or reward.code)
            except NotFound:
                cache[source_id] = ("redemption", "")
        category, detail = cache[source_id]
        return (category if kind != "reversal" else f"{category}_refund"), detail
    return kind, ""


def statement(session: Session, tenant_id: str, program_id: str, *, start: datetime,
              end: datetime, unit_id: str | None = None) -> list[StatementLine]:
    """Postings to member wallets with ``start <= effective_at < end``, in journal order."""
    program = tenants.get_program(session, tenant_id, program_id)
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        raise InvalidPayout("need from < to, both with a time zone offset", field="from")
    entry, posting, account = ledger.JournalEntry, ledger.Posting, ledger.LedgerAccount
    query = (
        select(entry.id, entry.seq, entry.effective_at, entry.kind, entry.source_type,
               entry.source_id, account.owner_type, account.owner_id, posting.unit_id,
               posting.side, posting.amount)
        .join(posting, (posting.tenant_id == entry.tenant_id) & (posting.entry_id == entry.id))
        .join(account, (account.tenant_id == posting.tenant_id)
              & (account.id == posting.account_id))
        .where(entry.tenant_id == tenant_id, entry.program_id == program_id,
               entry.effective_at >= start, entry.effective_at < end,
               account.owner_type.in_(("account", "user")), account.purpose == "wallet")
        .order_by(entry.seq, posting.line_no))
    if unit_id is not None:
        query = query.where(posting.unit_id == unit_id)
    units = tenants.list_units(session, tenant_id, program_id)
    codes = {u.id: u.code for u in units}
    worth = {u.id: Decimal(u.value_in_base) for u in units}
    currency = program.base_currency
    quantum = Decimal(1).scaleb(-currency_exponent(currency))
    cache: dict[str, tuple[str, str]] = {}
    out = []
    for (entry_id, seq, at, kind, source_type, source_id, owner_type, owner_id, unit, side,
         amount) in session.execute(query):
        category, detail = _category(session, tenant_id, kind, source_type, source_id, cache)
        signed = amount if side == "C" else -amount
        value = _value(signed, worth.get(unit, Decimal(0)), quantum)
        out.append(StatementLine(
            entry_id, seq, at, category, kind, source_type or "", source_id or "", owner_type,
            owner_id, codes.get(unit, unit), signed, detail,
            currency if value is not None else "", value))
    return out


def totals(lines: Sequence[StatementLine]) -> dict[str, dict[str, int]]:
    """{unit: {category: net amount}}."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in lines:
        out[line.unit][line.category] += line.amount
    return {unit: dict(by) for unit, by in out.items()}


def value_totals(lines: Sequence[StatementLine]) -> dict[str, dict[str, Decimal]]:
    """{unit: {category: net value in the base currency}}: the sum of the lines' values (so
    the file adds up), for the units that have a value."""
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for line in lines:
        if line.value is not None:
            out[line.unit][line.category] += line.value
    return {unit: dict(by) for unit, by in out.items()}


def to_csv(lines: Sequence[StatementLine]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line in lines:
        writer.writerow([line.entry_id, line.seq, line.effective_at.isoformat(), line.category,
                         line.kind, line.source_type, line.source_id, line.owner_type,
                         line.owner_id, line.unit, line.amount, safe_cell(line.detail),
                         line.currency, "" if line.value is None else str(line.value)])
    return buffer.getvalue()
