"""Tier ladders as data, and the pure rules of qualification, periods and moves between levels.

A **ladder** is a list of levels ordered by a threshold on one qualifying **metric** counted
over a **period**. Metrics are of two natures:

* *accumulated* (``points_earned``, ``spend`` in minor units, ``count``): credits add up; the
  value of a period is the sum of the credits of the months in its window;
* *reported* (any other name, e.g. ``combined_balance`` or ``rating``, and certifications named
  ``certification:<name>`` with the value 1 or 0): a report replaces the previous value; the value
  is the latest report at or before the end of the window.

Periods are month-granular in the program's time zone: months are numbered as a *month index*
``year * 12 + month - 1``, and every window is an inclusive range of month indexes. Ranks number
the levels from 0 (the lowest); -1 means no level.

Moves: an upgrade happens at once; a downgrade only when a period ends, to the level the metric
supports (``grace: none``) or at most one level down (``grace: one_step``); a locked status never
moves by itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

ACCUMULATED_METRICS = ("points_earned", "spend", "count")
CERTIFICATION_PREFIX = "certification:"
PERIOD_KINDS = ("calendar_year", "rolling_months", "calendar_month", "anniversary")
GRACES = ("none", "one_step")
NO_LEVEL = -1
MAX_LEVELS = 50

_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_METRIC = re.compile(r"^[a-z][a-z0-9_]{0,40}(:[a-z0-9][a-z0-9_-]{0,40})?$")


def is_accumulated(metric: str) -> bool:
    return metric in ACCUMULATED_METRICS


def certification_metric(certification: str) -> str:
    return CERTIFICATION_PREFIX + certification


def valid_metric(metric: str) -> bool:
    return bool(_METRIC.match(metric))


# ---------------------------------------------------------------------------------------------
# Months and periods


def month_index(at: datetime, time_zone: str) -> int:
    """The month of ``at`` in ``time_zone`` as ``year * 12 + month - 1``."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    local = at.astimezone(ZoneInfo(time_zone))
    return local.year * 12 + local.month - 1


def month_start(index: int, time_zone: str) -> datetime:
    """The first instant of month ``index`` in ``time_zone`` (an aware datetime)."""
    year, month0 = divmod(index, 12)
    return datetime(year, month0 + 1, 1, tzinfo=ZoneInfo(time_zone))


@dataclass(frozen=True)
class PeriodSpec:
    kind: str = "calendar_year"
    months: int = 12

    def __post_init__(self) -> None:
        if self.kind not in PERIOD_KINDS:
            raise ValueError(f"period.kind must be one of {', '.join(PERIOD_KINDS)}")
        if self.kind == "rolling_months" and not 1 <= self.months <= 120:
            raise ValueError("period.months must be between 1 and 120")

    @property
    def length(self) -> int:
        """Months in one window."""
        if self.kind == "calendar_month":
            return 1
        if self.kind == "rolling_months":
            return self.months
        return 12

    def bounds(self, index: int, anchor: int | None = None) -> tuple[int, int]:
        """The inclusive month-index window that contains month ``index``.

        ``anchor`` is the month the account's anniversary counts from (anniversary periods);
        without one the window starts at ``index``.
        """
        if self.kind == "calendar_year":
            start = index - index % 12
            return start, start + 11
        if self.kind == "calendar_month":
            return index, index
        if self.kind == "rolling_months":
            return index - self.months + 1, index
        base = index if anchor is None else anchor
        start = index - (index - base) % 12
        return start, start + 11

    def ends_at(self, index: int, anchor: int | None = None) -> bool:
        """Whether a window ends with month ``index`` (a settlement may downgrade then)."""
        return self.bounds(index, anchor)[1] == index

    def window(self, at: datetime, time_zone: str,
               anchor: int | None = None) -> tuple[datetime, datetime]:
        """The window containing ``at`` as [start, end) instants in ``time_zone``."""
        first, last = self.bounds(month_index(at, time_zone), anchor)
        return month_start(first, time_zone), month_start(last + 1, time_zone)

    def period_key(self, at: datetime, time_zone: str, anchor: int | None = None) -> str:
        """A readable key of the window containing ``at``: ``2026``, ``2026-03``, ``2025-07..2026-06``."""
        first, last = self.bounds(month_index(at, time_zone), anchor)
        if self.kind == "calendar_year":
            return str(first // 12)
        if first == last:
            return _month_label(first)
        return f"{_month_label(first)}..{_month_label(last)}"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "rolling_months":
            return {"kind": self.kind, "months": self.months}
        return {"kind": self.kind}


def _month_label(index: int) -> str:
    year, month0 = divmod(index, 12)
    return f"{year:04d}-{month0 + 1:02d}"


# ---------------------------------------------------------------------------------------------
# Ladders


@dataclass(frozen=True)
class Level:
    code: str
    name: str
    threshold: int
    # Minimums on other metrics (e.g. {"rating": 480}); all must hold as well as the threshold.
    requires: dict[str, int] = field(default_factory=dict)
    # earn_multiplier (a decimal string), perks, catalogue… kept as data.
    benefits: dict[str, Any] = field(default_factory=dict)

    @property
    def earn_multiplier(self) -> Decimal:
        return Decimal(str(self.benefits.get("earn_multiplier", "1")))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "name": self.name, "threshold": self.threshold}
        if self.requires:
            out["requires"] = dict(self.requires)
        if self.benefits:
            out["benefits"] = dict(self.benefits)
        return out


