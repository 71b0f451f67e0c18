"""Challenges progressing in the earning path (same transaction as the event), completion
effects through the ledger, badges, tier credit, budgets, leaderboards and surveys
(SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from allegiance import engagement, ledger, tiers
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.events_support import Shop, definition
from tests.support.invariants import assert_ledger_invariants

TZ = "America/New_York"
NOW = datetime(2026, 3, 31, 12, tzinfo=UTC)


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        s = Shop(db, definition(time_zone=TZ))
        yield s
    assert_ledger_invariants(db)


def challenge(shop: Shop, **kw: Any) -> engagement.Challenge:
    kw.setdefault("effects", [{"type": "points", "unit": "points", "amount": 500}])
    with shop.db.transaction() as s:
        row = engagement.create_challenge(s, shop.tenant_id, shop.program_id,
                                          code=kw.pop("code", "c"), name="Challenge",
                                          actor="test", **kw)
        s.expunge(row)
        return row


SEQ = itertools.count(1)


def buy(shop: Shop, account: str, at: datetime, amount: int = 1000, **kw: Any) -> None:
    shop.event(external_id=f"p{next(SEQ)}", account_id=account, occurred_at=at, amount=amount,
               **kw)


@dataclass
class Seen:
    completions: int
    remaining: int | None
    streak: int
    period_value: int
    done_in: list[int]


def progress(shop: Shop, account: str, code: str = "c") -> Seen:
    with shop.db.read() as s:
        p = next(p for p in engagement.progress_of(s, shop.tenant_id, shop.program_id, account)
                 if p.challenge.code == code)
        return Seen(p.completions, p.remaining, p.streak, p.period_value,
                    [c.period_index for c in p.history])


def challenge_points(shop: Shop, account: str) -> int:
    with shop.db.read() as s:
        rows = s.scalars(select(engagement.ChallengeCompletion).where(
            engagement.ChallengeCompletion.account_id == account))
        return sum(e["amount"] for r in rows for e in r.effects
                   if e["type"] == "points" and e["paid"])


def test_four_purchases_a_month_four_months_in_a_row(shop: Shop) -> None:
    acc = shop.account()
    challenge(shop, trigger="purchase", target=4, period="month", streak=4)
    start = datetime(2025, 12, 3, 15, tzinfo=UTC)
    for month in range(4):
        for k in range(4):
            buy(shop, acc, start + timedelta(days=31 * month + k), amount=100)
        p = progress(shop, acc)
        assert p.completions == (1 if month == 3 else 0)
    earned_by_rules = 16 * 1  # 1 point per dollar: 100 cents per purchase
    assert shop.wallet(acc).available == earned_by_rules + 500
    assert challenge_points(shop, acc) == 500


def test_a_missed_month_breaks_the_streak_and_it_restarts(shop: Shop) -> None:
    acc = shop.account()
    challenge(shop, trigger="purchase", target=1, period="month", streak=3)
    for month in (1, 2, 4, 5, 6):  # March missing
        buy(shop, acc, datetime(2025, month, 10, tzinfo=UTC))
    p = progress(shop, acc)
    assert p.completions == 1 and p.done_in == [2025 * 12 + 5]


def test_period_boundaries_follow_the_program_time_zone(shop: Shop) -> None:
    acc = shop.account()
    challenge(shop, trigger="purchase", target=1, period="day", streak=2)
    # 2026-03-02 03:00 UTC is still 1 March in New York, and 2026-03-02 23:00 UTC is 2 March
    buy(shop, acc, datetime(2026, 3, 2, 3, tzinfo=UTC))
    buy(shop, acc, datetime(2026, 3, 2, 23, tzinfo=UTC))
    assert progress(shop, acc).completions == 1


def test_late_event_fills_the_gap(shop: Shop) -> None:
    acc = shop.account()
    challenge(shop, trigger="purchase", target=1, period="day", streak=3)
    buy(shop, acc, datetime(2026, 3, 10, 15, tzinfo=UTC))
    buy(shop, acc, datetime(2026, 3, 12, 15, tzinfo=UTC))
    assert progress(shop, acc).completions == 0
    buy(shop, acc, datetime(2026, 3, 11, 15, tzinfo=UTC))
    assert progress(shop, acc).completions == 1


def test_max_completions_caps_a_streak_that_would_complete_more_often(shop: Shop) -> None:
    """Two days in a row, at most twice: six days in a row would complete three times."""
    acc = shop.account()
    challenge(shop, trigger="purchase", target=1, period="day", streak=2, max_completions=2)
    for day in range(1, 7):
        buy(shop, acc, datetime(2026, 3, day, 15, tzinfo=UTC), amount=100)
    p = progress(shop, acc)
    assert (p.completions, p.remaining, len(p.done_in)) == (2, 0, 2)
    assert challenge_points(shop, acc) == 1000
    assert shop.wallet(acc).available == 6 * 1 + 1000


def test_leaderboard_months_follow_the_program_time_zone(shop: Shop) -> None:
    """A purchase at 22:00 in New York on 28 February is 1 March in UTC: it counts in
    February's board; one at 01:00 on 1 March counts in March's (tally day in the zone)."""
    late, early = shop.account(name="Late"), shop.account(name="Early")
    buy(shop, late, datetime(2026, 3, 1, 3, tzinfo=UTC), amount=7000)  # 28 Feb 22:00 local
    buy(shop, early, datetime(2026, 3, 1, 6, tzinfo=UTC), amount=3000)  # 1 Mar 01:00 local
    with shop.db.read() as s:
        for metric, scale in (("sales", 1), ("points_earned", 100)):
            feb = engagement.leaderboard(s, shop.tenant_id, shop.program_id, metric=metric,
                                         period="month", at=datetime(2026, 2, 15, tzinfo=UTC))
            mar = engagement.leaderboard(s, shop.tenant_id, shop.program_id, metric=metric,
                                         period="month", at=datetime(2026, 3, 15, tzinfo=UTC))
            assert (feb.label, [(e.name, e.score) for e in feb.entries]) == (
                "2026-02", [("Late", 7000 // scale)]), metric
            assert (mar.label, [(e.name, e.score) for e in mar.entries]) == (
                "2026-03", [("Early", 3000 // scale)]), metric


def test_spend_on_a_product_list_this_quarter_with_cap_badge_and_tier_credit(shop: Shop) -> None:
    acc = shop.account()
    with shop.db.transaction() as s:
        tiers.create_ladder(s, shop.tenant_id, shop.program_id, {
            "code": "challengers", "name": "Challengers", "metric": "count",
            "period": {"kind": "calendar_year"},
            "levels": [{"code": "pro", "name": "Pro", "threshold": 1}]})
        engagement.create_badge(s, shop.tenant_id, shop.program_id, code="genuine-pro",
                                name="Genuine pro", levels=["Bronze", "Silver", "Gold"])
    challenge(shop, trigger="purchase", metric="amount", target=10_000, period="quarter",
              product_list="genuine", max_completions=1, effects=[
                  {"type": "points", "unit": "points", "amount": 300},
                  {"type": "badge", "badge": "genuine-pro"},
                  {"type": "tier_credit", "metric": "count", "amount": 1}])
    at = datetime(2026, 1, 5, tzinfo=UTC)
    buy(shop, acc, at, lines=[{"sku": "SKU-1", "amount": 6000},
                              {"sku": "OTHER", "amount": 90_000}])
    assert progress(shop, acc).completions == 0
    with shop.db.read() as s:
        assert [t.level for t in tiers.status(s, shop.tenant_id, shop.program_id, acc)] == [None]
    buy(shop, acc, at + timedelta(days=1), lines=[{"sku": "SKU-2", "amount": 4000}])
    buy(shop, acc, at + timedelta(days=2), lines=[{"sku": "SKU-2", "amount": 40_000}])
    p = progress(shop, acc)
    assert (p.completions, p.remaining) == (1, 0)
    with shop.db.read() as s:
        held = engagement.badges_of(s, shop.tenant_id, shop.program_id, acc)
        assert [(h.code, h.level, h.level_name) for h in held] == [("genuine-pro", 1, "Bronze")]
        placed = {t.ladder_code: t.level for t in tiers.status(s, shop.tenant_id,
                                                               shop.program_id, acc)}
    assert placed["challengers"] == "pro"
    assert challenge_points(shop, acc) == 300


def test_budget_is_never_overdrawn(shop: Shop) -> None:
    challenge(shop, trigger="purchase", target=1, period="all", budget=1000)
    accounts = [shop.account(name=f"A{i}") for i in range(3)]
    for acc in accounts:
        buy(shop, acc, datetime(2026, 3, 1, tzinfo=UTC))
    paid = [challenge_points(shop, acc) for acc in accounts]
    assert paid == [500, 500, 0]
    with shop.db.read() as s:
        done = s.scalars(select(engagement.ChallengeCompletion).where(
            engagement.ChallengeCompletion.account_id == accounts[2])).one()
        assert done.effects[0]["note"] == "the challenge's budget is used up"


def test_activity_challenge_and_window(shop: Shop) -> None:
    acc = shop.account()
    challenge(shop, trigger="activity:newsletter_opt_in", target=1,
              starts_at=datetime(2026, 2, 1, tzinfo=UTC), ends_at=datetime(2026, 3, 1, tzinfo=UTC))
    shop.event(external_id="a1", kind="activity", activity_type="newsletter_opt_in",
               account_id=acc, occurred_at=datetime(2026, 1, 20, tzinfo=UTC))
    assert progress(shop, acc).completions == 0
    shop.event(external_id="a2", kind="activity", activity_type="newsletter_opt_in",
               account_id=acc, occurred_at=datetime(2026, 2, 20, tzinfo=UTC))
    assert progress(shop, acc).completions == 1


def test_leaderboard_ties_and_opt_out(shop: Shop) -> None:
    a, b, c, d = (shop.account(name=n) for n in "ABCD")
    at = datetime(2026, 3, 5, tzinfo=UTC)
    for acc, amount in ((a, 5000), (b, 5000), (c, 2000), (d, 9000)):
        buy(shop, acc, at, amount=amount)
    buy(shop, a, datetime(2026, 2, 5, tzinfo=UTC), amount=99_000)  # another month
    with shop.db.transaction() as s:
        board = engagement.leaderboard(s, shop.tenant_id, shop.program_id, metric="sales",
                                       period="month", at=at, account_id=c)
        assert [(e.name, e.score, e.rank) for e in board.entries] == [
            ("D", 9000, 1), ("A", 5000, 2), ("B", 5000, 2), ("C", 2000, 4)]
        assert board.me is not None and board.me.rank == 4 and board.label == "2026-03"
        dense = engagement.leaderboard(s, shop.tenant_id, shop.program_id, metric="points_earned",
                                       period="month", at=at, ranking="dense")
        assert [e.rank for e in dense.entries] == [1, 2, 2, 3]
        engagement.set_opt_out(s, shop.tenant_id, shop.program_id, d, True)
    with shop.db.read() as s:
        board = engagement.leaderboard(s, shop.tenant_id, shop.program_id, metric="sales",
                                       period="month", at=at, account_id=d)
        assert [(e.name, e.rank) for e in board.entries] == [("A", 1), ("B", 1), ("C", 3)]
        assert board.me is None
        year = engagement.leaderboard(s, shop.tenant_id, shop.program_id, metric="sales",
                                      period="year", at=at)
        assert year.entries[0].name == "A" and year.entries[0].score == 104_000


def test_survey_reward_once_and_nps_by_segment(shop: Shop) -> None:
    accounts = [shop.account(name=f"S{i}", attributes={"segment": seg})
                for i, seg in enumerate(["retail", "retail", "retail", "pro"])]
    with shop.db.transaction() as s:
        survey = engagement.create_survey(
            s, shop.tenant_id, shop.program_id, code="q1", name="Q1",
            questions=[{"code": "nps", "text": "Recommend?", "kind": "nps"},
                       {"code": "why", "text": "Why?", "kind": "text", "required": False}],
            reward_unit_id=shop.unit_id, reward_points=25)
        survey_id = survey.id
    for acc, score in zip(accounts, (10, 9, 3, 7), strict=True):
        with shop.db.transaction() as s:
            engagement.submit(s, shop.tenant_id, survey_id, accounts[0] if False else acc,
                              {"nps": score}, actor="test")
    with pytest.raises(AllegianceError) as err, shop.db.transaction() as s:
        engagement.submit(s, shop.tenant_id, survey_id, accounts[0], {"nps": 1}, actor="t")
    assert err.value.code == "already_answered"
    with pytest.raises(AllegianceError) as err, shop.db.transaction() as s:
        engagement.submit(s, shop.tenant_id, survey_id, shop.account(), {"nps": 11}, actor="t")
    assert (err.value.code, err.value.field) == ("invalid_answers", "answers.nps")
    assert shop.wallet(accounts[0]).available == 25
    with shop.db.read() as s:
        report = engagement.nps_report(s, shop.tenant_id, shop.program_id)
    assert (report.overall.responses, report.overall.score) == (4, 25)
    assert report.by_segment_attribute["retail"].score == 33 \
        and report.by_segment_attribute["pro"].score == 0
    with shop.db.read() as s:
        entries = s.scalars(select(ledger.JournalEntry).where(
            ledger.JournalEntry.source_type == "survey_response")).all()
    assert len(entries) == 4


def test_badge_effects_of_rules_raise_the_level(db: Database) -> None:
    with clock.frozen(NOW):
        shop = Shop(db, definition({"code": "seller", "trigger": "purchase",
                                    "effects": [{"type": "badge", "code": "seller"}]}))
        with shop.db.transaction() as s:
            engagement.create_badge(s, shop.tenant_id, shop.program_id, code="seller",
                                    name="Seller", levels=["One", "Two"])
        acc = shop.account()
        for _ in range(3):
            buy(shop, acc, NOW)
        with shop.db.read() as s:
            held = engagement.badges_of(s, shop.tenant_id, shop.program_id, acc)
        assert [(h.code, h.level_name) for h in held] == [("seller", "Two")]
    assert_ledger_invariants(db)


def test_challenge_definitions_are_checked(shop: Shop) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"trigger": "purchase", "product_list": "nope"}, "product_list"),
        ({"trigger": "activity:x", "category": "tyres"}, "product_list"),
        ({"trigger": "purchase", "period": "all", "streak": 2}, "streak"),
        ({"trigger": "purchase", "metric": "weight"}, "metric"),
        ({"trigger": "purchase", "effects": [{"type": "points", "unit": "points",
                                              "amount": 0}]}, "effects[0].amount"),
        ({"trigger": "purchase", "effects": [{"type": "tier_credit", "amount": 1,
                                              "metric": "karma"}]}, "effects[0].metric"),
        ({"trigger": "purchase", "budget": 10,
          "effects": [{"type": "tier_credit", "metric": "count", "amount": 1}]}, "budget"),
    ]
    for kw, field in cases:
        with pytest.raises(AllegianceError) as err:
            challenge(shop, target=1, **kw)
        assert (err.value.code, err.value.field) == ("invalid_challenge", field), kw
