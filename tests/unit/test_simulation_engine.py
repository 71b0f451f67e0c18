"""The simulation evaluates rules shared by both definitions once: its awards must be exactly
those of evaluating each definition whole."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from allegiance import rules, simulation
from allegiance.simulation import engine

TYPES_EXTRA = {"event.attributes.score": "int"}


def program(extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "units": [{"code": "points", "kind": "points"},
                  {"code": "cash", "kind": "money", "currency": "EUR"}],
        "product_lists": {"genuine": ["S1", "S2"]},
        "activity_types": {"survey": {"attributes": {"score": "int"}}},
        "rules": [
            {"code": "base", "priority": 10, "effects": [
                {"type": "points_per_amount", "unit": "points", "rate": "0.01"}]},
            {"code": "genuine", "priority": 9, "condition": 'in_list(line.sku, "genuine")',
             "effects": [{"type": "points_per_item", "unit": "points", "points": 5}],
             "limits": [{"period": "month", "max": 40}]},
            {"code": "cash", "priority": 8, "condition": "event.amount >= 5000",
             "effects": [{"type": "percent", "unit": "cash", "percent": "1"}],
             "budget": 900},
            {"code": "web", "priority": 7, "condition": 'event.channel == "web"',
             "effects": [{"type": "fixed", "unit": "points", "points": 7}],
             "limits": [{"period": "week", "times": 1}]},
            {"code": "gold", "priority": 4, "condition": 'member.tier == "gold"',
             "effects": [{"type": "multiplier", "factor": "1.5", "applies_to": ["base"]}]},
            {"code": "only-s9", "priority": 20, "stacking": "exclusive",
             "condition": 'line.sku == "S9"',
             "effects": [{"type": "fixed", "unit": "points", "points": 1}]},
            {"code": "survey", "trigger": "activity:survey", "priority": 5,
             "effects": [{"type": "fixed", "unit": "points", "points": 20}],
             "limits": [{"period": "lifetime", "times": 2}]},
            {"code": "credit", "priority": 1,
             "effects": [{"type": "tier_credit", "metric": "spend"}]},
            *(extra or []),
        ],
    }


def frame(rng: random.Random, n: int) -> pl.DataFrame:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    at = start
    for _ in range(n):
        at += timedelta(hours=rng.randint(1, 40))
        member = f"m{rng.randint(0, 5)}"
        fields: dict[str, Any] = {"event.channel": rng.choice(["web", "store"]),
                                  "member.tier": rng.choice(["gold", None])}
        if rng.random() < 0.2:
            fields.update({"event.amount": 0, "event.attributes.score": rng.randint(0, 10)})
            out.append((member, rules.EventInput("activity", "survey", at, fields, [])))
            continue
        lines = [{"line.sku": rng.choice(["S1", "S2", "S3", "S9"]),
                  "line.quantity": rng.randint(1, 4), "line.amount": rng.randint(100, 6000)}
                 for _ in range(rng.randint(1, 3))]
        fields["event.amount"] = sum(line["line.amount"] for line in lines)
        out.append((member, rules.EventInput("purchase", None, at, fields, lines)))
    compiled = rules.compile_program(program())
    return rules.lines_frame(out, {**compiled.types, **TYPES_EXTRA})


def side(document: dict[str, Any]) -> simulation.Side:
    units = {"points": simulation.Unit("points", "points", Decimal("0.01")),
             "cash": simulation.Unit("cash", "money", Decimal("0.01"))}
    return simulation.Side("x", rules.compile_program(document), units, (), "UTC")


def key(awards: pl.DataFrame) -> list[tuple[Any, ...]]:
    rows = awards.select("_event", "_line", "rule", "effect", "amount").iter_rows()
    return sorted(rows, key=lambda t: tuple((x is None, x) for x in t))


def drafts() -> list[tuple[str, dict[str, Any]]]:
    out = []
    changed = program()
    changed["rules"][0]["effects"][0]["rate"] = "0.03"
    out.append(("base rate", changed))
    capped = program()
    capped["rules"][1]["limits"][0]["max"] = 15
    out.append(("cap", capped))
    out.append(("new rule", program([{"code": "new", "priority": 6, "condition":
                                      'event.channel == "store"', "effects": [
                                          {"type": "fixed", "unit": "points", "points": 3}]}])))
    multiplier = program()
    multiplier["rules"][4]["effects"][0]["factor"] = "2"
    out.append(("multiplier changed", multiplier))
    exclusive = copy.deepcopy(program())
    exclusive["rules"][5]["condition"] = 'line.sku == "S3"'
    out.append(("exclusive changed", exclusive))
    return out


@pytest.mark.parametrize("name,draft", drafts(), ids=[d[0] for d in drafts()])
def test_shared_rules_give_the_awards_of_whole_evaluations(name: str,
                                                           draft: dict[str, Any]) -> None:
    for seed in range(6):
        lines = frame(random.Random(seed), 60)
        base, new = side(program()), side(draft)
        got_base, got_draft = engine.evaluate_sides(base, new, lines)
        assert key(got_base) == key(rules.evaluate_frame(base.compiled.rules, lines))
        assert key(got_draft) == key(rules.evaluate_frame(new.compiled.rules, lines))


def test_split_rules() -> None:
    same = rules.compile_program(program())
    assert simulation.split_rules(same, same)[1:] == ([], [])
    changed = dict(drafts())
    shared, only_base, only_draft = simulation.split_rules(
        same, rules.compile_program(changed["base rate"]))
    assert only_base == ["base"] and only_draft == ["base"]
    assert "genuine" in shared and "gold" not in shared
    # a changed multiplier or exclusive rule: nothing is shared
    for name in ("multiplier changed", "exclusive changed"):
        shared, _, _ = simulation.split_rules(same, rules.compile_program(changed[name]))
        assert shared == []
