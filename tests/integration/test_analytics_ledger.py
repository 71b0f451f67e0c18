"""Liability and KPIs from the ledger, on SQLite and PostgreSQL, with figures computed by hand
(see ``analytics_support.standard`` for the history)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from allegiance import analytics
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.analytics_support import at, history, standard
from tests.support.invariants import assert_ledger_invariants


def test_liability_now_reconciles_with_the_ledger(db: Database,
                                                  frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    with db.read() as s:
        report = analytics.liability(s, w.tenant_id, w.program_id)
    # A keeps the 40 earned on Feb 15 (33 days old on Mar 20); B has nothing posted.
    assert report.rows == [{"unit": "points", "tier": "gold", "age": "31-90",
                            "outstanding": 40, "value": Decimal("0.40")}]
    unit = report.summary["units"][0]
    assert unit["outstanding"] == unit["ledger_posted"] == 40
    assert (unit["pending_in"], unit["pending_out"]) == (25, 10)
    assert unit["reconciled"] is True
    assert report.summary["total_value"] == Decimal("0.40")
    assert_ledger_invariants(db)


def test_liability_at_a_past_date_is_aged_fifo(db: Database,
                                               frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    with db.read() as s:
        report = analytics.liability(s, w.tenant_id, w.program_id,
                                     at=analytics.instant(date(2026, 2, 20), end_of_day=True))
    # On Feb 20 (end of day): A 100 + 40 − 30 = 110 = the 40 of Feb 15 (6 days) and 70 of
    # Jan 15 (37 days); B 50 of Jan 15. No hold existed yet.
    got = {(r["tier"], r["age"]): r["outstanding"] for r in report.rows}
    assert got == {("gold", "0-30"): 40, ("gold", "31-90"): 70, (None, "31-90"): 50}
    unit = report.summary["units"][0]
    assert unit["outstanding"] == 160
    assert (unit["pending_in"], unit["pending_out"]) == (0, 0)
    assert "reconciled" not in unit


def test_liability_follows_releases_refunds_and_user_wallets(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    from allegiance import ledger, members
    h = standard(history(db, frozen_clock))
    w = h.world
    with db.transaction() as s:
        holds = s.query(ledger.Hold).filter_by(tenant_id=w.tenant_id, state="pending").all()
        for hold in holds:
            ledger.post_hold(s, w.tenant_id, hold.id)
        user = members.add_user(s, w.tenant_id, h.accounts["B"], name="Bea", role="rep")
    refund = h.redeem("A", 5)
    h.reverse(refund)
    user_wallet = w.wallet(user.id, owner_type="user")
    w.earn(user_wallet, 7)
    with db.read() as s:
        report = analytics.liability(s, w.tenant_id, w.program_id)
    unit = report.summary["units"][0]
    # A: 40 − 10 (posted redemption) − 5 + 5 (refund) = 30; B: 25 released + 7 on its user.
    assert unit["outstanding"] == unit["ledger_posted"] == 62
    assert unit["reconciled"] is True
    by_tier = {}
    for row in report.rows:
        by_tier[row["tier"]] = by_tier.get(row["tier"], 0) + row["outstanding"]
    assert by_tier == {"gold": 30, None: 32}
    assert_ledger_invariants(db)


def test_kpis_of_a_period(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    h.event("A", at(2026, 2, 10), amount=1000)
    h.event("B", at(2026, 3, 1), kind="activity", activity_type="training")
    h.event("B", at(2026, 1, 20), amount=500)  # before the period
    h.reverse(h.redeem("A", 5))  # a refunded redemption nets out of "redeemed"
    span = analytics.period("2026-02-01", "2026-03-31", clock.now())
    with db.read() as s:
        report = analytics.kpis(s, w.tenant_id, w.program_id, span)
    (row,) = report.rows
    assert (row["opening"], row["issued"], row["redeemed"], row["expired"], row["closing"]) == (
        150, 40, 30, 120, 40)
    assert row["redemption_rate"] == 0.75
    assert row["cumulative_redemption_rate"] == 30 / 190
    assert (row["earners"], row["redeemers"]) == (1, 1)
    assert row["issued_value"] == Decimal("0.40")
    summary = report.summary
    assert (summary["enrolled"], summary["new_enrolments"]) == (2, 0)
    assert (summary["active"], summary["engaged"]) == (2, 2)  # A bought; B trained, A redeemed
    assert summary["first_redemptions"] == 1
    assert summary["avg_days_to_first_redemption"] == 31.0  # Jan 15 to Feb 15
    assert_ledger_invariants(db)


def test_a_wallet_below_zero_is_its_own_bucket(db: Database,
                                               frozen_clock: clock.FrozenClock) -> None:
    from tests.conftest import build_world
    from tests.integration.analytics_support import History
    frozen_clock.set(at(2026, 1, 15))
    h = History(build_world(db, negative_floor=-100), frozen_clock)
    h.member("A")
    h.member("B")
    h.earn("A", 30)
    h.earn("B", 20)
    h.redeem("A", 80)  # A goes to −50 (the unit's floor is −100)
    with db.read() as s:
        report = analytics.liability(s, h.world.tenant_id, h.world.program_id)
    got = {(r["age"]): r["outstanding"] for r in report.rows}
    assert got == {"0-30": 20, "negative": -50}
    unit = report.summary["units"][0]
    assert unit["outstanding"] == unit["ledger_posted"] == -30
    assert unit["reconciled"] is True
    assert_ledger_invariants(db)
