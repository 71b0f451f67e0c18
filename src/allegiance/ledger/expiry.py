"""The expiry job: posts the remainder of expired lots to the program's ``expired`` account.

Resumable and idempotent: each lot's expiry has the business key ``expiry:<lot>:<n>``, every
batch commits on its own, and a lot that a pending hold still reserves is expired when the
hold is released.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.kit import clock
from allegiance.kit.expiry import add_months
from allegiance.ledger import repository as repo
from allegiance.ledger.domain import Line, Side
from allegiance.ledger.models import LedgerAccount, Lot
from allegiance.ledger.service import EntryRequest, post_entries, program_account


@dataclass
class ExpiryReport:
    lots: int = 0
    points: int = 0
    entries: int = 0


def expire_due_lots(session: Session, *, limit: int = 1000) -> ExpiryReport:
    """Expire one batch of lots whose date has passed. Call until ``lots`` is 0."""
    now = clock.now()
    report = ExpiryReport()
    due = repo.due_lots(session, now, limit)
    if not due:
        return report
    by_tenant: dict[str, list[tuple[str, str, int]]] = {}
    for tenant_id, lot_id, account_id, remaining in due:
        by_tenant.setdefault(tenant_id, []).append((lot_id, account_id, remaining))
    for tenant_id, lots in by_tenant.items():
        _expire(session, tenant_id, lots, report)
    return report


def expire_inactive(session: Session, *, limit: int = 1000) -> ExpiryReport:
    """Expire every open lot of wallets whose unit expires after N months without activity."""
    now = clock.now()
    report = ExpiryReport()
    rows = session.execute(
        select(LedgerAccount.tenant_id, LedgerAccount.id, LedgerAccount.unit_id,
               LedgerAccount.last_activity_at)
        .where(LedgerAccount.purpose == "wallet", LedgerAccount.owner_type != "program",
               LedgerAccount.credits_posted > LedgerAccount.debits_posted)
    ).all()
    policies: dict[tuple[str, str], int] = {}
    for tenant_id, _account_id, unit_id, _last in rows:
        if (tenant_id, unit_id) not in policies:
            policy = tenants.unit_expiry(session, tenant_id, [unit_id])[unit_id][0]
            policies[(tenant_id, unit_id)] = policy.months if policy.kind == "inactivity" else 0
    for tenant_id, account_id, unit_id, last in rows:
        months = policies[(tenant_id, unit_id)]
        if months == 0 or last is None or add_months(last, months) > now:
            continue
        lots = session.execute(
            select(Lot.id, Lot.account_id, Lot.remaining).where(
                Lot.tenant_id == tenant_id, Lot.account_id == account_id, Lot.remaining > 0
            ).limit(limit)
        ).all()
        _expire(session, tenant_id, [(r[0], r[1], int(r[2])) for r in lots], report)
    return report


def _expire(
    session: Session, tenant_id: str, lots: list[tuple[str, str, int]], report: ExpiryReport
) -> None:
    infos = repo.account_infos(session, tenant_id, {account_id for _, account_id, _ in lots})
    requests: list[EntryRequest] = []
    budget: dict[str, int] = {}
    for lot_id, account_id, remaining in lots:
        info = infos[account_id]
        if account_id not in budget:
            available, _floor = repo.available_and_floor(session, tenant_id, account_id)
            budget[account_id] = max(0, available)
        amount = min(remaining, budget[account_id])
        if amount <= 0:
            continue  # reserved by a pending hold; expired once the hold is released
        budget[account_id] -= amount
        expired = program_account(session, tenant_id, info.program_id, info.unit_id, "expired")
        requests.append(EntryRequest(
            program_id=info.program_id, kind="expiry", source_type="lot", source_id=lot_id,
            entry_key=f"expiry:{lot_id}:{remaining}", expire_lot_id=lot_id, actor="job:expire",
            lines=(
                Line(account_id, info.unit_id, Side.DEBIT, amount),
                Line(expired.id, info.unit_id, Side.CREDIT, amount),
            ),
        ))
        report.lots += 1
        report.points += amount
    results = post_entries(session, tenant_id, requests, partial=True)
    report.entries += sum(1 for r in results if not isinstance(r, Exception) and r.created)


def run_expiry(
    transaction: Callable[[], object], *, batch: int = 1000, max_batches: int = 1_000_000
) -> ExpiryReport:
    """Run the whole job in batches, each batch in its own committed transaction.

    ``transaction`` is a context-manager factory yielding a session (``Database.transaction``).
    """
    total = ExpiryReport()
    for _ in range(max_batches):
        with transaction() as session:  # type: ignore[attr-defined]
            step = expire_due_lots(session, limit=batch)
        total.lots += step.lots
        total.points += step.points
        total.entries += step.entries
        if step.lots == 0 or step.entries == 0:
            break
    with transaction() as session:  # type: ignore[attr-defined]
        step = expire_inactive(session, limit=batch)
    total.lots += step.lots
    total.points += step.points
    total.entries += step.entries
    return total
