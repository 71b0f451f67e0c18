"""Breakage cohorts, the redemption curve and the forecast, computed by hand from the
history of ``analytics_support.standard`` (as of Mar 20, 2026)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import polars as pl

from allegiance import analytics
from allegiance.analytics.breakage import allocate
from allegiance.analytics.common import FLOW_SCHEMA
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.analytics_support import history, standard


def test_breakage_by_issue_month(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    with db.read() as s:
        report = analytics.breakage(s, w.tenant_id, w.program_id)
    jan, feb = report.rows
    # January: A 100 + B 50; A's redemption of 30 (Feb) is taken from it first, the rest
    # (70 + 50) expired on Mar 20. February: A's 40, untouched.
    assert (jan["cohort"], jan["age"], jan["issued"], jan["redeemed"], jan["expired"],
            jan["outstanding"]) == ("2026-01", 2, 150, 30, 120, 0)
    assert jan["historical_breakage"] == 0.8
    assert jan["estimated_breakage"] == 0.8  # nothing left to redeem
    assert (feb["cohort"], feb["age"], feb["issued"], feb["outstanding"]) == ("2026-02", 1, 40, 40)
    assert feb["historical_breakage"] == 0.0
    # Curve: r0 = 0/190, r1 = 30/190 (Jan's redemption at age 1), r2 = 0/150.
    assert report.summary["redemption_curves"]["points"] == [0.0, 30 / 190, 0.0]
    # Feb has no rate left ahead (r2 = 0): all 40 estimated to break.
    assert feb["estimated_breakage"] == 1.0
    (unit,) = report.summary["units"]
    assert unit["historical_breakage"] == 120 / 190
    assert unit["estimated_breakage"] == 160 / 190


def test_fifo_allocation_splits_debits_across_credits() -> None:
    def t(day: int) -> datetime:
        return datetime(2026, 1, day, tzinfo=UTC)

    flows = pl.DataFrame([
        ("w1", "m1", "u", t(1), 1, 1, 10, "earn"),
        ("w1", "m1", "u", t(2), 2, 1, 5, "earn"),
        ("w1", "m1", "u", t(3), 3, 1, -12, "redeem"),
        ("w1", "m1", "u", t(4), 4, 1, -1, "expire"),
        ("w2", "m2", "u", t(1), 5, 1, 4, "earn"),
    ], schema=FLOW_SCHEMA, orient="row")
    got = sorted(
        (r["wallet"], r["credit_at"].day, r["category"] or "-", r["amount"])
        for r in allocate(flows).iter_rows(named=True))
    assert got == [("w1", 1, "redeem", 10), ("w1", 2, "-", 2), ("w1", 2, "expire", 1),
                   ("w1", 2, "redeem", 2), ("w2", 1, "-", 4)]


def test_forecast_of_the_next_months(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    with db.read() as s:
        report = analytics.forecast(s, w.tenant_id, w.program_id)
    assert len(report.rows) == 12
    april, may = report.rows[0], report.rows[1]
    # Run rate: (150 in Jan + 40 in Feb + 0 in Dec) // 3 = 63 a month. April: A's Feb lot of 40
    # expires (Feb 15 + 2 months); nothing is due from the curve (r0 = 0).
    assert april == {"unit": "points", "month": "2026-04", "issued": 63, "redeemed": 0,
                     "expired": 40, "outstanding": 63, "value": Decimal("0.63")}
    # May: April's issuance reaches age 1: 63 × 30/190 = 9.9 → 10.
    assert (may["issued"], may["redeemed"], may["expired"], may["outstanding"]) == (
        63, 10, 0, 116)
