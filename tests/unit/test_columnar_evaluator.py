"""The columnar evaluator's own paths beyond the property test in
``test_rules_equivalence``: usage and budgets carried in from earlier events, frames not in
event order, ``only``, and the integer period keys its limits group by."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from allegiance.rules.columnar_eval import evaluate_frame
from allegiance.rules.columnar_limits import period_group_expr
from allegiance.rules.domain import PERIODS, Rule, parse_rule
from allegiance.rules.evaluate import EventInput
from allegiance.rules.frames import lines_frame
from allegiance.rules.periods import period_key
from tests.unit.test_rules_equivalence import (
    LISTS,
    TYPES,
    TZ,
    UNITS,
    _sequential,
    random_rule,
    random_stream,
)

Usage = dict[tuple[str, str, int, str], tuple[int, int]]


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return sorted(
        (tuple(r) for r in frame.select(
            "_event", "_line", "rule", "effect", "type", "unit", "amount").iter_rows()),
        key=lambda t: tuple((x is None, x) for x in t))


def _program(rnd: random.Random) -> list[Rule]:
    docs = [random_rule(rnd, i) for i in range(rnd.randint(2, 5))]
    return [parse_rule(d, f"rules[{i}]", types=TYPES, lists=LISTS, units=UNITS)
            for i, d in enumerate(docs)]


@pytest.mark.parametrize("seed", range(60))
def test_usage_and_budgets_from_earlier_events_are_honoured(seed: int) -> None:
    """The second half of a stream, evaluated columnar with the usage and budgets the first
    half left, gives what the per-event evaluator gives carrying them along."""
    rnd = random.Random(seed)
    rules = _program(rnd)
    # Limits and budgets that earlier events can exhaust.
    stream = random_stream(rnd) + random_stream(rnd)
    stream = sorted(stream, key=lambda pair: pair[1].at)
    half = len(stream) // 2
    usage: Usage = {}
    budget = {r.code: r.budget for r in rules if r.budget is not None}
    _sequential(rules, stream[:half], usage, budget)
    before_usage, before_budget = dict(usage), dict(budget)
    expected = _sequential(rules, stream[half:], usage, budget)
    got = evaluate_frame(rules, lines_frame(stream[half:], TYPES), time_zone=TZ,
                         usage=before_usage, budget_left=before_budget)
    assert _rows(got) == expected


def test_a_limit_already_used_up_gives_nothing_more() -> None:
    rule = parse_rule({"code": "cap", "effects": [
        {"type": "fixed", "unit": "points", "points": 30}],
        "limits": [{"period": "month", "max": 50}]}, "rules[0]", types=TYPES, lists=LISTS,
        units=UNITS)
    at = datetime(2026, 3, 10, tzinfo=UTC)
    stream = [("m1", EventInput("purchase", None, at + timedelta(days=i), {})) for i in range(3)]
    frame = lines_frame(stream, TYPES)
    fresh = evaluate_frame([rule], frame, time_zone=TZ)
    assert sorted(fresh["amount"].to_list()) == [20, 30]
    used = {("m1", "cap", 0, "2026-03"): (40, 2)}
    assert evaluate_frame([rule], frame, time_zone=TZ, usage=used)["amount"].to_list() == [10]
    other = {("m2", "cap", 0, "2026-03"): (50, 2), ("m1", "cap", 0, "2026-02"): (50, 2)}
    assert sorted(evaluate_frame([rule], frame, time_zone=TZ, usage=other)["amount"]
                  .to_list()) == [20, 30]


@pytest.mark.parametrize("seed", range(20))
def test_rows_in_any_order_give_the_same_awards(seed: int) -> None:
    rnd = random.Random(1000 + seed)
    rules = _program(rnd)
    frame = lines_frame(random_stream(rnd), TYPES)
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    assert _rows(evaluate_frame(rules, shuffled, time_zone=TZ)) == \
        _rows(evaluate_frame(rules, frame, time_zone=TZ))


@pytest.mark.parametrize("seed", range(20))
def test_only_keeps_the_chosen_rules_awards_and_nothing_else_changes(seed: int) -> None:
    rnd = random.Random(2000 + seed)
    rules = _program(rnd)
    frame = lines_frame(random_stream(rnd), TYPES)
    whole = _rows(evaluate_frame(rules, frame, time_zone=TZ))
    chosen = {r.code for r in rules[::2]}
    part = _rows(evaluate_frame(rules, frame, time_zone=TZ, only=chosen))
    assert part == [row for row in whole if row[2] in chosen]
    assert evaluate_frame(rules, frame, only=[]).height == 0


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("zone", ["UTC", "Europe/Madrid", "America/New_York",
                                  "Pacific/Auckland"])
def test_integer_period_keys_group_exactly_as_the_period_strings(period: str,
                                                                 zone: str) -> None:
    rnd = random.Random(f"{period}{zone}")
    start = datetime(2025, 12, 20, tzinfo=UTC)
    # Around year, ISO week and DST boundaries, and a spread over two years.
    instants = [start + timedelta(hours=h) for h in range(0, 24 * 40, 7)] + \
        [start + timedelta(minutes=rnd.randrange(0, 2 * 365 * 24 * 60)) for _ in range(500)]
    frame = pl.DataFrame({"_at": instants}, schema={"_at": pl.Datetime("us", "UTC")})
    keys = frame.with_columns(period_group_expr(period, zone).alias("k"))["k"].to_list()
    strings = [period_key(period, at, zone) for at in instants]
    pairs = set(zip(keys, strings, strict=True))
    assert len({k for k, _ in pairs}) == len(pairs) == len({s for _, s in pairs})


@pytest.mark.parametrize("seed", range(20))
def test_a_member_key_column_groups_limits_as_the_member_strings(seed: int) -> None:
    """``_member_key`` (the simulation's member codes) replaces coding ``_member`` in the
    limits; any integer that is equal exactly when the member is gives the same awards."""
    rnd = random.Random(3000 + seed)
    rules = _program(rnd)
    stream = random_stream(rnd)
    frame = lines_frame(stream, TYPES)
    codes = {m: rnd.randrange(1 << 30) for m in {m for m, _ in stream}}
    while len(set(codes.values())) < len(codes):
        codes = {m: rnd.randrange(1 << 30) for m in codes}
    keyed = frame.with_columns(pl.col("_member").replace_strict(codes, return_dtype=pl.Int64)
                               .alias("_member_key"))
    assert _rows(evaluate_frame(rules, keyed, time_zone=TZ)) == \
        _rows(evaluate_frame(rules, frame, time_zone=TZ))
    # One key for everybody merges their limits: the key is what limits group by.
    merged = frame.with_columns(pl.lit(7, dtype=pl.Int64).alias("_member_key"))
    limited = [r for r in rules if r.limits]
    if limited and len(codes) > 1:
        got = _rows(evaluate_frame(limited, merged, time_zone=TZ))
        assert sum(int(str(r[-1])) for r in got) <= \
            sum(int(str(r[-1])) for r in _rows(evaluate_frame(limited, frame, time_zone=TZ)))