@dataclass(frozen=True)
class DirectPlacement:
    """One order of at least ``single_order_amount`` places the account in ``level`` at once."""

    single_order_amount: int
    level: str


@dataclass(frozen=True)
class Ladder:
    code: str
    metric: str
    levels: tuple[Level, ...]
    period: PeriodSpec = PeriodSpec()
    name: str = ""
    grace: str = "none"
    direct_placement: tuple[DirectPlacement, ...] = ()
    rollup: bool = False
    primary: bool = False
    # Which accounts the ladder is for: attribute -> allowed values (all must match);
    # empty means every account (distributors and retailers may have ladders of their own).
    audience: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def admits(self, attributes: dict[str, Any] | None) -> bool:
        attributes = attributes or {}
        return all(attributes.get(key) is not None and str(attributes.get(key)) in allowed
                   for key, allowed in self.audience)

    def rank_of(self, code: str | None) -> int:
        if code is None:
            return NO_LEVEL
        for rank, level in enumerate(self.levels):
            if level.code == code:
                return rank
        raise ValueError(f"unknown level {code!r}")

    def code_of(self, rank: int) -> str | None:
        return None if rank < 0 else self.levels[rank].code

    def level(self, code: str) -> Level:
        return self.levels[self.rank_of(code)]

    @property
    def required_metrics(self) -> tuple[str, ...]:
        names: list[str] = []
        for level in self.levels:
            names.extend(m for m in level.requires if m not in names)
        return tuple(names)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric this ladder reads."""
        return (self.metric, *[m for m in self.required_metrics if m != self.metric])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "metric": self.metric,
            "period": self.period.to_dict(),
            "levels": [level.to_dict() for level in self.levels],
            "downgrade": {"grace": self.grace},
            "rollup": self.rollup,
            "primary": self.primary,
        }
        if self.audience:
            out["audience"] = {key: list(allowed) for key, allowed in self.audience}
        if self.direct_placement:
            out["direct_placement"] = [
                {"single_order_amount": d.single_order_amount, "level": d.level}
                for d in self.direct_placement
            ]
        return out


def _int(value: Any, path: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path} must be an integer")
    if value < minimum:
        raise ValueError(f"{path} must be at least {minimum}")
    return value


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{path} must be a mapping")
    return value


def _only(data: dict[str, Any], allowed: set[str], path: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        where = f"{path}." if path else ""
        raise ValueError(f"{where}{extra[0]} is not a known field")


def _level(data: Any, path: str) -> Level:
    data = _mapping(data, path)
    _only(data, {"code", "name", "threshold", "requires", "benefits"}, path)
    code = data.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError(f"{path}.code must be lower-case letters, digits, '-' or '_'")
    name = data.get("name", code)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValueError(f"{path}.name must be a non-empty text of at most 200 characters")
    threshold = _int(data.get("threshold"), f"{path}.threshold")
    requires: dict[str, int] = {}
    for metric, minimum in _mapping(data.get("requires") or {}, f"{path}.requires").items():
        if not valid_metric(str(metric)):
            raise ValueError(f"{path}.requires.{metric} is not a valid metric name")
        requires[str(metric)] = _int(minimum, f"{path}.requires.{metric}")
    benefits = dict(_mapping(data.get("benefits") or {}, f"{path}.benefits"))
    if "earn_multiplier" in benefits:
        try:
            multiplier = Decimal(str(benefits["earn_multiplier"]))
        except InvalidOperation:
            multiplier = Decimal(-1)
        if not multiplier.is_finite() or multiplier < 0 or multiplier > 100:
            raise ValueError(f"{path}.benefits.earn_multiplier must be a decimal from 0 to 100")
        benefits["earn_multiplier"] = str(multiplier)
    for key in ("perks", "catalogue"):
        if key in benefits and not isinstance(benefits[key], list):
            raise ValueError(f"{path}.benefits.{key} must be a list")
    return Level(code=code, name=name.strip(), threshold=threshold, requires=requires,
                 benefits=benefits)


def from_dict(data: Any) -> Ladder:
    """A ladder from its document form; ``ValueError`` names the offending path."""
    data = _mapping(data, "ladder")
    _only(data, {"code", "name", "metric", "period", "levels", "downgrade", "direct_placement",
                 "rollup", "primary", "audience"}, "")
    code = data.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError("code must be lower-case letters, digits, '-' or '_' (at most 64)")
    name = data.get("name") or code
    if not isinstance(name, str) or len(name) > 200:
        raise ValueError("name must be a text of at most 200 characters")
    metric = data.get("metric")
    if not isinstance(metric, str) or not valid_metric(metric):
        raise ValueError("metric must be points_earned, spend, count, certification:<name> "
                         "or the name of a reported metric")
    period_data = _mapping(data.get("period") or {"kind": "calendar_year"}, "period")
    _only(period_data, {"kind", "months"}, "period")
    kind = period_data.get("kind", "calendar_year")
    if kind not in PERIOD_KINDS:
        raise ValueError(f"period.kind must be one of {', '.join(PERIOD_KINDS)}")
    months = period_data.get("months", 12)
    if kind == "rolling_months":
        months = _int(months, "period.months", 1)
    period = PeriodSpec(kind=str(kind), months=int(months) if kind == "rolling_months" else 12)
    raw_levels = data.get("levels")
    if not isinstance(raw_levels, list) or not raw_levels:
        raise ValueError("levels must be a non-empty list")
    if len(raw_levels) > MAX_LEVELS:
        raise ValueError(f"levels may hold at most {MAX_LEVELS} levels")
    levels = tuple(_level(item, f"levels[{i}]") for i, item in enumerate(raw_levels))
    seen: set[str] = set()
    for i, level in enumerate(levels):
        if level.code in seen:
            raise ValueError(f"levels[{i}].code {level.code!r} is used twice")
        seen.add(level.code)
        if i and level.threshold <= levels[i - 1].threshold:
            raise ValueError(
                f"levels[{i}].threshold must be greater than levels[{i - 1}].threshold"
            )
    downgrade = _mapping(data.get("downgrade") or {}, "downgrade")
    _only(downgrade, {"grace"}, "downgrade")
    grace = downgrade.get("grace", "none")
    if grace not in GRACES:
        raise ValueError(f"downgrade.grace must be one of {', '.join(GRACES)}")
    raw_direct = data.get("direct_placement") or []
    if isinstance(raw_direct, dict):
        raw_direct = [raw_direct]
    if not isinstance(raw_direct, list):
        raise ValueError("direct_placement must be a mapping or a list of mappings")
    direct: list[DirectPlacement] = []
    for i, item in enumerate(raw_direct):
        path = f"direct_placement[{i}]"
        item = _mapping(item, path)
        _only(item, {"single_order_amount", "level"}, path)
        amount = _int(item.get("single_order_amount"), f"{path}.single_order_amount", 1)
        target = item.get("level", levels[-1].code)
        if target not in seen:
            raise ValueError(f"{path}.level {target!r} is not a level of this ladder")
        direct.append(DirectPlacement(single_order_amount=amount, level=str(target)))
    audience: list[tuple[str, tuple[str, ...]]] = []
    for key, allowed in sorted(_mapping(data.get("audience") or {}, "audience").items()):
        if not isinstance(key, str) or not _CODE.match(key):
            raise ValueError(f"audience.{key} is not a valid attribute name")
        values = allowed if isinstance(allowed, list) else [allowed]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"audience.{key} must be a text or a list of texts")
        audience.append((key, tuple(values)))
    for key in ("rollup", "primary"):
        if not isinstance(data.get(key, False), bool):
            raise ValueError(f"{key} must be true or false")
    return Ladder(code=code, name=name, metric=metric, levels=levels, period=period,
                  grace=str(grace), direct_placement=tuple(direct),
                  rollup=bool(data.get("rollup", False)), primary=bool(data.get("primary", False)),
                  audience=tuple(audience))


# ---------------------------------------------------------------------------------------------
# Qualification and moves


def qualify_rank(ladder: Ladder, value: int, others: dict[str, int] | None = None) -> int:
    """The highest level whose threshold and other-metric minimums ``value`` meets (or -1)."""
    others = others or {}
    for rank in range(len(ladder.levels) - 1, -1, -1):
        level = ladder.levels[rank]
        if value >= level.threshold and all(
            others.get(metric, 0) >= minimum for metric, minimum in level.requires.items()
        ):
            return rank
    return NO_LEVEL


def qualify(ladder: Ladder, value: int, others: dict[str, int] | None = None) -> str | None:
    """The code of the highest level ``value`` qualifies for, or ``None``."""
    return ladder.code_of(qualify_rank(ladder, value, others))


def decide_rank(ladder: Ladder, current: int, qualified: int, *, period_end: bool,
                locked: bool) -> int:
    """The rank to hold after an evaluation: up at once, down only at a period end."""
    if locked:
        return current
    if qualified > current:
        return qualified
    if period_end and qualified < current:
        if ladder.grace == "one_step":
            return max(qualified, current - 1)
        return qualified
    return current


def decide(ladder: Ladder, current: str | None, qualified: str | None, *, period_end: bool,
           locked: bool = False) -> str | None:
    rank = decide_rank(ladder, ladder.rank_of(current), ladder.rank_of(qualified),
                       period_end=period_end, locked=locked)
    return ladder.code_of(rank)


def direct_placement_rank(ladder: Ladder, order_amount: int | None) -> int:
    """The highest level one order of ``order_amount`` places the account in (or -1)."""
    if order_amount is None:
        return NO_LEVEL
    ranks = [ladder.rank_of(d.level) for d in ladder.direct_placement
             if order_amount >= d.single_order_amount]
    return max(ranks, default=NO_LEVEL)


@dataclass(frozen=True)
class Progress:
    next_level: str | None
    needed: int
    ratio: Decimal


def next_tier_progress(ladder: Ladder, current: str | None, value: int) -> Progress:
    """How far ``value`` is from the level above ``current`` (ratio 1 at the top)."""
    rank = ladder.rank_of(current)
    if rank + 1 >= len(ladder.levels):
        return Progress(next_level=None, needed=0, ratio=Decimal(1))
    target = ladder.levels[rank + 1]
    needed = max(0, target.threshold - value)
    if target.threshold <= 0:
        ratio = Decimal(1)
    else:
        ratio = min(Decimal(1), Decimal(max(value, 0)) / Decimal(target.threshold))
    return Progress(next_level=target.code, needed=needed,
                    ratio=ratio.quantize(Decimal("0.0001")))


def settlement_month(at: datetime, time_zone: str) -> int:
    """The month a settlement at ``at`` closes: the month before the one ``at`` falls in."""
    return month_index(at, time_zone) - 1
