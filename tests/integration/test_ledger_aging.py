"""The ledger's aging (``ledger_aging``, kept by a trigger on ``posting``) equals its
recomputation from the postings, on SQLite and PostgreSQL, through earns, redemptions,
reversals, expiry, holds, back-dated entries, user wallets and a balance below zero; and the
liability "now" read from it equals the liability computed from the postings."""

from __future__ import annotations

import random
from datetime import timedelta

from allegiance import analytics, ledger, members
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.conftest import build_world
from tests.integration.analytics_support import (
    History,
    at,
    check_aging,
    history,
    post,
    standard,
)
from tests.support.invariants import assert_ledger_invariants


def test_aging_follows_the_standard_history_with_expiry_holds_and_reversals(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    check_aging(h)
    w = h.world
    with db.transaction() as s:
        for hold in s.query(ledger.Hold).filter_by(tenant_id=w.tenant_id, state="pending"):
            ledger.post_hold(s, w.tenant_id, hold.id)
        user = members.add_user(s, w.tenant_id, h.accounts["B"], name="Bea", role="rep")
    check_aging(h)
    h.reverse(h.redeem("A", 5))  # a refunded redemption
    w.earn(w.wallet(user.id, owner_type="user"), 7)
    check_aging(h)
    h.move_to(at(2026, 6, 1))
    h.expire()  # the lots of Feb 15 and Mar 20
    check_aging(h)
    assert_ledger_invariants(db)


def test_aging_equals_the_postings_through_random_back_dated_history(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    frozen_clock.set(at(2026, 1, 15))
    h = History(build_world(db, negative_floor=-200), frozen_clock)
    names = ["A", "B", "C"]
    for name in names:
        h.member(name, tier="gold" if name == "A" else None)
    rng = random.Random(8)
    entries: list[str] = []
    for step in range(60):
        h.move_to(at(2026, 1, 15) + timedelta(days=step * 3))
        name = rng.choice(names)
        roll = rng.random()
        balance = h.world.balance(h.wallets[name]).available
        if roll < 0.55:  # earn, often back-dated into days already holding credits
            entries.append(post(h, name, rng.randint(1, 90), earn=True,
                                 days_back=rng.choice([0, 0, 1, 10, 40, 200])))
        elif roll < 0.85 and balance > -150:
            entries.append(post(h, name, rng.randint(1, min(120, balance + 200)), earn=False,
                                 days_back=rng.choice([0, 2, 30])))
        elif entries:
            entry = entries.pop(rng.randrange(len(entries)))
            try:
                h.reverse(entry)
            except Exception:
                continue
        if step % 10 == 9:
            check_aging(h)
    check_aging(h)
    with db.read() as s:
        rows = ledger.stored_aging(s, h.world.tenant_id)
        report = analytics.liability(s, h.world.tenant_id, h.world.program_id)
    assert any(remaining < credits for credits, _, remaining in rows.values() if credits)
    assert report.summary["units"][0]["reconciled"] is True
    assert_ledger_invariants(db)


def test_aging_stays_equal_to_the_postings_under_concurrent_writers(
        db: Database) -> None:
    """Eight threads earn into and redeem from the same two wallets at once, some entries
    back-dated (on PostgreSQL the trigger runs in concurrent transactions; the wallet's
    counter row, locked first, serialises them)."""
    import threading

    from tests.reliability.harness import run_threads

    w = build_world(db, negative_floor=-10_000)
    wallets = [w.wallet("acc_aging_a"), w.wallet("acc_aging_b")]

    def write(index: int, barrier: threading.Barrier) -> str:
        barrier.wait()
        for step in range(12):
            earn = (index + step) % 3 != 0
            side, opposite = ((ledger.Side.CREDIT, ledger.Side.DEBIT) if earn
                              else (ledger.Side.DEBIT, ledger.Side.CREDIT))
            with db.transaction() as s:
                ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
                    program_id=w.program_id, kind="earn" if earn else "redeem",
                    effective_at=clock.now() - timedelta(days=(index * 7 + step) % 20),
                    lines=(ledger.Line(wallets[(index + step) % 2], w.unit_id, side,
                                       10 + index),
                           ledger.Line(w.issued_id if earn else w.redeemed_id, w.unit_id,
                                       opposite, 10 + index))))
        return "ok"

    outcomes = run_threads(8, write, timeout=120)
    assert outcomes == ["ok"] * 8, outcomes
    with db.read() as s:
        stored = ledger.stored_aging(s, w.tenant_id)
        assert stored == ledger.recompute_aging(s, w.tenant_id)
        report = analytics.liability(s, w.tenant_id, w.program_id)
    assert len(stored) > 10
    assert report.summary["units"][0]["reconciled"] is True
    assert_ledger_invariants(db)
