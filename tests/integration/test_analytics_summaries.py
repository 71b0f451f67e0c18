"""The analytics summary tables (migration ``0026_analytics``: ``liability_holding`` and its
deltas, ``purchase_day``, ``member_month``), kept by triggers, equal their recomputation from
the source rows after a random mix of earns, redemptions, reversals, back-dated postings,
expiry (the bulk path), tier changes, enrolments, user wallets and events (purchases,
activities, returns, status changes, deletions), on SQLite and PostgreSQL; the reports read
from them equal the reports computed from the postings and events; a failed write leaves them
unchanged; the migration's backfill builds them from existing rows."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from alembic import command
from sqlalchemy import delete, select, update

from allegiance import analytics, ledger, members, tenants
from allegiance.analytics import clv_report, cohorts, summaries
from allegiance.analytics import sql as analytics_sql
from allegiance.analytics.clv import rfm_summary
from allegiance.analytics.liability import aged_now, outstanding_rows
from allegiance.events import Event
from allegiance.kit import clock, zones
from allegiance.kit.db import Database
from allegiance.kit.migrate import alembic_config, grant_app_role, upgrade
from tests.conftest import build_world
from tests.integration.analytics_support import History, at, post, reference_purchases
from tests.support import databases
from tests.support.invariants import assert_ledger_invariants

TIERS = [None, "silver", "gold"]


def _summaries_equal(db: Database, tenant_id: str) -> None:
    with db.read() as s:
        assert summaries.stored(s, tenant_id) == summaries.recompute(s, tenant_id)


def _reports_equal(h: History, monkeypatch: pytest.MonkeyPatch) -> None:
    w = h.world
    with h.db.read() as s:
        aged = aged_now(s, w.tenant_id, w.program_id)
        scanned = outstanding_rows(s, w.tenant_id, w.program_id,
                                   clock.now() + timedelta(seconds=1))
        assert sorted(aged, key=repr) == sorted(scanned, key=repr)
        report = analytics.liability(s, w.tenant_id, w.program_id)
        assert report.summary["units"][0]["reconciled"] is True
        today = clock.now().date()
        for begin, end_day in ((None, today), (None, today - timedelta(days=30)),
                               (date(2025, 9, 1), today)):
            _rfm_equal(s, w.tenant_id, w.program_id, begin, end_day)
        end_day = today
        end = datetime.combine(end_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        rfm = clv_report.rfm_of(s, w.tenant_id, w.program_id, start=None, end=end,
                                calibration_end=end_day)
        span = analytics.period("2025-06-01", end_day.isoformat(), clock.now())
        month_end = analytics.period("2025-06-01", "2026-12-31", clock.now())
        for period in (span, month_end):
            fast = cohorts.retention(s, w.tenant_id, w.program_id, period)
            with monkeypatch.context() as m:
                m.setattr(analytics_sql, "whole_local_months", lambda *_: False)
                m.setattr(analytics_sql, "whole_local_days", lambda *_: False)
                slow = cohorts.retention(s, w.tenant_id, w.program_id, period)
                slow_rfm = clv_report.rfm_of(s, w.tenant_id, w.program_id, start=None,
                                             end=end, calibration_end=end_day)
            assert fast.rows == slow.rows
            assert np.allclose(slow_rfm.x, rfm.x) and np.allclose(slow_rfm.total, rfm.total)


def _rfm_equal(s: Any, tenant_id: str, program_id: str, begin: date | None,
               end_day: date) -> None:
    start = None if begin is None else datetime.combine(begin, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(end_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    rfm = clv_report.rfm_of(s, tenant_id, program_id, start=start, end=end,
                            calibration_end=end_day)
    frame = reference_purchases(s, tenant_id, program_id, start=start, end=end)
    expected = rfm_summary(frame["member"].to_numpy(),
                           frame["day"].to_numpy().astype("datetime64[D]"),
                           frame["amount"].to_numpy(), np.datetime64(end_day, "D"))
    assert list(rfm.customers) == list(expected.customers)
    for name in ("x", "t_x", "T", "m_x", "total"):
        assert np.allclose(getattr(rfm, name), getattr(expected, name)), name


def _set_tier(h: History, name: str, tier: str | None) -> None:
    w = h.world
    with w.db.transaction() as s:
        s.execute(update(members.Enrolment)
                  .where(members.Enrolment.tenant_id == w.tenant_id,
                         members.Enrolment.program_id == w.program_id,
                         members.Enrolment.account_id == h.accounts[name])
                  .values(tier=tier))


def _change_event(h: History, event_id: str, **values: Any) -> None:
    w = h.world
    with w.db.transaction() as s:
        s.execute(update(Event).where(Event.tenant_id == w.tenant_id, Event.id == event_id)
                  .values(**values))


def _fold(db: Database) -> None:
    summaries.run_fold(db, batch=2)


def test_summaries_follow_a_random_history(db: Database, frozen_clock: clock.FrozenClock,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_clock.set(at(2025, 6, 1))
    h = History(build_world(db, expiry={"kind": "after_months", "months": 3},
                            negative_floor=-200), frozen_clock)
    w = h.world
    rng = random.Random(26)
    names = ["A", "B", "C"]
    for name in names:
        h.member(name, tier=rng.choice(TIERS))
    with db.transaction() as s:
        user = members.add_user(s, w.tenant_id, h.accounts["B"], name="Bea", role="rep")
    user_wallet = w.wallet(user.id, owner_type="user")
    # A wallet that holds points before its owner enrols (the enrolment moves them to a tier).
    with db.transaction() as s:
        late = members.create_account(s, w.tenant_id, name="Late").id
    h.accounts["L"] = late
    h.wallets["L"] = w.wallet(late)
    post(h, "L", 40, earn=True, days_back=3)
    entries: list[str] = []
    purchases: list[str] = []
    for step in range(90):
        h.move_to(at(2025, 6, 1) + timedelta(days=step * 4))
        roll = rng.random()
        name = rng.choice(names)
        if step == 20:
            with db.transaction() as s:
                enrolment = members.enrol(s, w.tenant_id, w.program_id, late, actor="test")
                enrolment.tier = "gold"
            names.append("L")
        if roll < 0.3:
            entries.append(post(h, name, rng.randint(1, 90), earn=True,
                                 days_back=rng.choice([0, 0, 1, 10, 40, 200])))
        elif roll < 0.4:
            entries.append(post(h, "B", rng.randint(1, 50), earn=True, wallet=user_wallet,
                                 days_back=rng.choice([0, 5])))
        elif roll < 0.55:
            balance = w.balance(h.wallets[name]).available
            if balance > -150:
                entries.append(post(h, name, rng.randint(1, min(120, balance + 200)),
                                     earn=False, days_back=rng.choice([0, 2, 30])))
        elif roll < 0.6 and entries:
            # A reversal the ledger refuses changes nothing.
            with contextlib.suppress(Exception):
                h.reverse(entries.pop(rng.randrange(len(entries))))
        elif roll < 0.65:
            _set_tier(h, name, rng.choice(TIERS))
        elif roll < 0.68:
            h.expire()
        elif roll < 0.85:
            when = clock.now() - timedelta(days=rng.choice([0, 1, 20, 45]), hours=rng.randint(0, 11))
            if rng.random() < 0.7:
                purchases.append(h.event(name, when, amount=rng.randint(100, 9000)))
            else:
                h.event(name, when, kind="activity", activity_type="visit")
        elif purchases:
            target = rng.choice(purchases)
            change = rng.random()
            if change < 0.3:
                _change_event(h, target, returned_amount=rng.randint(0, 100))
            elif change < 0.4:  # the program's currency left implicit: a second currency key
                _change_event(h, target, currency=None)
            elif change < 0.6:
                _change_event(h, target, status=rng.choice(["rejected", "processed"]))
            elif change < 0.8:
                _change_event(h, target, occurred_at=clock.now() - timedelta(days=33))
            else:
                purchases.remove(target)
                with db.transaction() as s:
                    s.execute(delete(Event).where(Event.tenant_id == w.tenant_id,
                                                  Event.id == target))
        if step % 15 == 14:
            _summaries_equal(db, w.tenant_id)
            if step % 30 == 29:
                _fold(db)
                _summaries_equal(db, w.tenant_id)
            _reports_equal(h, monkeypatch)
    h.move_to(at(2026, 6, 1))
    h.expire()
    _summaries_equal(db, w.tenant_id)
    _reports_equal(h, monkeypatch)
    _fold(db)
    _summaries_equal(db, w.tenant_id)
    with db.read() as s:
        held, days, months, buyers = summaries.stored(s, w.tenant_id)
    assert len({key[2] for key in held}) >= 2 and days and months
    assert any(row[5] == "*" for row in buyers.values()), "a member with two currency keys"
    assert any(net != remaining for remaining, net in held.values())
    assert_ledger_invariants(db)


def test_a_failed_write_leaves_the_summaries_unchanged(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    frozen_clock.set(at(2026, 1, 15))
    h = History(build_world(db), frozen_clock)
    h.member("A", tier="gold")
    h.earn("A", 100)
    h.event("A", clock.now(), amount=500)
    with db.read() as s:
        before = summaries.stored(s, h.world.tenant_id)

    class Boom(Exception):
        pass

    w = h.world
    with pytest.raises(Boom), db.transaction() as s:
        ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="earn",
            lines=(ledger.Line(w.issued_id, w.unit_id, ledger.Side.DEBIT, 7),
                   ledger.Line(h.wallets["A"], w.unit_id, ledger.Side.CREDIT, 7))))
        s.execute(update(members.Enrolment).where(
            members.Enrolment.tenant_id == w.tenant_id).values(tier="silver"))
        s.execute(update(Event).where(Event.tenant_id == w.tenant_id)
                  .values(returned_amount=200))
        assert summaries.stored(s, w.tenant_id) != before
        raise Boom
    with db.read() as s:
        assert summaries.stored(s, w.tenant_id) == before


def test_the_migration_backfills_the_summaries_from_existing_rows(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    frozen_clock.set(at(2026, 1, 15))
    h = History(build_world(db), frozen_clock)
    h.member("A", tier="gold")
    h.member("B")
    h.earn("A", 100)
    h.earn("B", 30)
    h.redeem("A", 20)
    h.event("A", clock.now() - timedelta(days=40), amount=700)
    h.event("B", clock.now(), kind="activity", activity_type="visit")
    with db.read() as s:
        before = summaries.stored(s, h.world.tenant_id)
        assert before == summaries.recompute(s, h.world.tenant_id)
    db.dispose()
    owner = db.url if db.url.startswith("sqlite") else databases.admin_url_of(db.url)
    command.downgrade(alembic_config(owner), "0025_agingfast")
    upgrade(owner)
    if not db.url.startswith("sqlite"):
        grant_app_role(owner)
    with db.read() as s:
        assert summaries.stored(s, h.world.tenant_id) == before
    h.earn("B", 5)  # the triggers are back
    _summaries_equal(db, h.world.tenant_id)
    with db.read() as s:
        rfm = clv_report.rfm_of(s, h.world.tenant_id, h.world.program_id, start=None,
                                end=datetime(2026, 1, 16, tzinfo=UTC),
                                calibration_end=date(2026, 1, 15))
    assert list(rfm.total) == [7.0]


def test_summaries_stay_exact_under_concurrent_writers(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    """Eight threads post earnings and purchases for the same two members at once while a
    ninth changes their tiers (on PostgreSQL: concurrent transactions; the member's purchase
    row is re-summed under a per-member lock, the tier move locks the member's wallets)."""
    import threading

    from tests.reliability.harness import run_threads

    frozen_clock.set(at(2026, 1, 15))
    h = History(build_world(db), frozen_clock)
    for name in ("A", "B"):
        h.member(name, tier="gold")
    w = h.world

    def write(index: int, barrier: threading.Barrier) -> str:
        barrier.wait()
        for step in range(8):
            name = "AB"[(index + step) % 2]
            if index == 0:
                _set_tier(h, name, TIERS[step % 3])
            elif step % 2:
                h.event(name, clock.now() - timedelta(days=step % 3), amount=100 + index)
            else:
                post(h, name, 5 + index, earn=True, days_back=step % 4)
        return "ok"

    outcomes = run_threads(8, write, timeout=120)
    assert outcomes == ["ok"] * 8, outcomes
    _summaries_equal(db, w.tenant_id)
    with db.read() as s:
        report = analytics.liability(s, w.tenant_id, w.program_id)
    assert report.summary["units"][0]["reconciled"] is True


def test_one_members_purchase_row_stays_exact_under_concurrent_purchases(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    """Six threads record purchases of one member on different days at once: each write
    re-sums the member's row, so it must see the days the others committed."""
    import threading

    from tests.reliability.harness import run_threads

    frozen_clock.set(at(2026, 1, 15))
    h = History(build_world(db), frozen_clock)
    h.member("A")

    def write(index: int, barrier: threading.Barrier) -> str:
        barrier.wait()
        for step in range(15):
            h.event("A", clock.now() - timedelta(days=index * 15 + step), amount=100 + index)
        return "ok"

    assert run_threads(6, write, timeout=120) == ["ok"] * 6
    _summaries_equal(db, h.world.tenant_id)


# --- programs in other time zones (migration 0028_localday) ---------------------------------

ZONES = ["America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe"]


def _set_zone(db: Database, tenant_id: str, program_id: str, zone: str) -> None:
    with db.transaction() as s:
        tenants.update_program(s, tenant_id, program_id, {"time_zone": zone})


def _tricky_instants(zone: str, rng: random.Random) -> list[datetime]:
    """Instants a few seconds to hours around the zone's offset changes and local midnights
    (May 2025 – April 2026)."""
    lo, hi = datetime(2025, 5, 1, tzinfo=UTC), datetime(2026, 4, 25, tzinfo=UTC)
    changes = [start for start, _, _ in zones.intervals(zone) if lo <= start <= hi]
    out = []
    for change in changes:
        out += [change + timedelta(seconds=d) for d in (-3600, -1, 0, 1, 1799, 1800, 3600)]
    for _ in range(25):
        day = (lo + timedelta(days=rng.randrange(355))).date()
        midnight = zones.day_start(zone, day)
        out += [midnight + timedelta(seconds=d) for d in (-1, 0, 1)]
    for _ in range(20):
        out.append(lo + timedelta(seconds=rng.randrange(int((hi - lo).total_seconds()))))
    return out


def _local_reports_equal(h: History, zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The RFM inputs and the retention cohorts of the program read from the summaries equal
    the event path's (forced), for bounds at the program's local midnights."""
    w = h.world
    with h.db.read() as s:
        for begin, end_day in ((None, date(2026, 4, 30)), (date(2025, 9, 1), date(2026, 1, 31)),
                               (None, date(2025, 11, 2))):
            start = None if begin is None else zones.day_start(zone, begin)
            end = zones.day_start(zone, end_day + timedelta(days=1))
            assert analytics_sql.whole_local_days(zone, start, end)
            fast = clv_report.rfm_of(s, w.tenant_id, w.program_id, start=start, end=end,
                                     calibration_end=end_day)
            frame = reference_purchases(s, w.tenant_id, w.program_id, start=start, end=end)
            expected = rfm_summary(frame["member"].to_numpy(),
                                   frame["day"].to_numpy().astype("datetime64[D]"),
                                   frame["amount"].to_numpy(), np.datetime64(end_day, "D"))
            with monkeypatch.context() as m:
                m.setattr(analytics_sql, "whole_local_days", lambda *_: False)
                slow = clv_report.rfm_of(s, w.tenant_id, w.program_id, start=start, end=end,
                                         calibration_end=end_day)
            for rfm in (slow, expected):
                assert list(fast.customers) == list(rfm.customers)
                for name in ("x", "t_x", "T", "m_x", "total"):
                    assert np.allclose(getattr(fast, name), getattr(rfm, name)), name
        for first, last in (("2025-04-01", "2026-04-30"), ("2025-05-01", "2026-03-31")):
            span = analytics.period(first, last, clock.now(), zone)
            assert analytics_sql.whole_local_months(zone, span.start, span.end)
            fast_r = cohorts.retention(s, w.tenant_id, w.program_id, span)
            with monkeypatch.context() as m:
                m.setattr(analytics_sql, "whole_local_months", lambda *_: False)
                slow_r = cohorts.retention(s, w.tenant_id, w.program_id, span)
            assert fast_r.rows == slow_r.rows and fast_r.rows


@pytest.mark.parametrize("zone", ZONES)
def test_local_day_summaries_follow_a_random_history(
        db: Database, frozen_clock: clock.FrozenClock, monkeypatch: pytest.MonkeyPatch,
        zone: str) -> None:
    frozen_clock.set(at(2025, 5, 1))
    h = History(build_world(db), frozen_clock)
    w = h.world
    _set_zone(db, w.tenant_id, w.program_id, zone)
    rng = random.Random(zone)
    names = ["A", "B", "C", "D"]
    for index, name in enumerate(names):  # cohorts: April or May in Los Angeles, May, June
        frozen_clock.set(datetime(2025, 5, 1, 3, tzinfo=UTC) + timedelta(days=45 * (index // 2)))
        h.member(name)
    frozen_clock.set(at(2026, 4, 30))
    purchases: list[str] = []
    for when in _tricky_instants(zone, rng):
        name = rng.choice(names)
        if rng.random() < 0.75:
            purchases.append(h.event(name, when, amount=rng.randint(100, 9000)))
        else:
            h.event(name, when, kind="activity", activity_type="visit")
    _summaries_equal(db, w.tenant_id)
    for target in rng.sample(purchases, 12):
        change = rng.random()
        if change < 0.3:
            _change_event(h, target, occurred_at=rng.choice(_tricky_instants(zone, rng)))
        elif change < 0.5:
            _change_event(h, target, returned_amount=rng.randint(0, 100))
        elif change < 0.7:
            _change_event(h, target, status="rejected")
        else:
            with db.transaction() as s:
                s.execute(delete(Event).where(Event.tenant_id == w.tenant_id,
                                              Event.id == target))
    _summaries_equal(db, w.tenant_id)
    with db.read() as s:
        _, days, months, _ = summaries.stored(s, w.tenant_id)
        utc_days = {(e.account_id, (e.occurred_at.date() - summaries.EPOCH).days)
                    for e in s.scalars(select(Event).where(Event.tenant_id == w.tenant_id,
                                                           Event.kind == "purchase",
                                                           Event.status == "processed"))}
    assert {(k[1], k[2]) for k in days} != utc_days, "keyed by local, not UTC, days"
    assert months
    _local_reports_equal(h, zone, monkeypatch)


def test_a_zone_change_rebuilds_the_programs_summaries(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    frozen_clock.set(at(2026, 1, 15))
    h = History(build_world(db), frozen_clock)
    w = h.world
    h.member("A")
    h.member("B")
    # 05:00 UTC on the 1st: the 31st in Los Angeles, the 1st in Kolkata and UTC
    h.event("A", datetime(2026, 1, 1, 5, tzinfo=UTC), amount=700)
    h.event("B", datetime(2025, 12, 31, 20, tzinfo=UTC), kind="activity",
            activity_type="visit")
    with db.read() as s:
        utc = summaries.stored(s, w.tenant_id)
    for zone in ("America/Los_Angeles", "Asia/Kolkata", "UTC"):
        _set_zone(db, w.tenant_id, w.program_id, zone)
        _summaries_equal(db, w.tenant_id)
        with db.read() as s:
            _, days, months, _ = summaries.stored(s, w.tenant_id)
        day = next(iter(days))[2]
        expected = date(2025, 12, 31) if zone == "America/Los_Angeles" else date(2026, 1, 1)
        assert summaries.EPOCH + timedelta(days=day) == expected
        b_month = next(k[2] for k in months if k[1] == h.accounts["B"])
        assert b_month == (2026 * 12 + 1 if zone == "Asia/Kolkata" else 2025 * 12 + 12)
    with db.read() as s:
        assert summaries.stored(s, w.tenant_id) == utc

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.transaction() as s:
        tenants.update_program(s, w.tenant_id, w.program_id, {"time_zone": "Asia/Kolkata"})
        h_event = Event  # a write in the same transaction, then a failure
        s.execute(update(h_event).where(h_event.tenant_id == w.tenant_id)
                  .values(returned_amount=100))
        assert summaries.stored(s, w.tenant_id) != utc
        raise Boom
    with db.read() as s:
        assert summaries.stored(s, w.tenant_id) == utc
        assert summaries.stored(s, w.tenant_id) == summaries.recompute(s, w.tenant_id)
