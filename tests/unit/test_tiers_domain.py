"""Tier ladders as data, periods, qualification, moves and progress (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from allegiance.tiers import domain
from allegiance.tiers.domain import PeriodSpec

# SkinCeuticals Professional Rewards: five tiers by annual purchases, money in cents.
SKINCEUTICALS: dict[str, Any] = {
    "code": "professional",
    "metric": "spend",
    "period": {"kind": "calendar_year"},
    "levels": [
        {"code": "titanium", "name": "Titanium", "threshold": 2_500_000},
        {"code": "gold", "name": "Gold", "threshold": 5_000_000},
        {"code": "platinum", "name": "Platinum", "threshold": 7_500_000},
        {"code": "diamond", "name": "Diamond", "threshold": 10_000_000},
        {"code": "black-diamond", "name": "Black Diamond", "threshold": 12_500_000,
         "benefits": {"earn_multiplier": "2", "perks": ["premium events"]}},
    ],
    "downgrade": {"grace": "one_step"},
}


def ladder(**changes: Any) -> domain.Ladder:
    return domain.from_dict({**SKINCEUTICALS, **changes})


def mi(year: int, month: int) -> int:
    return year * 12 + month - 1


# ---------------------------------------------------------------------------------------------
# Periods


def test_month_index_uses_the_program_time_zone() -> None:
    at = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)  # still 31 December in New York
    assert domain.month_index(at, "UTC") == mi(2026, 1)
    assert domain.month_index(at, "America/New_York") == mi(2025, 12)
    assert domain.month_index(datetime(2025, 12, 31, 16, 0, tzinfo=UTC), "Asia/Tokyo") == mi(2026, 1)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        domain.month_index(datetime(2026, 1, 1), "UTC")


def test_calendar_year_window() -> None:
    spec = PeriodSpec("calendar_year")
    assert spec.bounds(mi(2026, 7)) == (mi(2026, 1), mi(2026, 12))
    start, end = spec.window(datetime(2026, 7, 4, tzinfo=UTC), "America/Los_Angeles")
    assert (start.year, start.month, start.day, end.year, end.month) == (2026, 1, 1, 2027, 1)
    assert start.utcoffset() is not None and start.astimezone(UTC).hour == 8
    assert spec.period_key(datetime(2026, 7, 4, tzinfo=UTC), "UTC") == "2026"
    assert spec.ends_at(mi(2026, 12)) and not spec.ends_at(mi(2026, 11))


def test_calendar_month_window() -> None:
    spec = PeriodSpec("calendar_month")
    assert spec.bounds(mi(2026, 2)) == (mi(2026, 2), mi(2026, 2))
    assert spec.period_key(datetime(2026, 2, 10, tzinfo=UTC), "UTC") == "2026-02"
    assert spec.ends_at(mi(2026, 2))


def test_rolling_months_window() -> None:
    spec = PeriodSpec("rolling_months", months=3)
    assert spec.bounds(mi(2026, 2)) == (mi(2025, 12), mi(2026, 2))
    assert spec.period_key(datetime(2026, 2, 10, tzinfo=UTC), "UTC") == "2025-12..2026-02"
    with pytest.raises(ValueError):
        PeriodSpec("rolling_months", months=0)


def test_anniversary_window_counts_from_the_anchor_month() -> None:
    spec = PeriodSpec("anniversary")
    anchor = mi(2024, 5)
    assert spec.bounds(mi(2026, 3), anchor) == (mi(2025, 5), mi(2026, 4))
    assert spec.bounds(mi(2026, 5), anchor) == (mi(2026, 5), mi(2027, 4))
    assert spec.ends_at(mi(2026, 4), anchor) and not spec.ends_at(mi(2026, 5), anchor)
    # Without an anchor the window starts with the month itself.
    assert spec.bounds(mi(2026, 3)) == (mi(2026, 3), mi(2027, 2))


def test_unknown_period_kind() -> None:
    with pytest.raises(ValueError, match=r"period\.kind"):
        PeriodSpec("fortnight")


# ---------------------------------------------------------------------------------------------
# Ladders as data


def test_round_trip_through_the_document_form() -> None:
    lad = ladder(direct_placement={"single_order_amount": 5_000_000, "level": "gold"},
                 rollup=True, primary=True)
    again = domain.from_dict(lad.to_dict())
    assert again == lad
    assert lad.level("black-diamond").earn_multiplier == Decimal(2)
    assert lad.level("gold").earn_multiplier == Decimal(1)


@pytest.mark.parametrize(("change", "message"), [
    ({"levels": []}, "levels must be a non-empty list"),
    ({"metric": "Spend!"}, "metric"),
    ({"period": {"kind": "weekly"}}, "period.kind"),
    ({"period": {"kind": "rolling_months", "months": 0}}, "period.months"),
    ({"downgrade": {"grace": "two_steps"}}, "downgrade.grace"),
    ({"levels": [{"code": "a", "threshold": 10}, {"code": "b", "threshold": 10}]},
     r"levels\[1\].threshold must be greater than levels\[0\].threshold"),
    ({"levels": [{"code": "a", "threshold": 1}, {"code": "a", "threshold": 2}]},
     r"levels\[1\].code 'a' is used twice"),
    ({"levels": [{"code": "a", "threshold": -1}]}, r"levels\[0\].threshold must be at least 0"),
    ({"levels": [{"code": "a", "threshold": 1.5}]}, r"levels\[0\].threshold must be an integer"),
    ({"levels": [{"code": "a", "threshold": 1, "benefits": {"earn_multiplier": "x"}}]},
     "earn_multiplier"),
    ({"direct_placement": {"single_order_amount": 10, "level": "nope"}},
     r"direct_placement\[0\].level"),
    ({"surprise": 1}, "surprise is not a known field"),
    ({"rollup": "yes"}, "rollup must be true or false"),
])
def test_invalid_ladders_name_the_path(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ladder(**change)


# ---------------------------------------------------------------------------------------------
# Qualification


@pytest.mark.parametrize(("cents", "expected"), [
    (0, None),
    (2_499_999, None),
    (2_500_000, "titanium"),
    (4_999_999, "titanium"),
    (5_000_000, "gold"),
    (7_500_000, "platinum"),
    (12_499_999, "diamond"),
    (12_500_000, "black-diamond"),
    (99_000_000, "black-diamond"),
])
def test_skinceuticals_thresholds_in_cents(cents: int, expected: str | None) -> None:
    assert domain.qualify(ladder(), cents) == expected


def test_second_metric_minimum() -> None:
    uber = domain.from_dict({
        "code": "momentum", "metric": "points_earned", "period": {"kind": "calendar_month"},
        "levels": [
            {"code": "bronze", "threshold": 0},
            {"code": "silver", "threshold": 600, "requires": {"rating": 480}},
            {"code": "gold", "threshold": 1200, "requires": {"rating": 485}},
        ],
    })
    assert domain.qualify(uber, 1500, {"rating": 490}) == "gold"
    assert domain.qualify(uber, 1500, {"rating": 482}) == "silver"
    assert domain.qualify(uber, 1500, {}) == "bronze"
    assert uber.required_metrics == ("rating",)
    assert uber.metrics == ("points_earned", "rating")


def test_upgrade_at_once_downgrade_only_at_period_end() -> None:
    lad = ladder(downgrade={"grace": "none"})
    assert domain.decide(lad, "titanium", "diamond", period_end=False) == "diamond"
    assert domain.decide(lad, "diamond", "titanium", period_end=False) == "diamond"
    assert domain.decide(lad, "diamond", "titanium", period_end=True) == "titanium"
    assert domain.decide(lad, "diamond", None, period_end=True) is None


def test_one_step_grace() -> None:
    lad = ladder()
    assert domain.decide(lad, "diamond", "titanium", period_end=True) == "platinum"
    assert domain.decide(lad, "titanium", None, period_end=True) is None
    assert domain.decide(lad, "diamond", "platinum", period_end=True) == "platinum"


def test_lock_holds_the_level_both_ways() -> None:
    lad = ladder()
    assert domain.decide(lad, "gold", "diamond", period_end=False, locked=True) == "gold"
    assert domain.decide(lad, "gold", None, period_end=True, locked=True) == "gold"


def test_direct_placement_by_one_large_order() -> None:
    lad = ladder(direct_placement=[{"single_order_amount": 3_000_000, "level": "gold"},
                                   {"single_order_amount": 9_000_000, "level": "diamond"}])
    assert domain.direct_placement_rank(lad, None) == -1
    assert domain.direct_placement_rank(lad, 2_999_999) == -1
    assert lad.code_of(domain.direct_placement_rank(lad, 3_000_000)) == "gold"
    assert lad.code_of(domain.direct_placement_rank(lad, 9_500_000)) == "diamond"
    # Without a level the top level is meant.
    top = ladder(direct_placement={"single_order_amount": 1})
    assert top.direct_placement[0].level == "black-diamond"


def test_progress_to_the_next_tier() -> None:
    lad = ladder()
    p = domain.next_tier_progress(lad, None, 1_000_000)
    assert (p.next_level, p.needed, p.ratio) == ("titanium", 1_500_000, Decimal("0.4"))
    p = domain.next_tier_progress(lad, "titanium", 3_750_000)
    assert (p.next_level, p.needed, p.ratio) == ("gold", 1_250_000, Decimal("0.75"))
    p = domain.next_tier_progress(lad, "black-diamond", 1)
    assert (p.next_level, p.needed, p.ratio) == (None, 0, Decimal(1))
    # A placed member above its value still sees what the next level needs.
    p = domain.next_tier_progress(lad, "gold", 0)
    assert (p.next_level, p.needed) == ("platinum", 7_500_000)


def test_gem_free_entry_level() -> None:
    gem = domain.from_dict({
        "code": "bite-club", "metric": "points_earned",
        "levels": [{"code": "enthusiast", "threshold": 0}, {"code": "advocate", "threshold": 500},
                   {"code": "vip", "threshold": 1000}],
    })
    assert [domain.qualify(gem, v) for v in (0, 499, 500, 999, 1000)] == [
        "enthusiast", "enthusiast", "advocate", "advocate", "vip"]


def test_metric_natures() -> None:
    assert domain.is_accumulated("spend") and domain.is_accumulated("points_earned")
    assert not domain.is_accumulated("combined_balance")
    assert domain.certification_metric("cvap") == "certification:cvap"
    assert domain.valid_metric("certification:cvap") and not domain.valid_metric("Bad Name")


def test_audience_limits_a_ladder_to_some_accounts() -> None:
    lad = ladder(audience={"segment": ["distributor", "wholesaler"], "country": "US"})
    assert lad.admits({"segment": "distributor", "country": "US"})
    assert not lad.admits({"segment": "retailer", "country": "US"})
    assert not lad.admits({"segment": "distributor"})
    assert not lad.admits(None)
    assert ladder().admits(None)
    assert domain.from_dict(lad.to_dict()) == lad
    with pytest.raises(ValueError, match=r"audience\.segment"):
        ladder(audience={"segment": []})
