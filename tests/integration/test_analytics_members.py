"""Retention cohorts, time between purchases, NPS and per-member CLV inputs, on SQLite and
PostgreSQL, with figures computed by hand."""

from __future__ import annotations

from datetime import date

import pytest

from allegiance import analytics
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.analytics_support import History, at, history


def members_history(db: Database, frozen: clock.FrozenClock) -> History:
    """A and B enrol on Jan 15, C on Feb 10. A buys Jan 20 (twice) and Feb 5, B trains on
    Mar 3, C buys Feb 12 and Mar 1."""
    h = history(db, frozen, expiry_months=None)
    h.member("A", segment="smb")
    h.member("B", segment="smb")
    h.move_to(at(2026, 2, 10))
    h.member("C", segment="enterprise")
    h.event("A", at(2026, 1, 20), amount=100)
    h.event("A", at(2026, 1, 20), amount=50)
    h.event("A", at(2026, 2, 5), amount=200)
    h.event("B", at(2026, 3, 3), kind="activity", activity_type="training")
    h.event("C", at(2026, 2, 12), amount=300)
    h.event("C", at(2026, 3, 1), amount=400)
    h.move_to(at(2026, 3, 31))
    return h


def test_retention_by_enrolment_month(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = members_history(db, frozen_clock)
    w = h.world
    span = analytics.period("2026-01-01", "2026-03-31", clock.now())
    with db.read() as s:
        report = analytics.retention(s, w.tenant_id, w.program_id, span)
    assert report.columns == ["cohort", "size", "m0", "m1", "m2"]
    assert report.rows == [
        {"cohort": "2026-01", "size": 2, "m0": 0.5, "m1": 0.5, "m2": 0.5},
        {"cohort": "2026-02", "size": 1, "m0": 1.0, "m1": 1.0, "m2": None},
    ]
    assert report.summary["churn"] == {"m0": 1 / 3, "m1": 1 / 3, "m2": 0.5}


def test_time_between_purchases(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = members_history(db, frozen_clock)
    w = h.world
    span = analytics.period("2026-01-01", "2026-03-31", clock.now())
    with db.read() as s:
        report = analytics.purchase_gaps(s, w.tenant_id, w.program_id, span)
    # A: Jan 20 -> Feb 5 = 16 days (two purchases on Jan 20 are one day); C: Feb 12 -> Mar 1
    # = 17 days.
    by_bucket = {r["days"]: r["gaps"] for r in report.rows}
    assert by_bucket["8-30"] == 2 and sum(by_bucket.values()) == 2
    assert report.summary["mean_days"] == 16.5
    assert report.summary["median_days"] == 16.5
    assert report.summary["members"] == 2


def test_nps_by_segment(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = members_history(db, frozen_clock)
    w = h.world

    def answer(name: str, day: int, score: object) -> None:
        h.event(name, at(2026, 3, day), kind="activity", activity_type="nps",
                attributes={"score": score})

    answer("A", 1, 10)
    answer("A", 5, 6)  # A's latest answer: a detractor
    answer("B", 2, 9)
    answer("C", 2, 10)
    answer("C", 3, 11)  # not valid answers: ignored
    answer("B", 4, "ten")
    answer("B", 5, 7.5)
    h.event("C", at(2026, 3, 4), kind="activity", activity_type="survey",
            attributes={"score": 0})  # another survey type
    span = analytics.period("2026-03-01", "2026-03-31", clock.now())
    with db.read() as s:
        report = analytics.nps(s, w.tenant_id, w.program_id, span)
    assert report.rows == [
        {"segment": "enterprise", "answers": 1, "promoters": 1, "passives": 0,
         "detractors": 0, "nps": 100.0},
        {"segment": "smb", "answers": 2, "promoters": 1, "passives": 0, "detractors": 1,
         "nps": 0.0},
    ]
    assert report.summary["answers"] == 3
    assert report.summary["nps"] == pytest.approx(100 / 3)


def test_clv_inputs_and_fit_per_member(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = history(db, frozen_clock, expiry_months=None)
    for name in ("A", "B", "C", "D"):
        h.member(name)
    # A: Jan 1 ($10), Jan 8 ($20 + $10 the same day), Jan 22 ($40); calibration ends Jan 29.
    for day, cents in ((1, 1000), (8, 2000), (8, 1000), (22, 4000)):
        h.event("A", at(2026, 1, day), amount=cents)
    for day, cents in ((1, 500), (15, 700)):
        h.event("B", at(2026, 1, day), amount=cents)
    h.event("C", at(2026, 1, 3), amount=900)
    h.event("D", at(2026, 1, 29), amount=100)
    h.event("D", at(2026, 2, 5), amount=100)  # after the calibration end: left out
    w = h.world
    with db.read() as s:
        report = analytics.clv(s, w.tenant_id, w.program_id, calibration_end=date(2026, 1, 29),
                               limit=None)
    rows = {r["member"]: r for r in report.rows}
    a = rows[h.accounts["A"]]
    assert (a["x"], a["t_x"], a["T"]) == (2, 3.0, 4.0)
    assert a["m_x"] == pytest.approx(35.0)  # ($30 + $40) / 2 repeat transactions, in dollars
    assert a["historical"] == pytest.approx(80.0)
    b = rows[h.accounts["B"]]
    assert (b["x"], b["t_x"], b["T"], b["m_x"]) == (1, 2.0, 4.0, 7.0)
    d = rows[h.accounts["D"]]
    assert (d["x"], d["T"], d["historical"]) == (0, 0.0, 1.0)
    assert report.summary["members"] == 4 and report.summary["repeat_buyers"] == 2
    for row in report.rows:
        assert 0 <= row["p_alive"] <= 1
    # Four members are too few for finite expectations: the report says so.
    if report.summary["warnings"]:
        assert all(r["expected_value"] is None for r in report.rows)
    else:
        assert all(r["expected_value"] >= 0 for r in report.rows)
    # The report's fit is the models' fit on the same summary.
    rfm = analytics.rfm_summary(
        ["A", "A", "A", "A", "B", "B", "C", "D"],
        ["2026-01-01", "2026-01-08", "2026-01-08", "2026-01-22", "2026-01-01", "2026-01-15",
         "2026-01-03", "2026-01-29"],
        [10, 20, 10, 40, 5, 7, 9, 1], "2026-01-29")
    direct = analytics.fit_bgnbd(rfm.x, rfm.t_x, rfm.T)
    assert report.summary["bgnbd"]["r"] == pytest.approx(direct.r, rel=1e-6)


def test_clv_needs_repeat_buyers(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = history(db, frozen_clock, expiry_months=None)
    h.member("A")
    h.event("A", at(2026, 1, 1), amount=100)
    w = h.world
    with db.read() as s, pytest.raises(analytics.ReportInvalid):
        analytics.clv(s, w.tenant_id, w.program_id, calibration_end=date(2026, 1, 29))
