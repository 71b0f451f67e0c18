"""Tiers against a real database (SQLite and PostgreSQL): credits and immediate upgrades,
downgrades at period end with grace, direct and manual placement, roll-up, reported metrics,
certification, monthly periods, and the set-based recalculation checked against the domain."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import insert

from allegiance import tiers
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.tiers import domain
from tests.integration.tiers_support import JAN, SKINCEUTICALS, Tiers, at


def test_spend_upgrades_at_once(t: Tiers) -> None:
    t.ladder(SKINCEUTICALS)
    spa = t.account()
    assert t.credit(spa, 2_000_000, at(2026, 2)) == []
    assert t.level(spa) is None
    moves = t.credit(spa, 600_000, at(2026, 3))
    assert [(m.from_level, m.to_level, m.reason) for m in moves] == [(None, "titanium", "upgrade")]
    t.credit(spa, 10_000_000, at(2026, 4))
    assert t.level(spa) == "black-diamond"
    assert t.enrolment_tier(spa) == "black-diamond"
    assert t.history(spa) == [(None, "titanium", "upgrade"),
                              ("titanium", "black-diamond", "upgrade")]
    with t.db.read() as s:
        assert tiers.multiplier(s, t.tenant_id, t.program_id, spa) == Decimal(2)


def test_status_shows_progress_to_the_next_tier(t: Tiers) -> None:
    t.ladder(SKINCEUTICALS)
    spa = t.account()
    t.credit(spa, 3_750_000, at(2026, 5))
    state = t.state(spa, at(2026, 6))
    assert (state.level, state.value, state.next_level, state.needed) == (
        "titanium", 3_750_000, "gold", 1_250_000)
    assert state.ratio == Decimal("0.75")
    assert state.period_key == "2026"
    assert state.window_start == datetime(2026, 1, 1, tzinfo=UTC)
    # Next year the window is empty but the level holds until the period is settled.
    state = t.state(spa, at(2027, 2))
    assert (state.level, state.value, state.needed) == ("titanium", 0, 5_000_000)
    with t.db.read() as s:
        assert tiers.multiplier(s, t.tenant_id, t.program_id, spa) == Decimal(1)


def test_downgrade_only_at_period_end(t: Tiers) -> None:
    t.ladder(SKINCEUTICALS)
    spa = t.account()
    t.credit(spa, 5_000_000, at(2026, 3))
    t.credit(spa, -3_000_000, at(2026, 4))  # a return lowers the metric, not the tier
    assert t.recalc(at(2026, 9)).downgraded == 0
    assert t.level(spa) == "gold"
    # Settling a month that ends no calendar year moves nobody down.
    assert t.recalc(at(2026, 7), period_end=True).downgraded == 0
    result = t.recalc(at(2027, 1, 2), period_end=True)
    assert (result.downgraded, t.level(spa)) == (1, None)
    assert t.enrolment_tier(spa) is None
    assert t.history(spa)[-1] == ("gold", None, "downgrade")


def test_one_step_grace_and_settling_once(t: Tiers) -> None:
    t.ladder({**SKINCEUTICALS, "downgrade": {"grace": "one_step"}})
    spa = t.account()
    t.credit(spa, 11_000_000, at(2026, 3))
    assert t.level(spa) == "diamond"
    t.recalc(at(2027, 1, 2), period_end=True)
    assert t.level(spa) == "diamond"  # 2026 qualified diamond
    t.recalc(at(2028, 1, 2), period_end=True)
    assert t.level(spa) == "platinum"  # 2027 empty: one step down
    t.recalc(at(2028, 1, 20), period_end=True)  # the same period again: no second step
    assert t.level(spa) == "platinum"
    t.recalc(at(2029, 1, 3), period_end=True)
    assert t.level(spa) == "gold"


def test_direct_placement_by_one_large_order(t: Tiers) -> None:
    t.ladder({**SKINCEUTICALS, "direct_placement": {"single_order_amount": 4_000_000,
                                                    "level": "platinum"}})
    spa = t.account()
    assert t.credit(spa, 1_000_000, at(2026, 2), order_amount=1_000_000) == []
    # 5,000,000 in the year qualifies for gold; the single order places the spa in platinum.
    moves = t.credit(spa, 4_000_000, at(2026, 3), order_amount=4_000_000)
    assert [(m.to_level, m.reason) for m in moves] == [("platinum", "direct_placement")]
    # A smaller order places nobody; qualifying above the placement still upgrades.
    assert t.credit(spa, 3_900_000, at(2026, 4), order_amount=3_900_000) == []
    t.credit(spa, 1_100_000, at(2026, 4), order_amount=1_100_000)
    assert t.level(spa) == "diamond"


def test_manual_placement_with_lock_survives_recalculation(t: Tiers) -> None:
    t.ladder(SKINCEUTICALS)
    spa, other = t.account(), t.account()
    with t.db.transaction() as s:
        move = tiers.place(s, t.tenant_id, t.program_id, spa, level="diamond",
                           reason="strategic account", actor="ops@example.com", lock=True)
    assert (move.from_level, move.to_level, move.reason) == (None, "diamond", "manual")
    t.credit(spa, 20_000_000, at(2026, 3))  # would qualify for black diamond
    t.credit(other, 20_000_000, at(2026, 3))
    t.recalc(at(2028, 1, 2), period_end=True)
    assert (t.level(spa), t.level(other)) == ("diamond", None)
    state = t.state(spa, at(2028, 1, 2))
    assert state.locked and state.lock_reason == "strategic account"
    with t.db.transaction() as s:  # unlocking: the next settlement decides again
        tiers.place(s, t.tenant_id, t.program_id, spa, level="diamond", reason="unlock",
                    actor="ops@example.com")
    t.recalc(at(2029, 1, 2), period_end=True)
    assert t.level(spa) is None
    with t.db.read() as s:
        notes = [(c.reason, c.actor, c.note) for c in
                 tiers.history(s, t.tenant_id, t.program_id, spa)]
    assert ("manual", "ops@example.com", "strategic account") in notes


def test_placement_validation(t: Tiers) -> None:
    t.ladder(SKINCEUTICALS)
    spa = t.account()
    with t.db.transaction() as s, pytest.raises(AllegianceError) as err:
        tiers.place(s, t.tenant_id, t.program_id, spa, level="bronze", reason="x", actor="a")
    assert err.value.field == "level"
    with t.db.transaction() as s, pytest.raises(AllegianceError) as err:
        tiers.place(s, t.tenant_id, t.program_id, spa, level="gold", reason=" ", actor="a")
    assert err.value.field == "reason"
    with t.db.transaction() as s, pytest.raises(AllegianceError) as err:
        tiers.add_credit(s, t.tenant_id, t.program_id, "acc_missing", "spend", 1, JAN)
    assert err.value.status == 404


def test_rollup_from_child_accounts(t: Tiers) -> None:
    t.ladder({**SKINCEUTICALS, "code": "group", "rollup": True, "primary": False})
    parent = t.account()
    child = t.account(parent_id=parent)
    grandchild = t.account(parent_id=child)
    t.credit(child, 2_000_000, at(2026, 2))
    t.credit(grandchild, 3_000_000, at(2026, 3))
    assert (t.level(parent), t.level(child), t.level(grandchild)) == ("gold", "gold", "titanium")
    # The set-based recalculation agrees after a reset of the year.
    result = t.recalc(at(2027, 1, 2), period_end=True)
    assert result.downgraded == 0
    t.recalc(at(2028, 1, 2), period_end=True)
    assert (t.level(parent), t.level(child), t.level(grandchild)) == (None, None, None)
    t.credit(grandchild, 6_000_000, at(2028, 5))
    assert t.level(parent) == "gold"


def test_recalculation_rolls_up_like_the_credits(t: Tiers) -> None:
    t.ladder({**SKINCEUTICALS, "code": "group", "rollup": True, "primary": False})
    parent = t.account()
    kids = [t.account(parent_id=parent) for _ in range(3)]
    with t.db.transaction() as s:  # metrics written without immediate evaluation
        for kid in kids:
            s.execute(insert(tiers.TierMetric).values(
                tenant_id=t.tenant_id, program_id=t.program_id, metric="spend",
                account_id=kid, bucket=domain.month_index(at(2026, 3), "UTC"), value=2_000_000,
                updated_at=at(2026, 3)))
    result = t.recalc(at(2026, 4))
    assert result.upgraded == 1
    assert t.level(parent) == "gold"
    assert [t.level(k) for k in kids] == [None, None, None]


def test_bank_of_america_combined_balance_reported_from_outside(t: Tiers) -> None:
    t.ladder({"code": "preferred", "metric": "combined_balance",
              "period": {"kind": "rolling_months", "months": 3},
              "levels": [{"code": "gold", "threshold": 2_000_000},
                         {"code": "platinum", "threshold": 5_000_000},
                         {"code": "platinum-honors", "threshold": 10_000_000},
                         {"code": "diamond", "threshold": 100_000_000},
                         {"code": "diamond-honors", "threshold": 1_000_000_000}]})
    biz = t.account()
    assert t.report(biz, "combined_balance", 12_000_000, at(2026, 1))[0].to_level == "platinum-honors"
    t.report(biz, "combined_balance", 3_000_000, at(2026, 2))  # a report replaces the last
    assert t.state(biz, at(2026, 2, 20)).value == 3_000_000
    assert t.level(biz) == "platinum-honors"  # no downgrade before the period ends
    t.recalc(at(2026, 3, 1), period_end=True)
    assert t.level(biz) == "gold"
    with t.db.transaction() as s, pytest.raises(AllegianceError) as err:
        tiers.report_metric(s, t.tenant_id, t.program_id, biz, "spend", 1, JAN)
    assert err.value.field == "metric"


def test_philips_certification(t: Tiers) -> None:
    t.ladder({"code": "partner", "metric": "certification:cvap",
              "levels": [{"code": "vap", "name": "Value Added Partner", "threshold": 0},
                         {"code": "cvap", "name": "Certified Value Added Partner",
                          "threshold": 1}]})
    partner = t.account()
    assert t.recalc(at(2026, 2)).upgraded == 1  # every enrolled partner is a VAP
    assert t.level(partner) == "vap"
    with t.db.transaction() as s:
        moves = tiers.certify(s, t.tenant_id, t.program_id, partner, "cvap", True, at(2026, 3))
    assert [(m.to_level, m.reason) for m in moves] == [("cvap", "certification")]
    t.recalc(at(2026, 6))
    assert t.level(partner) == "cvap"
    with t.db.transaction() as s:
        tiers.certify(s, t.tenant_id, t.program_id, partner, "cvap", False, at(2026, 7))
    assert t.level(partner) == "vap"


def test_uber_monthly_points_with_a_rating_minimum(t: Tiers) -> None:
    t.ladder({"code": "momentum", "metric": "points_earned",
              "period": {"kind": "calendar_month"},
              "levels": [{"code": "blue", "threshold": 0},
                         {"code": "gold", "threshold": 600, "requires": {"rating": 485}},
                         {"code": "platinum", "threshold": 1200, "requires": {"rating": 490}}]})
    driver = t.account()
    t.report(driver, "rating", 487, at(2026, 1, 2))
    t.credit(driver, 1300, at(2026, 1, 10), metric="points_earned")
    assert t.level(driver) == "gold"  # points for platinum, rating not
    t.report(driver, "rating", 492, at(2026, 1, 20))
    assert t.level(driver) == "platinum"
    # February is quiet: at the settlement of February the driver falls back to blue.
    t.recalc(at(2026, 2, 1), period_end=True)
    assert t.level(driver) == "platinum"  # January still counted
    t.recalc(at(2026, 3, 1), period_end=True)
    assert t.level(driver) == "blue"


def test_gem_yearly_points_with_free_entry(t: Tiers) -> None:
    t.ladder({"code": "bite-club", "metric": "points_earned",
              "levels": [{"code": "enthusiast", "threshold": 0},
                         {"code": "advocate", "threshold": 500},
                         {"code": "vip", "threshold": 1000}]})
    fan, quiet = t.account(), t.account()
    t.credit(fan, 700, at(2026, 2), metric="points_earned")
    assert t.level(fan) == "advocate"
    t.recalc(at(2026, 3))
    assert (t.level(fan), t.level(quiet)) == ("advocate", "enthusiast")


def test_anniversary_period(t: Tiers) -> None:
    t.ladder({"code": "anniv", "metric": "count", "period": {"kind": "anniversary"},
              "levels": [{"code": "regular", "threshold": 1}, {"code": "loyal", "threshold": 10}]})
    may, sep = t.account(), t.account()
    t.credit(may, 10, at(2026, 5), metric="count")  # anniversary month: May
    t.credit(sep, 10, at(2026, 9), metric="count")  # anniversary month: September
    t.recalc(at(2027, 5, 2), period_end=True)  # closes May's first year, which earned 10
    assert (t.level(may), t.level(sep)) == ("loyal", "loyal")
    t.recalc(at(2028, 5, 2), period_end=True)  # May's second year earned nothing
    assert (t.level(may), t.level(sep)) == (None, "loyal")  # September's year runs on
    t.recalc(at(2028, 9, 2), period_end=True)
    assert t.level(sep) is None


def test_program_time_zone_decides_the_period(db: Database) -> None:
    t = Tiers(db, time_zone="America/New_York")
    t.ladder(SKINCEUTICALS)
    spa = t.account()
    # 03:00 UTC on New Year's Day is still 2025 in New York.
    t.credit(spa, 5_000_000, datetime(2026, 1, 1, 3, tzinfo=UTC))
    assert t.state(spa, datetime(2026, 1, 1, 3, tzinfo=UTC)).period_key == "2025"
    assert t.state(spa, at(2026, 2)).value == 0
    t.recalc(datetime(2026, 1, 1, 5, 30, tzinfo=UTC), period_end=True)  # 00:30 New York
    assert t.level(spa) == "gold"
    t.recalc(datetime(2027, 1, 1, 5, 30, tzinfo=UTC), period_end=True)
    assert t.level(spa) is None


def test_ladder_updates_keep_held_levels(t: Tiers) -> None:
    ladder_id = t.ladder(SKINCEUTICALS)
    spa = t.account()
    t.credit(spa, 5_000_000, at(2026, 2))
    levels = [{"code": "silver", "threshold": 1_000_000}, *SKINCEUTICALS["levels"]]
    with t.db.transaction() as s:
        tiers.update_ladder(s, t.tenant_id, ladder_id, {**SKINCEUTICALS, "levels": levels})
    t.recalc(at(2027, 1, 2), period_end=True)
    assert t.level(spa) == "gold"  # gold is now rank 2 and still held
    with t.db.transaction() as s, pytest.raises(AllegianceError) as err:
        tiers.update_ladder(s, t.tenant_id, ladder_id,
                            {**SKINCEUTICALS, "levels": SKINCEUTICALS["levels"][:1]})
    assert err.value.code == "tier_level_in_use"
    with t.db.transaction() as s, pytest.raises(AllegianceError) as err:
        tiers.create_ladder(s, t.tenant_id, t.program_id, {**SKINCEUTICALS, "code": "second"})
    assert err.value.field == "primary"
