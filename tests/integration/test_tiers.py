"""Tiers against a real database (SQLite and PostgreSQL): credits and immediate upgrades,
downgrades at period end with grace, direct and manual placement, roll-up, reported metrics,
certification, monthly periods, and the set-based recalculation checked against the domain."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select

from allegiance import members, tenants, tiers
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.tiers import domain
from tests.conftest import build_world

JAN = datetime(2026, 1, 15, 12, tzinfo=UTC)

SKINCEUTICALS: dict[str, Any] = {
    "code": "professional", "name": "Professional Rewards", "metric": "spend",
    "period": {"kind": "calendar_year"},
    "levels": [
        {"code": "titanium", "name": "Titanium", "threshold": 2_500_000},
        {"code": "gold", "name": "Gold", "threshold": 5_000_000,
         "benefits": {"earn_multiplier": "1.25"}},
        {"code": "platinum", "name": "Platinum", "threshold": 7_500_000},
        {"code": "diamond", "name": "Diamond", "threshold": 10_000_000},
        {"code": "black-diamond", "name": "Black Diamond", "threshold": 12_500_000,
         "benefits": {"earn_multiplier": "2", "perks": ["premium events"]}},
    ],
    "primary": True,
}


def at(year: int, month: int, day: int = 15) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


class Tiers:
    """A tenant and program with accounts, and short-hands for the tier services."""

    def __init__(self, db: Database, time_zone: str = "UTC") -> None:
        world = build_world(db)
        self.db, self.tenant_id = db, world.tenant_id
        with db.transaction() as s:
            if time_zone != "UTC":
                tenants.update_program(s, world.tenant_id, world.program_id,
                                       {"time_zone": time_zone})
        self.program_id = world.program_id

    def account(self, parent_id: str | None = None, enrol: bool = True,
                segment: str | None = None) -> str:
        with self.db.transaction() as s:
            acc = members.create_account(s, self.tenant_id, name="Spa", parent_id=parent_id,
                                         attributes={"segment": segment} if segment else None)
            if enrol:
                members.enrol(s, self.tenant_id, self.program_id, acc.id, actor="test")
            return acc.id

    def bulk_accounts(self, n: int) -> list[str]:
        now = datetime(2025, 1, 1, tzinfo=UTC)
        ids = [f"acc_bulk{i:022d}" for i in range(n)]
        with self.db.transaction() as s:
            s.execute(insert(members.Account), [
                {"tenant_id": self.tenant_id, "id": a, "parent_id": None, "name": "Bulk",
                 "member_number": f"B{i}", "attributes": {}, "status": "active",
                 "created_at": now, "updated_at": now} for i, a in enumerate(ids)])
            s.execute(insert(members.Enrolment), [
                {"tenant_id": self.tenant_id, "id": f"enr_bulk{i:022d}",
                 "program_id": self.program_id, "account_id": a, "status": "active",
                 "tier": None, "application": {}, "created_at": now, "updated_at": now}
                for i, a in enumerate(ids)])
        return ids

    def ladder(self, definition: dict[str, Any]) -> str:
        with self.db.transaction() as s:
            return tiers.create_ladder(s, self.tenant_id, self.program_id, definition).id

    def credit(self, account_id: str, amount: int, when: datetime, metric: str = "spend",
               order_amount: int | None = None) -> list[tiers.Move]:
        with self.db.transaction() as s:
            return tiers.add_credit(s, self.tenant_id, self.program_id, account_id, metric,
                                    amount, when, order_amount=order_amount)

    def report(self, account_id: str, metric: str, value: int, when: datetime) -> list[tiers.Move]:
        with self.db.transaction() as s:
            return tiers.report_metric(s, self.tenant_id, self.program_id, account_id, metric,
                                       value, when)

    def recalc(self, when: datetime, period_end: bool = False) -> tiers.Recalculation:
        with self.db.transaction() as s:
            return tiers.recalculate(s, self.tenant_id, self.program_id, at=when,
                                     period_end=period_end)

    def level(self, account_id: str, ladder: str | None = None) -> str | None:
        with self.db.read() as s:
            states = tiers.status(s, self.tenant_id, self.program_id, account_id)
        state = next(x for x in states if ladder is None or x.ladder_code == ladder)
        return state.level

    def state(self, account_id: str, when: datetime) -> tiers.TierState:
        with self.db.read() as s:
            return tiers.status(s, self.tenant_id, self.program_id, account_id, when)[0]

    def enrolment_tier(self, account_id: str) -> str | None:
        with self.db.read() as s:
            return s.execute(select(members.Enrolment.tier).where(
                members.Enrolment.tenant_id == self.tenant_id,
                members.Enrolment.account_id == account_id)).scalar_one()

    def history(self, account_id: str) -> list[tuple[str | None, str | None, str]]:
        with self.db.read() as s:
            rows = tiers.history(s, self.tenant_id, self.program_id, account_id)
            return [(r.from_level, r.to_level, r.reason) for r in reversed(rows)]


@pytest.fixture
def t(db: Database) -> Tiers:
    return Tiers(db)


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


def test_set_based_recalculation_equals_the_domain_per_member(t: Tiers) -> None:
    """2,000 members with random credits, reports, levels and locks: one set-based run gives
    each member the level the pure domain function gives."""
    definition = {
        "code": "status", "metric": "points_earned",
        "period": {"kind": "rolling_months", "months": 3},
        "levels": [{"code": "l0", "threshold": 0}, {"code": "l1", "threshold": 100},
                   {"code": "l2", "threshold": 500, "requires": {"rating": 3}},
                   {"code": "l3", "threshold": 900}],
        "downgrade": {"grace": "one_step"},
    }
    ladder_id = t.ladder(definition)
    ladder = domain.from_dict(definition)
    rng = random.Random(20261123)
    accounts = t.bulk_accounts(2000)
    ref = domain.month_index(at(2026, 6), "UTC")
    metric_rows: list[dict[str, Any]] = []
    status_rows: list[dict[str, Any]] = []
    values: dict[str, int] = {}
    ratings: dict[str, int] = {}
    current: dict[str, tuple[int, bool]] = {}
    for acc in accounts:
        total = 0
        for bucket in range(ref - 5, ref + 1):
            if rng.random() < 0.5:
                amount = rng.randint(-20, 400)
                metric_rows.append({"metric": "points_earned", "account_id": acc,
                                    "bucket": bucket, "value": amount})
                if bucket >= ref - 2:
                    total += amount
        values[acc] = total
        if rng.random() < 0.5:
            history = sorted(rng.sample(range(ref - 8, ref + 2), 2))
            for bucket in history:
                rating = rng.randint(1, 5)
                metric_rows.append({"metric": "rating", "account_id": acc, "bucket": bucket,
                                    "value": rating})
                if bucket <= ref:
                    ratings[acc] = rating
        if rng.random() < 0.6:
            rank, locked = rng.randint(-1, 3), rng.random() < 0.1
            current[acc] = (rank, locked)
            status_rows.append({
                "account_id": acc, "level_rank": rank, "level_code": ladder.code_of(rank),
                "locked": locked, "since": at(2025, 1), "lock_reason": None, "version": 0,
                "anchor_month": ref - 20})
    common = {"tenant_id": t.tenant_id, "program_id": t.program_id}
    with t.db.transaction() as s:
        s.execute(insert(tiers.TierMetric),
                  [{**common, **r, "updated_at": at(2026, 1)} for r in metric_rows])
        s.execute(insert(tiers.TierStatus),
                  [{**common, **r, "ladder_id": ladder_id, "updated_at": at(2025, 1)}
                   for r in status_rows])
    result = t.recalc(at(2026, 7, 1), period_end=True)  # settles June 2026
    expected: dict[str, int] = {}
    for acc in accounts:
        rank, locked = current.get(acc, (-1, False))
        qualified = domain.qualify_rank(ladder, values[acc], {"rating": ratings.get(acc, 0)})
        expected[acc] = domain.decide_rank(ladder, rank, qualified, period_end=True,
                                           locked=locked)
    with t.db.read() as s:
        got = dict(s.execute(select(tiers.TierStatus.account_id, tiers.TierStatus.level_rank)
                             .where(tiers.TierStatus.tenant_id == t.tenant_id)).all())
        codes = dict(s.execute(select(tiers.TierStatus.account_id, tiers.TierStatus.level_code)
                               .where(tiers.TierStatus.tenant_id == t.tenant_id)).all())
    assert {a: got.get(a, -1) for a in accounts} == expected
    assert all(codes.get(a) == ladder.code_of(r) for a, r in expected.items())
    moved_up = sum(1 for a in accounts if expected[a] > current.get(a, (-1, False))[0])
    moved_down = sum(1 for a in accounts if expected[a] < current.get(a, (-1, False))[0])
    assert (result.upgraded, result.downgraded) == (moved_up, moved_down)
    assert moved_up > 100 and moved_down > 100
    with t.db.read() as s:  # one history row per move
        changes = s.execute(select(tiers.TierChange.account_id).where(
            tiers.TierChange.tenant_id == t.tenant_id)).scalars().all()
    assert len(changes) == moved_up + moved_down
    # Running the same settlement again changes nothing.
    again = t.recalc(at(2026, 7, 2), period_end=True)
    assert (again.upgraded, again.downgraded) == (0, 0)


def test_other_tenants_cannot_reach_the_ladders(t: Tiers) -> None:
    ladder_id = t.ladder(SKINCEUTICALS)
    other = Tiers(t.db)
    with t.db.read() as s, pytest.raises(AllegianceError) as err:
        tiers.get_ladder(s, other.tenant_id, ladder_id)
    assert err.value.status == 404
    with t.db.read() as s, pytest.raises(AllegianceError):
        tiers.list_ladders(s, other.tenant_id, t.program_id)


def test_batch_job_settles_every_program_once(t: Tiers) -> None:
    from allegiance.tiers.jobs import recalculate_all

    t.ladder({**SKINCEUTICALS, "downgrade": {"grace": "one_step"}})
    spa = t.account()
    t.credit(spa, 11_000_000, at(2026, 3))
    other = Tiers(t.db)
    other.ladder(SKINCEUTICALS)
    shop = other.account()
    other.credit(shop, 5_000_000, at(2026, 3))
    totals = recalculate_all(t.db, at(2028, 1, 3))
    assert totals["programs"] == 2 and totals["downgraded"] == 2
    assert (t.level(spa), other.level(shop)) == ("platinum", None)  # grace: none
    again = recalculate_all(t.db, at(2028, 1, 4))  # the same month: nothing twice
    assert again["downgraded"] == 0
    assert t.level(spa) == "platinum"


def test_distributors_and_retailers_have_ladders_of_their_own(t: Tiers) -> None:
    levels = [{"code": "silver", "threshold": 1000}, {"code": "gold", "threshold": 5000}]
    t.ladder({"code": "distributors", "metric": "spend", "levels": levels,
              "audience": {"segment": "distributor"}})
    t.ladder({"code": "retailers", "metric": "spend", "levels": levels,
              "audience": {"segment": ["retailer", "pharmacy"]}})
    dist, shop = t.account(segment="distributor"), t.account(segment="pharmacy")
    loner = t.account()
    moves = t.credit(dist, 1500, at(2026, 2))
    assert [(m.ladder_code, m.to_level) for m in moves] == [("distributors", "silver")]
    with t.db.transaction() as s:
        for acc in (shop, loner):
            s.execute(insert(tiers.TierMetric).values(
                tenant_id=t.tenant_id, program_id=t.program_id, metric="spend", account_id=acc,
                bucket=domain.month_index(at(2026, 3), "UTC"), value=6000,
                updated_at=at(2026, 3)))
    result = t.recalc(at(2026, 4))
    assert result.ladders["retailers"]["upgraded"] == 1
    assert result.ladders["distributors"]["upgraded"] == 0
    with t.db.read() as s:
        assert [x.ladder_code for x in tiers.status(s, t.tenant_id, t.program_id, shop)] == [
            "retailers"]
        assert tiers.status(s, t.tenant_id, t.program_id, loner) == []
    assert t.level(shop) == "gold"
    with t.db.transaction() as s, pytest.raises(AllegianceError) as err:
        tiers.place(s, t.tenant_id, t.program_id, loner, level="gold", reason="x", actor="a",
                    ladder_code="retailers")
    assert err.value.field == "ladder"


def test_concurrent_credits_on_postgres(pg_db: Database) -> None:
    """Many writers crediting one account and its siblings: no credit lost, each move
    recorded once, the parent's roll-up sees every child's credit."""
    from concurrent.futures import ThreadPoolExecutor

    t = Tiers(pg_db)
    t.ladder({**SKINCEUTICALS, "rollup": True})
    parent = t.account()
    kids = [t.account(parent_id=parent) for _ in range(4)]

    def work(i: int) -> int:
        moves = t.credit(kids[i % 4], 500_000, at(2026, 3))
        return len(moves)

    with ThreadPoolExecutor(max_workers=8) as pool:
        moved = sum(pool.map(work, range(40)))
    assert t.state(kids[0], at(2026, 3)).value == 5_000_000
    assert t.state(parent, at(2026, 3)).value == 20_000_000
    assert t.level(parent) == "black-diamond" and t.level(kids[0]) == "gold"
    with t.db.read() as s:
        rows = s.execute(select(tiers.TierChange.account_id, tiers.TierChange.seq).where(
            tiers.TierChange.tenant_id == t.tenant_id)).all()
    assert len(rows) == moved
    for acc in [parent, *kids]:
        seqs = sorted(seq for a, seq in rows if a == acc)
        assert seqs == list(range(1, len(seqs) + 1))


def test_set_based_rollup_and_anniversaries_equal_the_domain(t: Tiers) -> None:
    """A random account tree on an anniversary ladder with roll-up: each account's level
    after one settlement is what the domain gives for its subtree's credits in its own year."""
    definition = {"code": "group", "metric": "count", "period": {"kind": "anniversary"},
                  "levels": [{"code": "a", "threshold": 5}, {"code": "b", "threshold": 40},
                             {"code": "c", "threshold": 120}],
                  "rollup": True}
    ladder_id = t.ladder(definition)
    ladder = domain.from_dict(definition)
    rng = random.Random(7)
    ref = domain.month_index(at(2026, 6), "UTC")
    now = at(2025, 1)
    parents: dict[str, str | None] = {}
    ids = [f"acc_tree{i:022d}" for i in range(300)]
    for i, acc in enumerate(ids):
        parents[acc] = ids[rng.randrange(i)] if i and rng.random() < 0.8 else None
    with t.db.transaction() as s:
        for acc in ids:  # parents first: ids are in creation order
            s.execute(insert(members.Account).values(
                tenant_id=t.tenant_id, id=acc, parent_id=parents[acc], name="n",
                member_number=acc[-8:], attributes={}, status="active", created_at=now,
                updated_at=now))
    credits: dict[tuple[str, int], int] = {}
    for acc in ids:
        for bucket in rng.sample(range(ref - 23, ref + 1), 4):
            credits[(acc, bucket)] = rng.randint(0, 12)
    statuses: dict[str, tuple[int, int]] = {}
    for acc in ids:
        if rng.random() < 0.7:
            statuses[acc] = (rng.randint(-1, 2), ref - rng.randint(0, 30))
    with t.db.transaction() as s:
        s.execute(insert(tiers.TierMetric), [
            {"tenant_id": t.tenant_id, "program_id": t.program_id, "metric": "count",
             "account_id": a, "bucket": b, "value": v, "updated_at": now}
            for (a, b), v in credits.items()])
        s.execute(insert(tiers.TierStatus), [
            {"tenant_id": t.tenant_id, "ladder_id": ladder_id, "account_id": a,
             "program_id": t.program_id, "level_rank": r, "level_code": ladder.code_of(r),
             "since": now, "locked": False, "lock_reason": None, "anchor_month": anchor,
             "version": 0, "updated_at": now} for a, (r, anchor) in statuses.items()])
    t.recalc(at(2026, 7, 3), period_end=True)  # settles June 2026

    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)

    def subtree(root: str) -> set[str]:
        found, todo = {root}, [root]
        while todo:
            for child in children.get(todo.pop(), []):
                found.add(child)
                todo.append(child)
        return found

    expected: dict[str, int] = {}
    for acc in ids:
        rank, anchor = statuses.get(acc, (-1, ref))
        first, last = ladder.period.bounds(ref, anchor)
        tree = subtree(acc)
        value = sum(v for (a, b), v in credits.items() if a in tree and first <= b <= last)
        qualified = domain.qualify_rank(ladder, value)
        expected[acc] = domain.decide_rank(ladder, rank, qualified,
                                           period_end=ladder.period.ends_at(ref, anchor),
                                           locked=False)
    with t.db.read() as s:
        got = dict(s.execute(select(tiers.TierStatus.account_id, tiers.TierStatus.level_rank)
                             .where(tiers.TierStatus.tenant_id == t.tenant_id)).all())
    assert {a: got.get(a, -1) for a in ids} == expected
    falls = sum(1 for a in ids if expected[a] < statuses.get(a, (-1, 0))[0])
    assert falls > 3  # some anniversaries ended and fell
