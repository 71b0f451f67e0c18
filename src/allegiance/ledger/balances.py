"""Balances of wallets and the reconciliation of materialised counters with postings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance.kit import sequences
from allegiance.ledger import repository as repo
from allegiance.ledger.domain import Balance, Counters, balance
from allegiance.ledger.models import JournalEntry, LedgerAccount, Posting


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


def verify_chain(session: Session, tenant_id: str) -> int | None:
    """Recompute the journal's hash chain; returns the first seq that does not verify."""
    previous = ""
    entries = session.scalars(
        select(JournalEntry).where(JournalEntry.tenant_id == tenant_id).order_by(JournalEntry.seq)
    ).all()
    lines: dict[str, list[Posting]] = {}
    for posting in session.scalars(
        select(Posting).where(Posting.tenant_id == tenant_id).order_by(Posting.line_no)
    ):
        lines.setdefault(posting.entry_id, []).append(posting)
    for entry in entries:
        body = ";".join(
            f"{p.line_no}:{p.account_id}:{p.unit_id}:{p.side}:{p.amount}"
            for p in lines.get(entry.id, [])
        )
        content = (
            f"{entry.seq}|{entry.id}|{entry.program_id}|{entry.kind}|"
            f"{entry.effective_at.isoformat()}|{entry.entry_key or ''}|"
            f"{entry.reverses_entry_id or ''}|{body}"
        )
        previous = sequences.chain(previous, content)
        if previous != entry.hash:
            return entry.seq
    return None
