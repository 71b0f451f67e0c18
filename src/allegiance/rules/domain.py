"""Earning rules as data, and their evaluation one event at a time. Pure: no I/O.

A rule is a document::

    code: genuine-points          # unique in the program
    trigger: purchase             # purchase | activity | activity:<type>
    priority: 100                 # higher first; ties by code (never "last edited wins")
    stacking: stack               # stack | exclusive (stops lower-priority rules)
    condition: in_list(line.sku, "genuine") and event.channel != "internal"
    effects:
      - {type: points_per_amount, unit: points, rate: "0.01", rounding: down}   # per line amount
      - {type: points_per_item, unit: points, points: 5}
      - {type: fixed, unit: points, points: 500}
      - {type: percent, unit: cashback, percent: "8"}       # money units, minor units
      - {type: multiplier, factor: "2", applies_to: [genuine-points]}
      - {type: tier_credit, metric: spend, basis: amount}   # stored for tiers
      - {type: badge, code: first-sale}                     # stored for later features
    limits: [{per: member, period: month, max: 10000}, {per: member, period: lifetime, times: 1}]
    budget: 1000000                # total points this rule may ever issue (a ledger account)
    recipient: account             # account | user | split
    split: {account: 50, user: 50}
    pending_days: 30               # held until the return window closes
    valid_from: 2026-10-01T00:00:00+00:00
    valid_to: 2027-01-01T00:00:00+00:00

A rule whose condition mentions ``line.*`` is evaluated per purchase line; otherwise once per
event. Amount-based effects of a per-event rule use ``event.amount``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from allegiance.kit.money import Rounding
from allegiance.rules.language import ExpressionError, Node, compile_expression

EFFECT_TYPES = (
    "points_per_amount", "points_per_item", "fixed", "percent", "multiplier", "tier_credit",
    "badge", "coupon", "commission", "bounty",
)
# Effects that credit a unit through the ledger.
AWARD_TYPES = ("points_per_amount", "points_per_item", "fixed", "percent", "commission", "bounty")
PERIODS = ("day", "week", "month", "quarter", "year", "lifetime")


class RuleError(ValueError):
    """A rule definition that cannot be used; ``path`` points at the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


# Rates and factors of rules: below 10^15, with at most 30 decimals.
MAX_RATE_DIGITS = 15
MAX_RATE_DECIMALS = 30


@dataclass(frozen=True)
class Ratio:
    """An exact rate as a fraction of integers (``"0.01"`` → 1/100)."""

    num: int
    den: int

    @staticmethod
    def parse(value: Any, path: str) -> Ratio:
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise RuleError(path, f"{value!r} is not a number") from exc
        if not number.is_finite() or number < 0:
            raise RuleError(path, "must be a non-negative number")
        # Bounded before the exact fraction: 1e-999999999 would need a 10^999999999 divisor.
        exponent = number.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -MAX_RATE_DECIMALS or \
                number.adjusted() >= MAX_RATE_DIGITS:
            raise RuleError(path, f"must be below 10^{MAX_RATE_DIGITS} with at most "
                                  f"{MAX_RATE_DECIMALS} decimals")
        num, den = number.as_integer_ratio()
        return Ratio(num, den)

    def apply(self, amount: int, rounding: Rounding) -> int:
        return divide(amount * self.num, self.den, rounding)


