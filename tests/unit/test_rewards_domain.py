"""Pure rules of the rewards catalogue."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from allegiance.rewards import domain

NOW = datetime(2026, 5, 17, 15, 30, tzinfo=UTC)


def offer(**kw: object) -> domain.Offer:
    base: dict[str, object] = dict(status="active", visible_from=None, visible_to=None,
                                   available_from=None, available_to=None,
                                   eligible_regions=[], eligible_tiers=[])
    base.update(kw)
    return domain.Offer(**base)  # type: ignore[arg-type]


def test_eligibility_reports_the_first_failing_reason() -> None:
    assert domain.ineligibility(offer(), NOW, None, set()) is None
    assert domain.ineligibility(offer(status="retired"), NOW, "US", set())[0] == "reward_retired"
    later = datetime(2026, 6, 1, tzinfo=UTC)
    assert domain.ineligibility(offer(available_from=later), NOW, "US", set())[0] == (
        "reward_unavailable")
    us_only = offer(eligible_regions=["US"])
    assert domain.ineligibility(us_only, NOW, "us", set()) is None
    assert domain.ineligibility(us_only, NOW, "DE", set())[0] == "region_not_eligible"
    assert domain.ineligibility(us_only, NOW, None, set())[0] == "region_not_eligible"
    # a country admits its subdivisions, as program enrolment does; a subdivision only itself
    assert domain.ineligibility(us_only, NOW, "US-NY", set()) is None
    assert domain.ineligibility(us_only, NOW, "DE-BE", set())[0] == "region_not_eligible"
    california = offer(eligible_regions=["US-CA"])
    assert domain.ineligibility(california, NOW, "us-ca", set()) is None
    for region in ("US-NY", "US"):
        assert domain.ineligibility(california, NOW, region, set())[0] == "region_not_eligible"
    gold = offer(eligible_tiers=["gold", "platinum"])
    assert domain.ineligibility(gold, NOW, None, {"silver"})[0] == "tier_not_eligible"
    assert domain.ineligibility(gold, NOW, None, {"gold"}) is None
    retail = offer(eligible_segments=["retailer"])
    assert domain.ineligibility(retail, NOW, None, set(), "retailer") is None
    assert domain.ineligibility(retail, NOW, None, set(), "installer")[0] == (
        "segment_not_eligible")
    assert domain.ineligibility(retail, NOW, None, set())[0] == "segment_not_eligible"
    # region is checked before tier
    both = offer(eligible_regions=["US"], eligible_tiers=["gold"])
    assert domain.ineligibility(both, NOW, "DE", set())[0] == "region_not_eligible"


def test_visibility_window_is_separate_from_availability() -> None:
    future = datetime(2026, 6, 1, tzinfo=UTC)
    teaser = offer(available_from=future)  # shown now, redeemable later
    assert domain.is_visible(teaser, NOW)
    assert domain.ineligibility(teaser, NOW, None, set()) is not None
    hidden = offer(visible_to=NOW)  # end is exclusive
    assert not domain.is_visible(hidden, NOW)
    assert domain.ineligibility(hidden, NOW, None, set()) is None


def test_lifecycle_transitions() -> None:
    assert domain.may_move("requested", "approved")
    assert domain.may_move("requested", "rejected")
    assert domain.may_move("approved", "fulfilled")
    assert domain.may_move("approved", "cancelled")
    assert not domain.may_move("approved", "rejected")
    assert not domain.may_move("requested", "fulfilled")
    for final in ("fulfilled", "cancelled", "rejected"):
        assert not any(domain.may_move(final, s) for s in domain.STATUSES)


def test_period_start() -> None:
    assert domain.period_start(NOW, "day") == datetime(2026, 5, 17, tzinfo=UTC)
    assert domain.period_start(NOW, "month") == datetime(2026, 5, 1, tzinfo=UTC)
    assert domain.period_start(NOW, "year") == datetime(2026, 1, 1, tzinfo=UTC)
    assert domain.period_start(NOW, "all") is None
    with pytest.raises(ValueError):
        domain.period_start(NOW, "week")


def test_coupon_codes_carry_a_check_character() -> None:
    codes = {domain.new_coupon_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 11 and domain.code_well_formed(code)
        assert domain.code_well_formed(code.lower()[:4] + "-" + code[4:])
    code = next(iter(codes))
    for i in range(len(code)):  # every single substitution is caught
        for ch in domain.ALPHABET:
            if ch != code[i]:
                assert not domain.code_well_formed(code[:i] + ch + code[i + 1:])
    for i in range(len(code) - 1):  # every swap of distinct neighbours is caught
        if code[i] != code[i + 1]:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2:]
            assert not domain.code_well_formed(swapped)
    assert not domain.code_well_formed("0O1IL")


def test_shipping_moves_forward_and_returned_is_the_end() -> None:
    assert domain.may_ship("", "shipped") and domain.may_ship("shipped", "delivered")
    assert domain.may_ship("shipped", "shipped")  # a new tracking number
    assert domain.may_ship("delivered", "returned")
    assert not domain.may_ship("delivered", "in_transit")
    assert not domain.may_ship("returned", "delivered")
    assert not domain.may_ship("shipped", "preparing")
    assert set(domain.SHIPPING_STATUSES) == {"preparing", "shipped", "in_transit", "delivered",
                                             "returned", "lost"}
