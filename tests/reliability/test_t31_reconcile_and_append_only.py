"""T31: reconciliation reports 0 mismatches after real activity and exactly the corrupted account
after a counter is changed behind the ledger's back. Plus: the database itself refuses UPDATE and
DELETE on journal entries and postings (append-only), on both engines."""

from __future__ import annotations

import random
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from allegiance import ledger
from allegiance.kit.db import Database
from tests.conftest import World, build_world
from tests.reliability.harness import count, engine_name
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

SEED = 31


def _activity(w: World, rng: random.Random, ops: int) -> list[str]:
    wallets = [w.wallet(f"acc_{i}") for i in range(5)]
    for i, wallet_id in enumerate(wallets):
        w.earn(wallet_id, 1000, key=f"seed-{i}")
    for _ in range(ops):
        src, dst = rng.sample(wallets, 2)
        choice = rng.random()
        with w.db.transaction() as s:
            if choice < 0.4:
                ledger.transfer(s, w.tenant_id, from_wallet_id=src, to_wallet_id=dst,
                                amount=rng.randint(1, 50))
            elif choice < 0.7:
                hold, _ = ledger.create_hold(s, w.tenant_id, ledger.HoldRequest(
                    w.program_id, src, w.redeemed_id, w.unit_id, rng.randint(1, 40)))
                if rng.random() < 0.5:
                    ledger.post_hold(s, w.tenant_id, hold.id, rng.randint(1, hold.amount))
            else:
                ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
                    program_id=w.program_id, kind="redeem",
                    lines=(ledger.Line(src, w.unit_id, ledger.Side.DEBIT, 7),
                           ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT, 7))))
    return wallets


def test_t31_reconcile_clean_then_detects_exactly_the_corrupted_account(db: Database) -> None:
    rng = random.Random(SEED)
    w = build_world(db)
    other = build_world(db)  # a second tenant that must not be reported
    wallets = _activity(w, rng, 60)
    _activity(other, rng, 10)
    started = time.monotonic()
    with db.read() as s:
        checked, mismatches = ledger.reconcile(s)
    clean_seconds = time.monotonic() - started
    assert mismatches == [], mismatches
    assert checked >= 2 * 7

    victim = rng.choice(wallets)
    with db.transaction() as s:  # counters are not append-only: this is what reconcile is for
        s.execute(text("UPDATE ledger_account SET credits_posted = credits_posted + 13 "
                       "WHERE tenant_id = :t AND id = :id"), {"t": w.tenant_id, "id": victim})
    with db.read() as s:
        _, mismatches = ledger.reconcile(s)
        _, tenant_only = ledger.reconcile(s, other.tenant_id)
    assert [(m.tenant_id, m.account_id) for m in mismatches] == [(w.tenant_id, victim)]
    stored, computed = mismatches[0].stored, mismatches[0].computed
    assert stored[1] - computed[1] == 13 and stored[0] == computed[0]
    assert stored[2:] == computed[2:]
    assert tenant_only == []
    with pytest.raises(AssertionError, match="invariant"):
        assert_ledger_invariants(db)

    with db.transaction() as s:  # repair, then everything holds again
        s.execute(text("UPDATE ledger_account SET credits_posted = credits_posted - 13 "
                       "WHERE tenant_id = :t AND id = :id"), {"t": w.tenant_id, "id": victim})
    counts = assert_ledger_invariants(db)
    figures.record(f"T31.{engine_name(db)}", accounts_checked=checked, mismatched_accounts=0,
                   corrupted_detected=1, false_positives=0, entries=counts["entries"],
                   reconcile_seconds=round(clean_seconds, 3))


STATEMENTS = [
    ("posting", "UPDATE posting SET amount = amount + 1 WHERE tenant_id = :t"),
    ("posting", "DELETE FROM posting WHERE tenant_id = :t"),
    ("journal_entry", "UPDATE journal_entry SET memo = 'edited' WHERE tenant_id = :t"),
    ("journal_entry", "DELETE FROM journal_entry WHERE tenant_id = :t"),
]


def test_posting_and_journal_entry_are_append_only(db: Database) -> None:
    w = build_world(db)
    wallet_id = w.wallet("acc_immutable")
    w.earn(wallet_id, 100, key="first")
    before = (count(db, "SELECT COUNT(*) FROM posting"),
              count(db, "SELECT COUNT(*) FROM journal_entry"),
              count(db, "SELECT SUM(amount) FROM posting"))
    refused = 0
    statements = list(STATEMENTS)
    if not db.is_sqlite:
        statements += [("posting", "TRUNCATE posting CASCADE"),
                       ("journal_entry", "TRUNCATE journal_entry CASCADE")]
    for table, sql in statements:
        with pytest.raises(DBAPIError) as refusal, db.transaction() as s:
            s.execute(text(sql), {"t": w.tenant_id})
        # The trigger refuses it; on PostgreSQL the application's role (kit.tenancy) is not
        # even granted UPDATE/DELETE/TRUNCATE on these tables, which refuses it first.
        assert (f"{table} is append-only" in str(refusal.value)
                or f"permission denied for table {table}" in str(refusal.value)), refusal.value
        refused += 1
    after = (count(db, "SELECT COUNT(*) FROM posting"),
             count(db, "SELECT COUNT(*) FROM journal_entry"),
             count(db, "SELECT SUM(amount) FROM posting"))
    assert after == before
    figures.record(f"append_only.{engine_name(db)}", statements=len(statements),
                   refused=refused)
    assert_ledger_invariants(db)
