"""Uplift (difference-in-differences), category penetration, target attainment and ROI on
SQLite and PostgreSQL, with figures computed by hand.

Launch Mar 1, 2026, report to May 1: the post window is 61 days and the pre window the 61
days before the launch. P1 and P2 take part after the launch (P1 redeems, P2 trains); C1 and C2
do not. Sorted by pre-window spend P1 (1000), C1 (1200), C2 (2800), P2 (3000) fall into two
size bands: {P1, C1} and {C2, P2}.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from allegiance import analytics
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.analytics_support import History, at, history
from tests.support.invariants import assert_ledger_invariants


def uplift_history(db: Database, frozen: clock.FrozenClock) -> History:
    h = history(db, frozen, expiry_months=None)
    h.move_to(at(2026, 1, 5))
    for name, region in (("P1", "FR"), ("P2", "FR"), ("C1", "DE"), ("C2", "DE")):
        h.member(name, segment="garage", region=region)
    h.earn("P1", 100)
    for name, day, lines in (
        ("P1", 10, [("brakes", 1000)]), ("C1", 11, [("brakes", 1200)]),
        ("C2", 12, [("oil", 2800)]), ("P2", 13, [("oil", 3000)]),
    ):
        h.event(name, at(2026, 1, day), amount=sum(a for _, a in lines), lines=lines)
    for name, day, lines in (
        ("P1", 10, [("brakes", 1000), ("tyres", 500)]), ("C1", 11, [("brakes", 1300)]),
        ("C2", 12, [("tyres", 2900)]), ("P2", 13, [("oil", 3000), ("filters", 600)]),
    ):
        h.event(name, at(2026, 4, day), amount=sum(a for _, a in lines), lines=lines)
    h.move_to(at(2026, 3, 10))
    h.redeem("P1", 40)
    h.move_to(at(2026, 3, 15))
    h.earn("P2", 200)
    h.event("P2", at(2026, 3, 20), kind="activity", activity_type="training")
    h.move_to(at(2026, 5, 2))
    return h


LAUNCH = at(2026, 3, 1).replace(hour=0)
END = at(2026, 5, 1).replace(hour=0)


def test_uplift_is_a_difference_in_differences(db: Database,
                                               frozen_clock: clock.FrozenClock) -> None:
    h = uplift_history(db, frozen_clock)
    w = h.world
    with db.read() as s:
        report = analytics.uplift(s, w.tenant_id, w.program_id, LAUNCH, END, bands=2)
    low, high = report.rows
    # Band 1: (1500 − 1000) − (1300 − 1200) = 400; band 2: (3600 − 3000) − (2900 − 2800) = 500.
    assert (low["participants"], low["controls"], low["did"]) == (1, 1, 400.0)
    assert (high["pre_participants"], high["post_controls"], high["did"]) == (3000.0, 2900.0,
                                                                              500.0)
    summary = report.summary
    assert (summary["participants"], summary["non_participants"]) == (2, 2)
    assert summary["att"] == 450.0
    assert summary["incremental_spend"] == 900.0
    # The naive comparison ("participants buy 1.2x more") against the honest 450 per member.
    assert summary["naive_ratio"] == pytest.approx(2550 / 2100)
    assert_ledger_invariants(db)


def test_category_penetration(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = uplift_history(db, frozen_clock)
    w = h.world
    with db.read() as s:
        report = analytics.penetration(s, w.tenant_id, w.program_id, LAUNCH, END)
    took, rest = report.rows
    # Participants: tyres 500 (P1) and filters 600 (P2) are new, of 5100 spent after launch.
    assert (took["post_spend"], took["new_category_spend"]) == (5100, 1100)
    assert took["share"] == 1100 / 5100
    # Non-participants: C2's tyres (2900) are new, of 4200.
    assert (rest["post_spend"], rest["new_category_spend"], rest["members"]) == (4200, 2900, 2)


def test_target_attainment_per_market(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = uplift_history(db, frozen_clock)
    w = h.world
    span = analytics.Period(LAUNCH, END)
    with db.read() as s:
        report = analytics.targets(s, w.tenant_id, w.program_id, span,
                                   {"FR": 5000, "DE": 5000, "IT": 1000})
    assert report.rows == [
        {"market": "DE", "buyers": 2, "spend": 4200, "target": 5000, "attainment": 0.84},
        {"market": "FR", "buyers": 2, "spend": 5100, "target": 5000, "attainment": 1.02},
        {"market": "IT", "buyers": 0, "spend": 0, "target": 1000, "attainment": 0.0},
    ]
    assert report.summary["attainment"] == 9300 / 11000


def test_roi_against_incremental_margin(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = uplift_history(db, frozen_clock)
    w = h.world
    with db.read() as s:
        report = analytics.roi(s, w.tenant_id, w.program_id, LAUNCH, END, margin=0.25,
                               fixed_cost=Decimal("1.00"), bands=2)
        alone = analytics.roi(s, w.tenant_id, w.program_id, LAUNCH, END, margin=0.25,
                              fixed_cost=Decimal("1.00"))
    summary = report.summary
    # Cost: the 200 points issued after launch × $0.01 + $1.00 fixed. Gain: the incremental
    # spend of 900 cents ($9.00) × 25 % margin = $2.25. ROI = (2.25 − 3.00) / 3.00.
    assert summary["cost"] == Decimal("3.00")
    assert summary["incremental_margin"] == Decimal("2.25")
    assert summary["roi"] == -0.25
    # With four size bands no band holds both groups: no measured increment, ROI −100 %.
    assert alone.summary["incremental_margin"] == Decimal(0)
    assert alone.summary["roi"] == -1.0
