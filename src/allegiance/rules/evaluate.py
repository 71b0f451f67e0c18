"""Evaluation of a program's rules for one event (API, dry-run). Pure: no I/O.

Steps, identical in the columnar evaluator (:mod:`allegiance.rules.columnar_eval`):
1. rules in order (priority desc, code); those not triggered by the event or outside their
   validity window are skipped; an ``exclusive`` rule that matches stops every later rule;
2. each matching rule's effects give base awards: per matching line for line rules
   (``points_per_amount``/``percent`` on ``line.amount``, ``points_per_item`` on
   ``line.quantity``), once per event otherwise (on ``event.amount``/``event.quantity``);
   ``fixed`` and ``bounty`` are once per event;
3. multiplier rules (in order) multiply the awards they apply to, rounding each time;
4. limits per member and period (in declared order, counting what was finally awarded), then
   the rule's budget, cut the awards (lines in order);
5. zero awards are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from allegiance.rules.domain import Rule, order
from allegiance.rules.language import Node, to_python

Row = Mapping[str, Any]


@dataclass(frozen=True)
class EventInput:
    kind: str  # purchase | activity
    activity_type: str | None
    at: datetime
    fields: Row  # event.* and member.* values, flat
    lines: Sequence[Row] = ()  # line.* values, flat; line.amount and line.quantity ints


@dataclass
class Award:
    rule: str
    effect: int
    line: int | None
    type: str
    unit: str | None
    amount: int
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Trace:
    rule: str
    matched: bool
    reason: str


@dataclass
class Evaluation:
    awards: list[Award]
    traces: list[Trace]
    # (rule, limit index, period key) -> (amount used, times used) added by this event
    usage: dict[tuple[str, int, str], tuple[int, int]]
    budget_used: dict[str, int]


PeriodKey = Callable[[str, datetime], str]

# Compiled predicates by condition tree (equal trees compile to the same function).
_compiled: dict[Node, Callable[[Row], Any]] = {}


def _predicate(rule: Rule) -> Callable[[Row], Any]:
    if rule.condition is None:
        return lambda row: True
    fn = _compiled.get(rule.condition)
    if fn is None:
        fn = to_python(rule.condition)
        if len(_compiled) < 10_000:
            _compiled[rule.condition] = fn
    return fn


def evaluate(
    rules: Sequence[Rule],
    event: EventInput,
    *,
    period_key: PeriodKey,
    usage: Mapping[tuple[str, int, str], tuple[int, int]] | None = None,
    budget_left: Mapping[str, int] | None = None,
) -> Evaluation:
    usage = usage or {}
    budget_left = budget_left or {}
    awards: list[Award] = []
    traces: list[Trace] = []
    matched_lines: dict[str, set[int] | None] = {}  # None: event-scope match
    blocked_by: str | None = None
    ordered = order(rules)
    rows: list[Row] | None = None  # event fields merged with each line, built on first need
    for rule in ordered:
        if blocked_by is not None:
            traces.append(Trace(rule.code, False, f"skipped: exclusive rule {blocked_by} matched"))
            continue
        if not rule.triggered_by(event.kind, event.activity_type):
            traces.append(Trace(rule.code, False, f"trigger {rule.trigger} does not fit"))
            continue
        if not rule.valid_at(event.at):
            traces.append(Trace(rule.code, False, "outside the rule's validity window"))
            continue
        predicate = _predicate(rule)
        if rule.line_scope:
            if rows is None:
                rows = [{**event.fields, **line} for line in event.lines]
            hits = {i for i, row in enumerate(rows) if predicate(row) is True}
            if not hits:
                traces.append(Trace(rule.code, False, "no line meets the condition"))
                continue
            matched_lines[rule.code] = hits
            reason = f"{len(hits)} of {len(event.lines)} lines meet the condition"
        else:
            if predicate(event.fields) is not True:
                traces.append(Trace(rule.code, False, "condition is false"))
                continue
            matched_lines[rule.code] = None
            reason = "condition is true" if rule.condition is not None else "no condition"
        traces.append(Trace(rule.code, True, reason))
        if not rule.is_multiplier:
            awards.extend(_base_awards(rule, event, matched_lines[rule.code]))
        if rule.stacking == "exclusive":
            blocked_by = rule.code
    _multiply(ordered, awards, matched_lines)
    new_usage, budget_used = _limit(ordered, awards, event.at, period_key, usage, budget_left)
    kept = [a for a in awards if a.amount > 0 or a.type in ("badge", "coupon")]
    return Evaluation(kept, traces, new_usage, budget_used)


def _base_awards(rule: Rule, event: EventInput, hits: set[int] | None) -> list[Award]:
    out: list[Award] = []
    for index, effect in enumerate(rule.effects):
        kind = effect.type
        if kind in ("fixed", "bounty"):
            out.append(Award(rule.code, index, None, kind, effect.unit, effect.points))
        elif kind in ("points_per_amount", "percent", "commission"):
            assert effect.rate is not None
            if hits is None:
                amount = _int(event.fields.get("event.amount"))
                out.append(Award(rule.code, index, None, kind, effect.unit,
                                 effect.rate.apply(amount, effect.rounding)))
            else:
                for i in sorted(hits):
                    amount = _int(event.lines[i].get("line.amount"))
                    out.append(Award(rule.code, index, i, kind, effect.unit,
                                     effect.rate.apply(amount, effect.rounding)))
        elif kind == "points_per_item":
            if hits is None:
                quantity = _int(event.fields.get("event.quantity"))
                out.append(Award(rule.code, index, None, kind, effect.unit,
                                 quantity * effect.points))
            else:
                for i in sorted(hits):
                    quantity = _int(event.lines[i].get("line.quantity"))
                    out.append(Award(rule.code, index, i, kind, effect.unit,
                                     quantity * effect.points))
        elif kind == "tier_credit":
            metric = str(effect.data.get("metric"))
            if metric == "count":
                value = 1
            elif hits is None:
                value = _int(event.fields.get("event.amount"))
            else:
                value = sum(_int(event.lines[i].get("line.amount")) for i in hits)
            out.append(Award(rule.code, index, None, kind, None, value, effect.data))
        elif kind in ("badge", "coupon"):
            out.append(Award(rule.code, index, None, kind, None, 0, effect.data))
    return out


def _int(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 0
    return max(0, int(value))


def _multiply(
    ordered: Sequence[Rule], awards: list[Award], matched: Mapping[str, set[int] | None]
) -> None:
    for rule in ordered:
        if not rule.is_multiplier or rule.code not in matched:
            continue
        hits = matched[rule.code]
        for effect in rule.effects:
            if effect.type != "multiplier" or effect.factor is None:
                continue
            for award in awards:
                if award.unit is None or award.type not in (
                    "points_per_amount", "points_per_item", "fixed", "percent", "commission",
                    "bounty",
                ):
                    continue
                if effect.applies_to and award.rule not in effect.applies_to:
                    continue
                if hits is not None and (award.line is None or award.line not in hits):
                    continue
                award.amount = effect.factor.apply(award.amount, effect.rounding)


def _limit(
    ordered: Sequence[Rule],
    awards: list[Award],
    at: datetime,
    period_key: PeriodKey,
    usage: Mapping[tuple[str, int, str], tuple[int, int]],
    budget_left: Mapping[str, int],
) -> tuple[dict[tuple[str, int, str], tuple[int, int]], dict[str, int]]:
    new_usage: dict[tuple[str, int, str], tuple[int, int]] = {}
    budget_used: dict[str, int] = {}
    for rule in ordered:
        mine = [a for a in awards if a.rule == rule.code and a.unit is not None]
        if not mine or (not rule.limits and rule.budget is None):
            continue
        total = sum(a.amount for a in mine)
        allowed = total
        keys = []
        for index, limit in enumerate(rule.limits):
            key = (rule.code, index, period_key(limit.period, at))
            keys.append(key)
            used_amount, used_times = usage.get(key, (0, 0))
            if limit.times is not None and used_times >= limit.times:
                allowed = 0
            if limit.max is not None:
                allowed = min(allowed, max(0, limit.max - used_amount))
        if rule.budget is not None:
            allowed = min(allowed, max(0, budget_left.get(rule.code, rule.budget)))
        _cut(mine, allowed)
        given = sum(a.amount for a in mine)
        for key in keys:
            new_usage[key] = (given, 1 if given > 0 else 0)
        if rule.budget is not None:
            budget_used[rule.code] = given
    return new_usage, budget_used


def _cut(awards: list[Award], allowed: int) -> None:
    """Reduce awards (event-level first, then lines in order) so they sum to ``allowed``."""
    left = allowed
    for award in sorted(awards, key=lambda a: (-1 if a.line is None else a.line, a.effect)):
        take = min(award.amount, left)
        award.amount = take
        left -= take
