"""Pure logic of rebates and discounts: bracket schedules, periods in a time zone. No I/O.

A volume rebate schedule is a list of brackets, lowest first::

    [{"up_to": 500000, "percent": "1"}, {"up_to": 750000, "percent": "1.2"}, {"percent": "1.5"}]

Reaching a bracket applies its rate to the *whole* period's volume (retroactive): 600,000 of
volume earns 1.2% of 600,000, not 1% of the first 500,000 plus 1.2% of the rest.

A cumulative discount schedule lists where each discount starts::

    [{"from": 0, "percent": "0"}, {"from": 100000, "percent": "3"}, {"from": 500000, "percent": "5"}]
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

PERIODS = ("month", "quarter", "year")
DISCOUNT_PERIODS = ("month", "quarter", "year", "lifetime")
COUPON_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class ScheduleError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_percent(value: Any, field: str) -> tuple[int, int]:
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ScheduleError(field, "must be a number") from exc
    if not number.is_finite() or not 0 <= number <= 100:
        raise ScheduleError(field, "must be a percentage between 0 and 100")
    num, den = number.as_integer_ratio()
    return num, den * 100


def _whole(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ScheduleError(field, "must be a whole number >= 0 (minor units)")
    return value


@dataclass(frozen=True)
class Bracket:
    bound: int | None  # up_to (rebates) or from (discounts)
    num: int
    den: int


def parse_rebate_brackets(data: Sequence[Mapping[str, Any]]) -> list[Bracket]:
    if not data:
        raise ScheduleError("brackets", "needs at least one bracket")
    out: list[Bracket] = []
    for index, raw in enumerate(data):
        path = f"brackets[{index}]"
        extra = set(raw) - {"up_to", "percent"}
        if extra:
            raise ScheduleError(f"{path}.{sorted(extra)[0]}", "is not a bracket field")
        bound = raw.get("up_to")
        num, den = parse_percent(raw.get("percent"), f"{path}.percent")
        if bound is None and index != len(data) - 1:
            raise ScheduleError(f"{path}.up_to", "only the last bracket is open-ended")
        if bound is not None:
            bound = _whole(bound, f"{path}.up_to")
            if out and out[-1].bound is not None and bound <= out[-1].bound:
                raise ScheduleError(f"{path}.up_to", "brackets must increase")
        out.append(Bracket(bound, num, den))
    return out


def rebate(brackets: Sequence[Bracket], volume: int) -> int:
    """The whole-period rebate of ``volume`` (retroactive bracket), rounded down."""
    if volume <= 0:
        return 0
    for bracket in brackets:
        if bracket.bound is None or volume <= bracket.bound:
            return volume * bracket.num // bracket.den
    return 0  # above the last closed bracket: the schedule pays nothing more


def parse_discount_brackets(data: Sequence[Mapping[str, Any]]) -> list[Bracket]:
    if not data:
        raise ScheduleError("brackets", "needs at least one bracket")
    out: list[Bracket] = []
    for index, raw in enumerate(data):
        path = f"brackets[{index}]"
        extra = set(raw) - {"from", "percent"}
        if extra:
            raise ScheduleError(f"{path}.{sorted(extra)[0]}", "is not a bracket field")
        bound = _whole(raw.get("from"), f"{path}.from")
        num, den = parse_percent(raw.get("percent"), f"{path}.percent")
        if out and out[-1].bound is not None and bound <= out[-1].bound:
            raise ScheduleError(f"{path}.from", "brackets must increase")
        out.append(Bracket(bound, num, den))
    return out


def discount_rate(brackets: Sequence[Bracket], volume: int) -> Bracket | None:
    """The highest bracket whose start the cumulative ``volume`` has reached."""
    reached = [b for b in brackets if b.bound is not None and volume >= b.bound]
    return reached[-1] if reached else None


def apply_rate(amount: int, num: int, den: int) -> int:
    return max(amount, 0) * num // den


def percent_text(num: int, den: int) -> str:
    return format((Decimal(num) * 100 / Decimal(den)).normalize(), "f")


def period_bounds(period: str, at: datetime, time_zone: str = "UTC") -> tuple[datetime, datetime]:
    """[start, end) of the calendar month, quarter or year holding ``at``, in a time zone."""
    zone = ZoneInfo(time_zone)
    local = at.astimezone(zone)
    if period == "month":
        start_month, months = local.month, 1
    elif period == "quarter":
        start_month, months = (local.month - 1) // 3 * 3 + 1, 3
    elif period == "year":
        start_month, months = 1, 12
    else:
        raise ScheduleError("period", f"must be one of {', '.join(PERIODS)}")
    start = datetime(local.year, start_month, 1, tzinfo=zone)
    end_month = start_month + months
    end = datetime(local.year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1, tzinfo=zone)
    return start, end


def previous_period(period: str, at: datetime,
                    time_zone: str = "UTC") -> tuple[datetime, datetime]:
    """The period just before the one holding ``at``."""
    start, _ = period_bounds(period, at, time_zone)
    return period_bounds(period, start - timedelta(seconds=1), time_zone)


def new_coupon_code() -> str:
    return "NX-" + "".join(secrets.choice(COUPON_ALPHABET) for _ in range(10))
