"""One rule definition, two evaluators: per event (Python) and columnar (Polars). For random
rules and random event streams they must give exactly the same awards."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allegiance.rules.columnar_eval import evaluate_frame
from allegiance.rules.domain import Rule, parse_rule
from allegiance.rules.evaluate import EventInput, evaluate
from allegiance.rules.frames import lines_frame
from allegiance.rules.periods import period_key

TYPES = {
    "event.amount": "int", "event.quantity": "int", "event.channel": "str",
    "event.attributes.upsell": "bool", "member.tier": "str", "member.region": "str",
    "line.sku": "str", "line.category": "str", "line.amount": "int", "line.quantity": "int",
    "line.labels": "list",
}
LISTS = {"genuine": frozenset({"A", "B"})}
UNITS = {"points": "points", "cash": "money"}
TZ = "Europe/Madrid"

CONDITIONS = [
    None, 'line.category == "tyres"', 'in_list(line.sku, "genuine")', "event.amount >= 5000",
    'member.tier in ["gold", "platinum"]', 'not member.tier == "gold"', "event.attributes.upsell",
    '"promo" in line.labels', 'line.quantity * 2 > 3 or event.channel != "web"',
    'line.amount // line.quantity >= 1000 and member.region == "ES"',
    'coalesce(member.tier, "none") == "none"', "event.quantity - 1 > 0",
]
ROUNDINGS = ["down", "up", "half_up", "half_even"]


def random_effect(rnd: random.Random) -> dict[str, Any]:
    kind = rnd.randrange(6)
    if kind == 0:
        return {"type": "points_per_amount", "unit": "points",
                "rate": rnd.choice(["0.01", "0.05", "1", "0.333"]), "rounding": rnd.choice(ROUNDINGS)}
    if kind == 1:
        return {"type": "points_per_item", "unit": "points", "points": rnd.randint(1, 50)}
    if kind == 2:
        return {"type": "fixed", "unit": "points", "points": rnd.randint(1, 500)}
    if kind == 3:
        return {"type": "percent", "unit": "cash", "percent": rnd.choice(["1", "2.5", "10"]),
                "rounding": rnd.choice(ROUNDINGS)}
    return {"type": "tier_credit", "metric": rnd.choice(["spend", "count"])}


def random_rule(rnd: random.Random, index: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "code": f"r{index}",
        "trigger": rnd.choice(["purchase"] * 4 + ["activity:course", "activity"]),
        "priority": rnd.randint(0, 3),
        "stacking": rnd.choice(["stack", "stack", "exclusive"]),
        "effects": [random_effect(rnd) for _ in range(rnd.randint(1, 2))],
        "limits": [],
    }
    for _ in range(rnd.choice([0, 0, 1, 2])):
        if rnd.random() < 0.6:
            doc["limits"].append({"period": rnd.choice(["day", "week", "month", "quarter",
                                                        "year", "lifetime"]),
                                  "max": rnd.randint(0, 3000)})
        else:
            doc["limits"].append({"period": rnd.choice(["month", "lifetime"]),
                                  "times": rnd.randint(1, 3)})
    if rnd.random() < 0.3:
        doc["effects"] = [{"type": "multiplier", "factor": rnd.choice(["2", "1.5", "0.5", "3"]),
                           "rounding": rnd.choice(ROUNDINGS)}]
        if rnd.random() < 0.5:
            doc["effects"][0]["applies_to"] = [f"r{rnd.randint(0, 4)}"]
        doc["limits"] = []
    condition = rnd.choice(CONDITIONS + [None] * 4)
    if condition is not None:
        doc["condition"] = condition
    if rnd.random() < 0.2:
        doc["budget"] = rnd.randint(1, 5000)
    if rnd.random() < 0.2:
        doc["valid_from"] = "2026-02-01T00:00:00+00:00"
    return doc


def _maybe(rnd: random.Random, value: Any) -> Any:
    return None if rnd.random() < 0.15 else value


def random_stream(rnd: random.Random) -> list[tuple[str, EventInput]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    minutes = 0
    for _ in range(rnd.randint(3, 30)):
        minutes += rnd.randint(0, 60 * 24 * 20)
        kind = rnd.choice(["purchase", "purchase", "purchase", "activity"])
        event_lines = []
        if kind == "purchase":
            for _ in range(rnd.randint(0, 4)):
                event_lines.append({
                    "line.sku": _maybe(rnd, rnd.choice(["A", "B", "C"])),
                    "line.category": _maybe(rnd, rnd.choice(["tyres", "oil"])),
                    "line.amount": _maybe(rnd, rnd.randint(0, 20000)),
                    "line.quantity": _maybe(rnd, rnd.randint(0, 5)),
                    "line.labels": _maybe(rnd, rnd.sample(["promo", "new"], rnd.randint(0, 2))),
                })
        fields = {
            "event.amount": sum((ln["line.amount"] or 0) for ln in event_lines)
            or _maybe(rnd, rnd.randint(0, 10000)),
            "event.quantity": sum((ln["line.quantity"] or 0) for ln in event_lines),
            "event.channel": _maybe(rnd, rnd.choice(["web", "store"])),
            "event.attributes.upsell": _maybe(rnd, rnd.random() < 0.5),
            "member.tier": _maybe(rnd, rnd.choice(["gold", "silver", "platinum"])),
            "member.region": _maybe(rnd, rnd.choice(["ES", "FR"])),
        }
        out.append((rnd.choice(["m1", "m2", "m3"]), EventInput(
            kind=kind, activity_type="course" if kind == "activity" else None,
            at=start + timedelta(minutes=minutes), fields=fields, lines=event_lines)))
    return out


def _sequential(rules: list[Rule], stream: list[tuple[str, EventInput]],
                usage: dict[tuple[str, str, int, str], tuple[int, int]] | None = None,
                budget: dict[str, int] | None = None) -> list[tuple]:
    """Per-event evaluation of ``stream``; ``usage`` and ``budget`` (fresh by default) are
    updated in place, so a stream can be evaluated in parts."""
    usage = {} if usage is None else usage
    if budget is None:
        budget = {r.code: r.budget for r in rules if r.budget is not None}
    out = []
    for index, (member, event) in enumerate(stream):
        mine = {(r, i, p): v for (m, r, i, p), v in usage.items() if m == member}
        result = evaluate(rules, event, period_key=lambda p, at: period_key(p, at, TZ),
                          usage=mine, budget_left=budget)
        for (rule, i, p), (amount, times) in result.usage.items():
            old = usage.get((member, rule, i, p), (0, 0))
            usage[(member, rule, i, p)] = (old[0] + amount, old[1] + times)
        for rule, used in result.budget_used.items():
            budget[rule] -= used
        for a in result.awards:
            out.append((index, a.line, a.rule, a.effect, a.type, a.unit, a.amount))
    return sorted(out, key=lambda t: tuple((x is None, x) for x in t))


@settings(max_examples=int(os.environ.get("ALLEGIANCE_RULES_EXAMPLES", "300")), deadline=None,
          derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_columnar_and_per_event_evaluators_agree(seed: int) -> None:
    """Each example is a seeded random program (1-5 rules) and a stream of 3-30 events."""
    rnd = random.Random(seed)
    docs = [random_rule(rnd, i) for i in range(rnd.randint(1, 5))]
    stream = random_stream(rnd)
    rules = [parse_rule(d, f"rules[{i}]", types=TYPES, lists=LISTS, units=UNITS)
             for i, d in enumerate(docs)]
    expected = _sequential(rules, stream)
    frame = evaluate_frame(rules, lines_frame(stream, TYPES), time_zone=TZ)
    got = sorted(
        (tuple(r) for r in frame.select(
            "_event", "_line", "rule", "effect", "type", "unit", "amount").iter_rows()),
        key=lambda t: tuple((x is None, x) for x in t))
    assert got == expected


def test_lenovo_like_bonus_and_caps_agree_on_a_known_case() -> None:
    rule = parse_rule({"code": "per-sale", "condition": 'line.category == "tyres"',
                       "effects": [{"type": "points_per_item", "unit": "points", "points": 10}],
                       "limits": [{"period": "month", "max": 25}]},
                      "rules[0]", types=TYPES, lists=LISTS, units=UNITS)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    stream = [("m1", EventInput("purchase", None, at + timedelta(days=i), {"event.amount": 1},
                                [{"line.category": "tyres", "line.quantity": 1}]))
              for i in range(4)]
    assert [t[-1] for t in _sequential([rule], stream)] == [10, 10, 5]
    frame = evaluate_frame([rule], lines_frame(stream, TYPES), time_zone=TZ)
    assert frame["amount"].to_list() == [10, 10, 5]
    assert isinstance(frame, pl.DataFrame)
