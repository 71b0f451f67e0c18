"""Property: a challenge's progress kept incrementally — purchases arriving in any order over
months, in program time zones with DST and half-hour offsets, each counted as it comes, and
returns (full or by line) taking back what their purchase counted — equals the progress
recomputed from history (what is left of every purchase), and the live completions equal
what those totals allow. This is the bookkeeping of ``engagement.on_event`` /
``engagement.on_return`` over the pure functions they use."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from allegiance.engagement import domain

ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Australia/Adelaide", "Europe/London")
START = datetime(2026, 1, 1, tzinfo=UTC)
LISTS = {"genuine": frozenset({"A", "B"})}

line_st = st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(1, 4), st.integers(1, 500))
purchase_st = st.tuples(st.integers(0, 60 * 24 * 200),  # minutes after START
                        st.lists(line_st, min_size=1, max_size=3))
# a step: ("buy", i) brings purchase i in; ("return", i, line, qty|None) returns from it
step_st = st.one_of(
    st.tuples(st.just("return"), st.integers(0, 30), st.integers(0, 2),
              st.one_of(st.none(), st.integers(1, 4))),
    st.tuples(st.just("buy"), st.integers(0, 30)))
spec_st = st.builds(
    domain.ChallengeSpec, trigger=st.just("purchase"),
    metric=st.sampled_from(domain.METRICS), target=st.integers(1, 900),
    period=st.sampled_from(("day", "week", "month", "quarter", "all")),
    streak=st.integers(1, 3), product_list=st.sampled_from([None, "genuine"]))


def occurrence(index: int, minutes: int, lines: list[list[int | str]]) -> domain.Occurrence:
    facts = tuple(domain.LineFact(str(sku), None, int(q), int(a)) for sku, q, a in lines)
    amount = sum(f.amount for f in facts)
    return domain.Occurrence(
        event_id=f"e{index}", program_id="p", account_id="a", kind="purchase",
        activity_type=None, occurred_at=START + timedelta(minutes=minutes), amount=amount,
        quantity=sum(f.quantity for f in facts), lines=facts, product_lists=LISTS,
        returned=all(f.quantity == 0 and f.amount == 0 for f in facts))


@settings(max_examples=300, deadline=None)
@given(purchases=st.lists(purchase_st, min_size=1, max_size=12),
       steps=st.lists(step_st, max_size=40), spec=spec_st, zone=st.sampled_from(ZONES),
       cap=st.one_of(st.none(), st.integers(1, 4)))
def test_incremental_progress_equals_recount(
        purchases: list[tuple[int, list[tuple[str, int, int]]]],
        steps: list[tuple], spec: domain.ChallengeSpec, zone: str, cap: int | None) -> None:
    spec = dataclasses.replace(spec, streak=1 if spec.period == "all" else spec.streak)
    left = {i: [[sku, q, a] for sku, q, a in lines] for i, (_, lines) in enumerate(purchases)}
    arrived: set[int] = set()
    counted: dict[int, tuple[int, int]] = {}  # event -> (period, value), as stored
    totals: dict[int, int] = {}
    live = paid = undone = 0

    def settle() -> None:
        nonlocal live, paid, undone
        add, extra = domain.settle(live, totals, spec.target, spec.streak, cap)
        live += len(add) - extra
        paid += len(add)
        undone += extra
        assert extra == 0 or not add

    for step in steps:
        i = step[1] % len(purchases)
        if step[0] == "buy":
            if i in arrived:
                continue  # a replay: never counted twice
            arrived.add(i)
            event = occurrence(i, purchases[i][0], left[i])
            value = domain.contribution(spec, event)
            if value > 0:
                index = domain.period_index(spec.period, event.occurred_at, zone)
                counted[i] = (index, value)
                totals[index] = totals.get(index, 0) + value
                settle()
            continue
        if i not in arrived:
            continue  # only processed purchases can be returned
        line = left[i][step[2] % len(left[i])]
        if line[1] == 0 and line[2] == 0:
            continue  # nothing left of that line
        quantity = line[1] if step[3] is None else min(step[3], line[1])
        amount = line[2] if quantity == line[1] else line[2] * quantity // line[1]
        line[1] -= quantity
        line[2] -= amount
        if i in counted:
            index, value = counted[i]
            now = domain.contribution(spec, occurrence(i, purchases[i][0], left[i]))
            if now < value:
                totals[index] -= value - now
                counted[i] = (index, now)
                settle()
    expected: dict[int, int] = {}
    for i in arrived:
        event = occurrence(i, purchases[i][0], left[i])
        value = domain.contribution(spec, event)
        if value:
            index = domain.period_index(spec.period, event.occurred_at, zone)
            expected[index] = expected.get(index, 0) + value
    assert {k: v for k, v in totals.items() if v} == expected
    allowed = len(domain.completions(expected, spec.target, spec.streak))
    assert live == (allowed if cap is None else min(allowed, cap))
    assert paid - undone == live
