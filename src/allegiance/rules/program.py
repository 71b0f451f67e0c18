"""The earning part of a program definition, compiled: units, product lists, activity types
with typed attributes, member attributes, and the rules. Pure: no I/O.

    units: [{code: points, kind: points}, {code: cashback, kind: money, currency: USD}]
    product_lists: {genuine: [SKU-1, SKU-2], tyres: {skus: [...], categories: [...]}}
    activity_types:
      course_completed: {attributes: {course_id: str, mandatory: bool, score: float}}
    member_attributes: {industry: str, employees: int}
    counters:                       # running totals rules can read as member.counters.<name>
      mandatory_courses: {trigger: "activity:course_completed",
                          condition: "event.attributes.mandatory",
                          distinct: event.attributes.course_id}   # each course counts once
    rules: [...]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from allegiance.rules.domain import Rule, RuleError, parse_rule
from allegiance.rules.language import ExpressionError, Node, compile_expression

FIELD_KINDS = ("int", "float", "str", "bool", "list")

EVENT_FIELDS = {
    "event.amount": "int", "event.quantity": "int", "event.currency": "str",
    "event.channel": "str", "event.reported_by": "str", "event.type": "str",
    "event.date": "str", "event.month": "int", "event.weekday": "int", "event.hour": "int",
    "event.external_id": "str", "event.line_count": "int",
}
MEMBER_FIELDS = {
    "member.tier": "str", "member.region": "str", "member.country": "str",
    "member.segments": "list", "member.enrolled_days": "int", "member.role": "str",
}
LINE_FIELDS = {
    "line.sku": "str", "line.name": "str", "line.category": "str", "line.brand": "str",
    "line.labels": "list", "line.quantity": "int", "line.unit_price": "int", "line.amount": "int",
}


@dataclass(frozen=True)
class Counter:
    name: str
    trigger: str
    condition: Node | None
    measure: str  # count | amount
    # an ``event.*`` field: the counter counts the distinct values of it per member (an event
    # whose value the member already counted, or without a value, adds nothing); count only
    distinct: str | None = None


KEY_LENGTH = 128


def distinct_key(value: Any) -> str | None:
    """The stored form of a ``distinct`` counter's value: text as is, other values as JSON,
    longer than :data:`KEY_LENGTH` as their SHA-256; None (nothing to count) when absent."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > KEY_LENGTH:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


@dataclass(frozen=True)
class CompiledProgram:
    units: Mapping[str, str]  # code -> points | money
    lists: Mapping[str, frozenset[str]]
    activity_types: Mapping[str, Mapping[str, str]]  # type -> attribute -> kind
    types: Mapping[str, str]  # every field a condition may use
    counters: tuple[Counter, ...]
    rules: tuple[Rule, ...]

    def rule(self, code: str) -> Rule:
        for rule in self.rules:
            if rule.code == code:
                return rule
        raise KeyError(code)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RuleError(path, "must be a mapping")
    return value


def _kind(value: Any, path: str) -> str:
    if value not in FIELD_KINDS:
        raise RuleError(path, f"must be one of {', '.join(FIELD_KINDS)}")
    return str(value)


def _product_list(value: Any, path: str) -> frozenset[str]:
    if isinstance(value, list):
        items = value
    elif isinstance(value, Mapping):
        items = []
        for key in ("skus", "categories", "brands"):
            part = value.get(key) or []
            if not isinstance(part, list):
                raise RuleError(f"{path}.{key}", "must be a list")
            items.extend(part)
        extra = set(value) - {"skus", "categories", "brands", "name"}
        if extra:
            raise RuleError(f"{path}.{sorted(extra)[0]}", "is not a product-list field")
    else:
        raise RuleError(path, "a product list is a list of codes or {skus, categories, brands}")
    for index, item in enumerate(items):
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise RuleError(f"{path}[{index}]", "must be a code (text)")
    return frozenset(str(i) for i in items)


