"""Property tests of the pure engagement logic: periods in time zones, streaks and
completions (incremental = recomputed from history, whatever the arrival order), ranking, NPS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allegiance.engagement import domain

ZONES = ["UTC", "America/New_York", "Europe/Madrid", "Asia/Kolkata", "Australia/Sydney",
         "Pacific/Auckland", "Asia/Kathmandu", "America/St_Johns"]
PERIODS = ["day", "week", "month", "quarter", "year"]
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1),
                        timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(at=instants, zone=st.sampled_from(ZONES), period=st.sampled_from(PERIODS))
def test_a_period_holds_its_instants_and_periods_tile_time(at: datetime, zone: str,
                                                          period: str) -> None:
    index = domain.period_index(period, at, zone)
    bounds = domain.period_bounds(period, index, zone)
    after = domain.period_bounds(period, index + 1, zone)
    assert bounds is not None and after is not None
    assert bounds[0] <= at < bounds[1]
    assert bounds[1] == after[0]
    assert domain.period_index(period, bounds[0], zone) == index
    assert domain.period_index(period, bounds[1] - timedelta(microseconds=1), zone) == index
    assert domain.period_index(period, bounds[1], zone) == index + 1


def test_labels() -> None:
    at = datetime(2026, 1, 1, 3, tzinfo=UTC)  # still 31 Dec 2025 in New York
    ny = "America/New_York"
    assert [domain.period_label(p, domain.period_index(p, at, ny)) for p in PERIODS] == [
        "2025-12-31", "2026-W01", "2025-12", "2025-Q4", "2025"]
    assert domain.period_label("all", domain.period_index("all", at, ny)) == "all"


def brute_completions(totals: dict[int, int], target: int, streak: int) -> list[int]:
    """The reference: walk every period in order, count met periods in a row, complete and
    start again at ``streak``, start again at 0 on a missed period."""
    if not totals:
        return []
    out, run = [], 0
    for index in range(min(totals), max(totals) + 1):
        if totals.get(index, 0) >= target:
            run += 1
            if run == streak:
                out.append(index)
                run = 0
        else:
            run = 0
    return out


totals_st = st.dictionaries(st.integers(0, 60), st.integers(0, 6), max_size=40)


@settings(max_examples=400, deadline=None)
@given(totals=totals_st, target=st.integers(1, 5), streak=st.integers(1, 6))
def test_completions_match_the_reference_walk(totals: dict[int, int], target: int,
                                              streak: int) -> None:
    assert domain.completions(totals, target, streak) == brute_completions(totals, target,
                                                                           streak)


@settings(max_examples=400, deadline=None)
@given(totals=totals_st, target=st.integers(1, 5), streak=st.integers(1, 6),
       now=st.integers(0, 62))
def test_current_streak_matches_the_reference(totals: dict[int, int], target: int, streak: int,
                                              now: int) -> None:
    past = {i: v for i, v in totals.items() if i <= now}
    run = 0
    alive = False
    for index in range(min(past, default=0), now + 1):
        if past.get(index, 0) >= target:
            run = (run + 1) % streak
            alive = True
        elif index < now:
            run, alive = 0, False
    expected = run if alive else 0
    assert domain.current_streak(past, target, streak, now) == expected


events_st = st.lists(st.tuples(instants, st.integers(1, 3)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(events=events_st, zone=st.sampled_from(ZONES), period=st.sampled_from(["day", "week"]),
       target=st.integers(1, 4), streak=st.integers(1, 4), cap=st.none() | st.integers(1, 5),
       order=st.randoms(use_true_random=False))
def test_incremental_progress_equals_progress_recomputed_from_history(
        events: list[tuple[datetime, int]], zone: str, period: str, target: int, streak: int,
        cap: int | None, order: object) -> None:
    """Whatever order events arrive in, counting them one by one (as the earning path does:
    add to the period total, complete up to what the totals allow) ends where a recount of the
    whole history ends, and the completions never go down on the way."""
    # events close together so that streaks happen
    base = events[0][0]
    spaced = [(base + timedelta(hours=13 * k), v) for k, (_, v) in enumerate(events)]
    arrival = list(spaced)
    order.shuffle(arrival)  # type: ignore[attr-defined]
    totals: dict[int, int] = {}
    done = 0
    for at, value in arrival:
        index = domain.period_index(period, at, zone)
        totals[index] = totals.get(index, 0) + value
        ends = domain.completions(totals, target, streak)
        allowed = len(ends) if cap is None else min(len(ends), cap)
        assert allowed >= done
        done = max(done, allowed)
    history: dict[int, int] = {}
    for at, value in spaced:
        index = domain.period_index(period, at, zone)
        history[index] = history.get(index, 0) + value
    assert totals == history
    recount = len(domain.completions(history, target, streak))
    assert done == (recount if cap is None else min(recount, cap))


def test_a_run_of_eight_months_completes_four_in_a_row_twice() -> None:
    months = {i: 4 for i in range(8)}
    assert domain.completions(months, 4, 4) == [3, 7]
    months[2] = 3  # one short month breaks it
    assert domain.completions(months, 4, 4) == [6]


def spec(**kw: object) -> domain.ChallengeSpec:
    values: dict[str, object] = {"trigger": "purchase", "metric": "amount", "target": 1,
                                 "period": "all"}
    values.update(kw)
    return domain.ChallengeSpec(**values)  # type: ignore[arg-type]


def test_contribution_filters_and_metrics() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    event = domain.Occurrence(
        event_id="e", program_id="p", account_id="a", kind="purchase", activity_type=None,
        occurred_at=at, amount=700, quantity=5,
        lines=(domain.LineFact("X1", "seeds", 2, 300), domain.LineFact("Y", "tools", 3, 400)),
        product_lists={"xs": frozenset({"X1"})})
    assert domain.contribution(spec(), event) == 700
    assert domain.contribution(spec(metric="quantity"), event) == 5
    assert domain.contribution(spec(metric="count"), event) == 1
    assert domain.contribution(spec(product_list="xs"), event) == 300
    assert domain.contribution(spec(category="tools", metric="quantity"), event) == 3
    assert domain.contribution(spec(product_list="xs", category="tools"), event) == 0
    assert domain.contribution(spec(trigger="activity"), event) == 0
    assert domain.contribution(spec(starts_at=at + timedelta(seconds=1)), event) == 0
    assert domain.contribution(spec(ends_at=at), event) == 0
    activity = domain.Occurrence("e", "p", "a", "activity", "survey", at, 0, 0)
    assert domain.contribution(spec(trigger="activity:survey", metric="count"), activity) == 1
    assert domain.contribution(spec(trigger="activity", metric="count"), activity) == 1
    assert domain.contribution(spec(trigger="activity:other", metric="count"), activity) == 0


@settings(max_examples=300, deadline=None)
@given(scores=st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.integers(0, 5)),
       method=st.sampled_from(domain.RANKINGS))
def test_ranking_ties(scores: dict[str, int], method: str) -> None:
    ranked = domain.rank(list(scores.items()), method)
    assert [w for w, _, _ in ranked] == sorted(scores, key=lambda w: (-scores[w], w))
    for _, score, rank in ranked:
        better = [s for s in scores.values() if s > score]
        expected = 1 + (len(better) if method == "competition" else len(set(better)))
        assert rank == expected


def test_ranking_examples() -> None:
    scores = [("a", 5), ("b", 5), ("c", 3), ("d", 9)]
    assert [r for _, _, r in domain.rank(scores)] == [1, 2, 2, 4]
    assert [r for _, _, r in domain.rank(scores, "dense")] == [1, 2, 2, 3]
    with pytest.raises(ValueError):
        domain.rank(scores, "olympic")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10), max_size=60))
def test_nps(scores: list[int]) -> None:
    result = domain.nps(scores)
    assert result.responses == len(scores)
    if not scores:
        assert result.score is None
        return
    exact = 100 * (sum(s >= 9 for s in scores) - sum(s <= 6 for s in scores)) / len(scores)
    assert result.score is not None and -100 <= result.score <= 100
    assert abs(result.score - exact) <= 0.5


def test_answers_are_checked() -> None:
    questions = [{"code": "nps", "kind": "nps"}, {"code": "c", "kind": "choice",
                                                  "options": ["a", "b"]},
                 {"code": "s", "kind": "scale", "min": 1, "max": 5, "required": False}]
    assert domain.check_answers(questions, {"nps": 10, "c": "a"}) is None
    assert domain.check_answers(questions, {"nps": 11, "c": "a"}) == (
        "answers.nps", "must be a whole number from 0 to 10")
    assert domain.check_answers(questions, {"nps": 1})[0] == "answers.c"  # type: ignore[index]
    assert domain.check_answers(questions, {"nps": 1, "c": "z"})[0] == "answers.c"  # type: ignore[index]
    assert domain.check_answers(questions, {"nps": 1, "c": "a", "s": 6})[0] == "answers.s"  # type: ignore[index]
    assert domain.check_answers(questions, {"nps": 1, "c": "a", "x": 1})[0] == "answers.x"  # type: ignore[index]