def divide(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Integer division with an explicit rounding policy (exact, no floats)."""
    if rounding in (Rounding.DOWN, Rounding.FLOOR):
        if rounding is Rounding.DOWN and numerator < 0:
            return -((-numerator) // denominator)
        return numerator // denominator
    if rounding is Rounding.UP:
        return -((-numerator) // denominator) if numerator >= 0 else numerator // denominator
    if rounding is Rounding.HALF_UP:
        sign = -1 if numerator < 0 else 1
        return sign * ((2 * abs(numerator) + denominator) // (2 * denominator))
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


@dataclass(frozen=True)
class Effect:
    type: str
    unit: str | None = None
    rate: Ratio | None = None  # points_per_amount, percent (already /100), commission
    points: int = 0  # fixed, points_per_item, bounty
    factor: Ratio | None = None  # multiplier
    applies_to: tuple[str, ...] = ()
    rounding: Rounding = Rounding.DOWN
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_award(self) -> bool:
        return self.type in AWARD_TYPES


@dataclass(frozen=True)
class Limit:
    period: str
    max: int | None = None  # amount of the effect's unit
    times: int | None = None  # number of awarding events


@dataclass(frozen=True)
class Rule:
    code: str
    trigger: str
    priority: int
    stacking: str
    condition: Node | None
    source: str | None
    effects: tuple[Effect, ...]
    limits: tuple[Limit, ...] = ()
    budget: int | None = None
    recipient: str = "account"
    split_account_percent: int = 100
    pending_days: int = 0
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    name: str = ""

    @cached_property
    def line_scope(self) -> bool:
        return self.condition is not None and any(
            f.startswith("line.") for f in self.condition.fields()
        )

    @cached_property
    def is_multiplier(self) -> bool:
        return any(e.type == "multiplier" for e in self.effects)

    def triggered_by(self, kind: str, activity_type: str | None) -> bool:
        if self.trigger == kind:
            return True
        return kind == "activity" and self.trigger == f"activity:{activity_type}"

    def valid_at(self, at: datetime) -> bool:
        if self.valid_from is not None and at < self.valid_from:
            return False
        return not (self.valid_to is not None and at >= self.valid_to)


def _int(value: Any, path: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(path, "must be a whole number")
    if value < minimum:
        raise RuleError(path, f"must be at least {minimum}")
    return value


def _when(value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise RuleError(path, "must be an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise RuleError(path, "needs a time zone offset, e.g. 2026-10-01T00:00:00+00:00")
    return moment


def parse_effect(data: Any, path: str, units: Mapping[str, str]) -> Effect:
    if not isinstance(data, Mapping):
        raise RuleError(path, "an effect is a mapping with a 'type'")
    kind = data.get("type")
    if kind not in EFFECT_TYPES:
        raise RuleError(f"{path}.type", f"must be one of {', '.join(EFFECT_TYPES)}")
    known = {"type", "unit", "rate", "points", "percent", "factor", "applies_to", "rounding",
             "basis", "metric", "code", "data"}
    extra = set(data) - known
    if extra:
        raise RuleError(f"{path}.{sorted(extra)[0]}", "is not a known effect field")
    try:
        rounding = Rounding(str(data.get("rounding", "down")))
    except ValueError as exc:
        raise RuleError(f"{path}.rounding", "must be down, up, half_up, half_even or floor") from exc
    unit = data.get("unit")
    if kind in AWARD_TYPES:
        if not isinstance(unit, str) or unit not in units:
            raise RuleError(f"{path}.unit", f"unknown unit {unit!r}")
        if kind in ("percent", "commission") and units[unit] != "money":
            raise RuleError(f"{path}.unit", f"{kind} pays a money unit")
    rate = None
    points = 0
    factor = None
    if kind == "points_per_amount":
        rate = Ratio.parse(data.get("rate"), f"{path}.rate")
    elif kind in ("percent", "commission"):
        pct = Ratio.parse(data.get("percent"), f"{path}.percent")
        rate = Ratio(pct.num, pct.den * 100)
    elif kind in ("fixed", "points_per_item", "bounty"):
        points = _int(data.get("points"), f"{path}.points", minimum=1)
    elif kind == "multiplier":
        factor = Ratio.parse(data.get("factor"), f"{path}.factor")
    elif kind == "tier_credit" and data.get("metric") not in ("spend", "points", "count"):
        raise RuleError(f"{path}.metric", "must be spend, points or count")
    elif kind in ("badge", "coupon") and not data.get("code"):
        raise RuleError(f"{path}.code", "is required")
    applies_to = data.get("applies_to") or []
    if not isinstance(applies_to, list) or not all(isinstance(c, str) for c in applies_to):
        raise RuleError(f"{path}.applies_to", "must be a list of rule codes")
    extra_data = {k: data[k] for k in ("basis", "metric", "code", "data") if k in data}
    return Effect(kind, unit, rate, points, factor, tuple(applies_to), rounding, extra_data)


def parse_rule(
    data: Any,
    path: str,
    *,
    types: Mapping[str, str],
    lists: Mapping[str, frozenset[str]],
    units: Mapping[str, str],
    activity_types: Sequence[str] = (),
) -> Rule:
    """Validate a rule document; every error names its path (``rules[3].effects[0].rate``)."""
    if not isinstance(data, Mapping):
        raise RuleError(path, "a rule is a mapping")
    known = {"code", "name", "trigger", "priority", "stacking", "condition", "effects", "limits",
             "budget", "recipient", "split", "pending_days", "valid_from", "valid_to"}
    extra = set(data) - known
    if extra:
        raise RuleError(f"{path}.{sorted(extra)[0]}", "is not a known rule field")
    code = data.get("code")
    if not isinstance(code, str) or not code:
        raise RuleError(f"{path}.code", "is required")
    trigger = str(data.get("trigger", "purchase"))
    if trigger not in ("purchase", "activity") and not trigger.startswith("activity:"):
        raise RuleError(f"{path}.trigger", "must be purchase, activity or activity:<type>")
    if trigger.startswith("activity:") and activity_types and trigger[9:] not in activity_types:
        raise RuleError(f"{path}.trigger", f"unknown activity type {trigger[9:]!r}")
    stacking = str(data.get("stacking", "stack"))
    if stacking not in ("stack", "exclusive"):
        raise RuleError(f"{path}.stacking", "must be stack or exclusive")
    source = data.get("condition")
    condition = None
    if source is not None:
        try:
            condition = compile_expression(str(source), types, lists)
        except ExpressionError as exc:
            raise RuleError(f"{path}.condition", str(exc)) from exc
    raw_effects = data.get("effects")
    if not isinstance(raw_effects, list) or not raw_effects:
        raise RuleError(f"{path}.effects", "needs at least one effect")
    effects = tuple(
        parse_effect(e, f"{path}.effects[{i}]", units) for i, e in enumerate(raw_effects)
    )
    limits = []
    for i, raw in enumerate(data.get("limits") or []):
        lpath = f"{path}.limits[{i}]"
        if not isinstance(raw, Mapping):
            raise RuleError(lpath, "a limit is a mapping")
        if raw.get("per", "member") != "member":
            raise RuleError(f"{lpath}.per", "limits are per member (use budget for totals)")
        period = raw.get("period", "lifetime")
        if period not in PERIODS:
            raise RuleError(f"{lpath}.period", f"must be one of {', '.join(PERIODS)}")
        cap = raw.get("max")
        times = raw.get("times")
        if cap is None and times is None:
            raise RuleError(lpath, "needs max (amount) or times (count)")
        limits.append(Limit(
            period,
            _int(cap, f"{lpath}.max") if cap is not None else None,
            _int(times, f"{lpath}.times", minimum=1) if times is not None else None,
        ))
    recipient = str(data.get("recipient", "account"))
    if recipient not in ("account", "user", "split"):
        raise RuleError(f"{path}.recipient", "must be account, user or split")
    split_percent = 100
    if recipient == "split":
        split = data.get("split") or {}
        split_percent = _int(split.get("account"), f"{path}.split.account")
        if split_percent + _int(split.get("user"), f"{path}.split.user") != 100:
            raise RuleError(f"{path}.split", "account and user shares must add up to 100")
    budget = data.get("budget")
    return Rule(
        code=code, name=str(data.get("name", code)), trigger=trigger,
        priority=_int(data.get("priority", 0), f"{path}.priority", minimum=-1_000_000),
        stacking=stacking, condition=condition, source=None if source is None else str(source),
        effects=effects, limits=tuple(limits),
        budget=None if budget is None else _int(budget, f"{path}.budget", minimum=1),
        recipient=recipient, split_account_percent=split_percent,
        pending_days=_int(data.get("pending_days", 0), f"{path}.pending_days"),
        valid_from=_when(data.get("valid_from"), f"{path}.valid_from"),
        valid_to=_when(data.get("valid_to"), f"{path}.valid_to"),
    )


def order(rules: Sequence[Rule]) -> list[Rule]:
    """Evaluation order: higher priority first, ties by code. Never edit order."""
    return sorted(rules, key=lambda r: (-r.priority, r.code))