def compile_program(document: Mapping[str, Any]) -> CompiledProgram:
    """Validate and compile; raises :class:`RuleError` naming the path of the first problem."""
    units: dict[str, str] = {}
    for index, unit in enumerate(document.get("units") or []):
        if not isinstance(unit, Mapping) or not isinstance(unit.get("code"), str):
            raise RuleError(f"units[{index}].code", "is required")
        if unit.get("kind") not in ("points", "money"):
            raise RuleError(f"units[{index}].kind", "must be points or money")
        units[str(unit["code"])] = str(unit["kind"])
    lists = {
        str(code): _product_list(value, f"product_lists.{code}")
        for code, value in _mapping(document.get("product_lists"), "product_lists").items()
    }
    types: dict[str, str] = {**EVENT_FIELDS, **MEMBER_FIELDS, **LINE_FIELDS}
    activity_types: dict[str, dict[str, str]] = {}
    for name, spec in _mapping(document.get("activity_types"), "activity_types").items():
        path = f"activity_types.{name}"
        attributes = _mapping(_mapping(spec, path).get("attributes"), f"{path}.attributes")
        activity_types[str(name)] = {}
        for attribute, kind in attributes.items():
            kind = _kind(kind, f"{path}.attributes.{attribute}")
            field_name = f"event.attributes.{attribute}"
            if types.get(field_name, kind) != kind:
                raise RuleError(f"{path}.attributes.{attribute}",
                                f"is {types[field_name]} in another activity type")
            types[field_name] = kind
            activity_types[str(name)][str(attribute)] = kind
    for name, kind in _mapping(document.get("member_attributes"), "member_attributes").items():
        types[f"member.attributes.{name}"] = _kind(kind, f"member_attributes.{name}")
    counters = []
    for name, spec in _mapping(document.get("counters"), "counters").items():
        path = f"counters.{name}"
        spec = _mapping(spec, path)
        trigger = str(spec.get("trigger", "purchase"))
        condition = None
        if spec.get("condition") is not None:
            try:
                condition = compile_expression(str(spec["condition"]), types, lists)
            except ExpressionError as exc:
                raise RuleError(f"{path}.condition", str(exc)) from exc
        measure = str(spec.get("measure", "count"))
        if measure not in ("count", "amount"):
            raise RuleError(f"{path}.measure", "must be count or amount")
        distinct = spec.get("distinct")
        if distinct is not None:
            if not isinstance(distinct, str) or not distinct.startswith("event.") \
                    or distinct not in types:
                raise RuleError(f"{path}.distinct", "must be an event field (event.* or "
                                "event.attributes.<name> of an activity type)")
            if measure != "count":
                raise RuleError(f"{path}.distinct", "counts distinct values: measure must be "
                                "count")
        counters.append(Counter(str(name), trigger, condition, measure, distinct))
        types[f"member.counters.{name}"] = "int"
    rules = []
    codes: set[str] = set()
    raw_rules = document.get("rules") or []
    if not isinstance(raw_rules, list):
        raise RuleError("rules", "must be a list")
    for index, raw in enumerate(raw_rules):
        rule = parse_rule(raw, f"rules[{index}]", types=types, lists=lists, units=units,
                          activity_types=list(activity_types))
        if rule.code in codes:
            raise RuleError(f"rules[{index}].code", f"duplicate rule code {rule.code!r}")
        codes.add(rule.code)
        rules.append(rule)
    rules.extend(_tier_benefit_rules(document, rules, types, lists, units))
    for index, rule in enumerate(rules):
        for e_index, effect in enumerate(rule.effects):
            for target in effect.applies_to:
                if target not in codes:
                    raise RuleError(f"rules[{index}].effects[{e_index}].applies_to",
                                    f"unknown rule {target!r}")
    return CompiledProgram(units, lists, activity_types, types, tuple(counters), tuple(rules))


TIER_BENEFIT_PREFIX = "tier-benefit:"


def _tier_benefit_rules(
    document: Mapping[str, Any],
    rules: list[Rule],
    types: Mapping[str, str],
    lists: Mapping[str, frozenset[str]],
    units: Mapping[str, str],
) -> list[Rule]:
    """The primary ladder's ``earn_multiplier`` benefits as multiplier rules on points.

    ``member.tier`` is the member's level on the primary ladder; each level with a multiplier
    other than 1 becomes a rule of the lowest priority (applied after every other multiplier)
    that multiplies the points awards of the program's rules — visible in dry-run traces, and
    evaluated the same way per event and in columns.
    """
    ladders = document.get("tiers") or []
    if not isinstance(ladders, list):
        return []
    primary = [ladder for ladder in ladders if isinstance(ladder, Mapping) and ladder.get("primary")]
    if len(primary) != 1:
        return []
    ladder = primary[0]
    targets = [
        rule.code for rule in rules
        if not rule.is_multiplier
        and any(e.is_award and e.unit is not None and units.get(e.unit) == "points"
                for e in rule.effects)
    ]
    if not targets:
        return []
    out = []
    for index, level in enumerate(ladder.get("levels") or []):
        if not isinstance(level, Mapping):
            continue
        benefits = level.get("benefits") or {}
        factor = benefits.get("earn_multiplier") if isinstance(benefits, Mapping) else None
        if factor is None or str(factor) in ("1", "1.0", "1.00"):
            continue
        code = str(level.get("code"))
        path = f"tiers[{ladders.index(ladder)}].levels[{index}].benefits.earn_multiplier"
        try:
            rule = parse_rule(
                {"code": f"{TIER_BENEFIT_PREFIX}{ladder.get('code')}:{code}",
                 "name": f"{level.get('name', code)} earns x{factor}",
                 "priority": -1_000_000,
                 "condition": f"member.tier == {code!r}",
                 "effects": [{"type": "multiplier", "factor": str(factor),
                              "applies_to": targets}]},
                path, types=types, lists=lists, units=units,
            )
        except RuleError as exc:
            raise RuleError(path, exc.message) from exc
        out.append(rule)
    return out
