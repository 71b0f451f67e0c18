"""Balances of wallets and the reconciliation of materialised counters with postings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from allegiance.ledger import repository as repo
from allegiance.ledger.domain import Balance, Counters, balance
from allegiance.ledger.models import LedgerAccount


def balance_of(account: LedgerAccount) -> Balance:
    return balance(
        account.normal,
        Counters(account.debits_posted, account.credits_posted, account.debits_pending,
                 account.credits_pending),
    )


@dataclass(frozen=True)
class Mismatch:
    tenant_id: str
    account_id: str
    stored: tuple[int, int, int, int]
    computed: tuple[int, int, int, int]


def reconcile(session: Session, tenant_id: str | None = None) -> tuple[int, list[Mismatch]]:
    """Recompute every account's counters from postings and pending holds.

    Returns (accounts checked, mismatches). Mismatches must always be empty.
    """
    rows = repo.recompute_all(session, tenant_id)
    bad = [
        Mismatch(r["tenant_id"], r["account_id"], r["stored"], r["computed"])
        for r in rows if r["stored"] != r["computed"]
    ]
    return len(rows), bad
