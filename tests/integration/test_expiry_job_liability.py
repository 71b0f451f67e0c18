"""The expiry job keeps the liability summaries true (on PostgreSQL it pauses
``liability_aging_track`` and appends the grouped sums itself: migration 0035_expirypause),
and its inactivity pass selects the lots of many wallets of several tenants in one chunk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from allegiance import ledger
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.conftest import build_world
from tests.integration.analytics_support import History, at, check_aging, history, standard
from tests.support.invariants import assert_ledger_invariants


def test_the_job_keeps_the_liability_by_tier_with_holds_and_partly_used_lots(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    frozen_clock.set(at(2025, 1, 15))
    h = History(build_world(db, expiry={"kind": "after_months", "months": 12}), frozen_clock)
    for index, name in enumerate("ABCDEF"):
        h.member(name, tier=("gold", "silver", None)[index % 3])
    for step, name in enumerate("ABCDEF" * 3):
        h.move_to(at(2025, 1, 15) + timedelta(days=step * 20))
        h.earn(name, 10 + step)
    h.redeem("A", 15)  # a partly used due lot
    w = h.world
    with db.transaction() as s:  # a wallet partly reserved by a pending hold
        ledger.create_hold(s, w.tenant_id, ledger.HoldRequest(
            program_id=w.program_id, debit_account_id=h.wallets["B"],
            credit_account_id=w.redeemed_id, unit_id=w.unit_id, amount=30, kind="redeem"))
    h.move_to(at(2026, 6, 1))
    report = ledger.run_expiry(db.transaction)
    assert report.lots == 6 and report.points > 0
    check_aging(h)
    h.earn("C", 7)  # after the job the trigger keeps the summaries again
    check_aging(h)
    assert_ledger_invariants(db)


def test_inactivity_chunk_of_many_wallets_in_several_tenants(db: Database) -> None:
    with clock.frozen(datetime(2025, 1, 10, 12, tzinfo=UTC)) as c:
        worlds = [build_world(db, expiry={"kind": "inactivity", "months": 12})
                  for _ in range(2)]
        idle = [[world.wallet(f"acc_idle_{i}") for i in range(7)] for world in worlds]
        busy = [world.wallet("acc_busy") for world in worlds]
        for world, wallets, active in zip(worlds, idle, busy, strict=True):
            for index, wallet in enumerate(wallets):
                world.earn(wallet, 10 + index)
                world.earn(wallet, 1)
            world.earn(active, 5)
        c.advance(timedelta(days=300))
        for world, active in zip(worlds, busy, strict=True):
            world.earn(active, 5)
        c.set(datetime(2026, 1, 20, 12, tzinfo=UTC))
        # batch 40: chunks of 10 wallets, so a chunk holds wallets of both tenants
        report = ledger.run_expiry(db.transaction, batch=40)
        assert (report.lots, report.points) == (28, 2 * sum(11 + i for i in range(7)))
        for world, wallets, active in zip(worlds, idle, busy, strict=True):
            assert all(world.balance(x).posted == 0 for x in wallets)
            assert world.balance(active).posted == 10
        assert ledger.run_expiry(db.transaction).entries == 0
    assert_ledger_invariants(db)


def test_the_job_liability_matches_the_standard_history(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))  # holds, pending earnings, a gold member
    h.move_to(at(2026, 6, 1))
    assert ledger.run_expiry(db.transaction).points > 0
    check_aging(h)
    assert_ledger_invariants(db)
