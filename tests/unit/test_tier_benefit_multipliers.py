"""Tier benefits as data: the primary ladder's earn_multiplier multiplies points, in both
evaluators, and shows in the dry-run traces."""

from datetime import UTC, datetime

from allegiance.rules import EventInput, compile_program, evaluate, evaluate_frame, lines_frame
from allegiance.rules.program import TIER_BENEFIT_PREFIX

DOC = {
    "program": {"code": "p"},
    "units": [{"code": "points", "kind": "points"}, {"code": "cash", "kind": "money"}],
    "rules": [
        {"code": "base", "effects": [{"type": "points_per_amount", "unit": "points",
                                      "rate": "0.01"}]},
        {"code": "cashback", "effects": [{"type": "percent", "unit": "cash", "percent": "1"}]},
    ],
    "tiers": [{"code": "main", "primary": True, "metric": "spend",
               "levels": [{"code": "silver", "threshold": 0},
                          {"code": "gold", "threshold": 100,
                           "benefits": {"earn_multiplier": "1.5"}}]}],
}


def _event(tier: str | None) -> EventInput:
    return EventInput("purchase", None, datetime(2026, 5, 1, tzinfo=UTC),
                      {"event.amount": 10_000, "member.tier": tier})


def test_gold_earns_one_and_a_half_points_and_cashback_is_not_multiplied() -> None:
    program = compile_program(DOC)
    assert [r.code for r in program.rules][-1] == f"{TIER_BENEFIT_PREFIX}main:gold"
    result = evaluate(program.rules, _event("gold"), period_key=lambda p, at: "k")
    amounts = {a.rule: a.amount for a in result.awards}
    assert amounts == {"base": 150, "cashback": 100}
    assert any(t.rule.startswith(TIER_BENEFIT_PREFIX) and t.matched for t in result.traces)
    silver = evaluate(program.rules, _event("silver"), period_key=lambda p, at: "k")
    assert {a.rule: a.amount for a in silver.awards} == {"base": 100, "cashback": 100}


def test_columnar_applies_the_same_benefit() -> None:
    program = compile_program(DOC)
    frame = lines_frame([("m1", _event("gold")), ("m2", _event(None))], program.types)
    got = sorted(evaluate_frame(program.rules, frame).select("_event", "rule", "amount").rows())
    assert got == [(0, "base", 150), (0, "cashback", 100), (1, "base", 100), (1, "cashback", 100)]


def test_only_a_primary_ladder_gives_multipliers() -> None:
    doc = {**DOC, "tiers": [{**DOC["tiers"][0], "primary": False}]}  # type: ignore[dict-item]
    assert all(not r.code.startswith(TIER_BENEFIT_PREFIX) for r in compile_program(doc).rules)
