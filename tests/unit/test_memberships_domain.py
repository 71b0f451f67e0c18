"""Property tests of the pure membership logic: month arithmetic, the life of a subscription
over time, live_until agreeing with the status, and perk answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from allegiance.memberships import domain

ORDER = {"trial": 0, "active": 1, "grace": 2, "lapsed": 3, "cancelled": 3}
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                        timezones=st.just(UTC))


def test_months_are_clamped_and_anchored() -> None:
    jan31 = datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert domain.add_months(jan31, 1) == datetime(2026, 2, 28, 10, tzinfo=UTC)
    assert domain.add_months(datetime(2024, 2, 29, tzinfo=UTC), 12) == datetime(
        2025, 2, 28, tzinfo=UTC)
    ends = [jan31]
    for _ in range(4):
        ends.append(domain.next_period_end("monthly", ends[-1], 31) or jan31)
    assert [e.day for e in ends] == [31, 28, 31, 30, 31]
    assert domain.next_period_end("one_time", jan31) is None


@st.composite
def subscriptions(draw: st.DrawFn) -> tuple[domain.Terms, domain.Dates]:
    started = draw(instants)
    terms = domain.Terms(draw(st.sampled_from(domain.BILLINGS)), draw(st.integers(0, 40)),
                         draw(st.integers(0, 20)))
    trial_end = started + timedelta(days=terms.trial_days) if terms.trial_days else None
    paid = draw(st.booleans())
    paid_until = None
    if paid and terms.billing != "one_time":
        paid_until = started + timedelta(days=draw(st.integers(1, 800)))
    cancel_at = draw(st.none() | st.just(started + timedelta(days=draw(st.integers(0, 900)))))
    return terms, domain.Dates(started, trial_end, paid_until, paid, started.day, cancel_at,
                               cancel_at)


@settings(max_examples=300, deadline=None)
@given(sub=subscriptions(), steps=st.lists(st.integers(0, 400), min_size=1, max_size=8))
def test_a_subscription_left_alone_only_moves_forward(
        sub: tuple[domain.Terms, domain.Dates], steps: list[int]) -> None:
    terms, dates = sub
    now = dates.started_at
    seen = domain.state_at(terms, dates, now)
    for days in sorted(steps):
        later = domain.state_at(terms, dates, dates.started_at + timedelta(days=days))
        assert ORDER[later.status] >= ORDER[seen.status]
        if seen.status in ("lapsed", "cancelled"):
            assert later.status == seen.status
        seen = later


@settings(max_examples=300, deadline=None)
@given(sub=subscriptions(), offset=st.integers(-5, 900))
def test_live_until_agrees_with_the_status(sub: tuple[domain.Terms, domain.Dates],
                                           offset: int) -> None:
    terms, dates = sub
    now = dates.started_at + timedelta(days=offset, hours=3)
    if now < dates.started_at:
        return
    until = domain.live_until(terms, dates)
    live = domain.state_at(terms, dates, now).status in domain.LIVE
    assert live == (until is None or now < until)


def test_renewal_starts_where_the_paid_period_ends() -> None:
    start = datetime(2026, 1, 31, tzinfo=UTC)
    terms = domain.Terms("monthly", 0, 5)
    paid = domain.Dates(start, None, datetime(2026, 2, 28, tzinfo=UTC), True, 31, None, None)
    begin, end = domain.renewal_period(terms, paid, datetime(2026, 3, 2, tzinfo=UTC))
    assert (begin, end) == (datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    late = datetime(2026, 3, 10, tzinfo=UTC)
    try:
        domain.renewal_period(terms, paid, late)
    except ValueError as exc:
        assert "lapsed" in str(exc)
    else:
        raise AssertionError("a lapsed subscription cannot be renewed")


def test_perk_answers() -> None:
    perk = domain.PerkRule("support", frozenset({"plus", "pro"}), frozenset({"gold"}))
    soon, later = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 9, 1, tzinfo=UTC)
    assert domain.perk_answer(perk, [("plus", soon), ("pro", later)], []) == domain.PerkAnswer(
        "support", True, "plan pro", later)
    assert domain.perk_answer(perk, [("plus", soon), ("pro", None)], []).until is None
    assert domain.perk_answer(perk, [], ["gold"]).reason == "tier level gold"
    no = domain.perk_answer(perk, [("basic", None)], ["silver"])
    assert not no.allowed and no.reason == "needs plan plus or plan pro or tier level gold"
