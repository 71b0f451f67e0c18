"""Correctness of what ``bench ledger`` wrote: reconcile, balances against the plan, entry
counts, the hash chain, and a replay that adds nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from allegiance import ledger
from bench.common import Check

if TYPE_CHECKING:
    from bench.ledger import World


def check_world(world: World, engine: str, label: str, events: Sequence[tuple[int, int]],
                replay: Sequence[Any]) -> list[Check]:
    checks: list[Check] = []
    total = sum(amount for _, amount in events)
    per_wallet: dict[str, int] = defaultdict(int)
    for w, amount in events:
        per_wallet[world.wallet_ids[w]] += amount
    tid = world.tenant_id
    with world.db.read() as s:
        accounts, mismatches = ledger.reconcile(s, tid)
        checks.append(Check(f"{label}.reconcile", engine, not mismatches,
                            f"{accounts} accounts, {len(mismatches)} mismatches"))
        rows = s.execute(
            select(ledger.LedgerAccount.id, ledger.LedgerAccount.debits_posted,
                   ledger.LedgerAccount.credits_posted)
            .where(ledger.LedgerAccount.tenant_id == tid)
        ).all()
        wallets_ok = all(
            (credits - debits) == per_wallet.get(account_id, 0)
            for account_id, debits, credits in rows if account_id != world.issued_id
        )
        issued = next(r for r in rows if r[0] == world.issued_id)
        balances = sum(int(c) - int(d) for a, d, c in rows if a != world.issued_id)
        checks.append(Check(
            f"{label}.balances", engine,
            wallets_ok and balances == total and issued[1] == total and issued[2] == 0,
            f"sum of wallet balances {balances}, issued {issued[1]}, posted {total}",
        ))
        entries = s.scalar(select(func.count()).select_from(ledger.JournalEntry)
                           .where(ledger.JournalEntry.tenant_id == tid))
        sides = dict(s.execute(
            select(ledger.Posting.side, func.sum(ledger.Posting.amount))
            .where(ledger.Posting.tenant_id == tid).group_by(ledger.Posting.side)
        ).all())
        checks.append(Check(
            f"{label}.entries", engine,
            entries == len(events) and sides.get("D") == sides.get("C") == total,
            f"{entries} entries, debits {sides.get('D')}, credits {sides.get('C')}",
        ))
        broken = ledger.verify_chain(s, tid)
        checks.append(Check(f"{label}.hash_chain", engine, broken is None,
                            "verifies" if broken is None else f"breaks at seq {broken}"))
    with world.db.transaction() as s:
        results = ledger.post_entries(s, tid, replay)
    with world.db.read() as s:
        after = s.scalar(select(func.count()).select_from(ledger.JournalEntry)
                         .where(ledger.JournalEntry.tenant_id == tid))
    replayed_ok = after == entries and all(
        isinstance(r, ledger.EntryResult) and not r.created for r in results
    )
    checks.append(Check(f"{label}.replay", engine, replayed_ok,
                        f"re-posted {len(replay)} keys, {int(after or 0) - int(entries or 0)} added"))
    return checks
