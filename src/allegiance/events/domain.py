"""Pure event logic: line amounts, the flat fields rules read, typed activity attributes,
splits between account and user, and the exact proportional reversal of returns.

Reversal rule: what a share of an award gives back is computed on the *cumulative* share
returned so far (``value * returned_so_far // total``) minus what was already given back, so
partial returns never give back more than was earned and partial returns summing to the whole
give back exactly the original.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

KINDS = ("purchase", "activity")
REPORTERS = ("member", "operator", "third_party")
TIER_METRICS = {"spend": "spend", "points": "points_earned", "count": "count"}


@dataclass(frozen=True)
class LineIn:
    sku: str | None
    name: str | None
    category: str | None
    brand: str | None
    labels: tuple[str, ...]
    quantity: int
    unit_price: int | None
    amount: int | None


def line_amount(line: LineIn) -> int:
    """A line's amount: as given, else quantity * unit price, else 0."""
    if line.amount is not None:
        return line.amount
    if line.unit_price is not None:
        return line.quantity * line.unit_price
    return 0


def check_attributes(schema: Mapping[str, str], attributes: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, message) of the first attribute that does not fit the type's schema."""
    for name, value in attributes.items():
        kind = schema.get(name)
        path = f"attributes.{name}"
        if kind is None:
            return path, f"is not an attribute of this activity type (known: {', '.join(sorted(schema)) or 'none'})"
        if value is None:
            continue
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            return path, "must be a whole number"
        if kind == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
            return path, "must be a number"
        if kind == "str" and not isinstance(value, str):
            return path, "must be text"
        if kind == "bool" and not isinstance(value, bool):
            return path, "must be true or false"
        if kind == "list" and not isinstance(value, list):
            return path, "must be a list"
    return None


def time_fields(at: datetime, time_zone: str) -> dict[str, Any]:
    local = at.astimezone(ZoneInfo(time_zone))
    return {
        "event.date": local.date().isoformat(), "event.month": local.month,
        "event.weekday": local.isoweekday(), "event.hour": local.hour,
    }


def event_fields(
    *,
    kind: str,
    activity_type: str | None,
    at: datetime,
    time_zone: str,
    amount: int,
    quantity: int,
    currency: str | None,
    channel: str | None,
    reported_by: str,
    external_id: str,
    line_count: int,
    attributes: Mapping[str, Any],
    member: Mapping[str, Any],
) -> dict[str, Any]:
    """The flat ``event.*`` and ``member.*`` values of a condition."""
    fields: dict[str, Any] = {
        "event.amount": amount, "event.quantity": quantity, "event.currency": currency,
        "event.channel": channel, "event.reported_by": reported_by,
        "event.type": activity_type if kind == "activity" else kind,
        "event.external_id": external_id, "event.line_count": line_count,
        **time_fields(at, time_zone),
    }
    for name, value in attributes.items():
        fields[f"event.attributes.{name}"] = value
    fields.update(member)
    return fields


def line_fields(line: LineIn, amount: int) -> dict[str, Any]:
    return {
        "line.sku": line.sku, "line.name": line.name, "line.category": line.category,
        "line.brand": line.brand, "line.labels": list(line.labels),
        "line.quantity": line.quantity, "line.unit_price": line.unit_price,
        "line.amount": amount,
    }


def split(amount: int, account_percent: int) -> tuple[int, int]:
    """(account share, user share): the user gets its percent rounded down, the account the
    remainder, so the shares always add up to ``amount``."""
    user = amount * (100 - account_percent) // 100
    return amount - user, user


def cumulative_part(value: int, done: int, total: int) -> int:
    """The part of ``value`` that corresponds to ``done`` of ``total`` (rounded down; exact
    when ``done == total``)."""
    if total <= 0:
        return value if done > 0 else 0
    if done >= total:
        return value
    return value * done // total


@dataclass(frozen=True)
class LineState:
    line_no: int
    quantity: int
    amount: int
    returned_quantity: int
    returned_amount: int


@dataclass(frozen=True)
class LineReturn:
    """What a return takes from one line (this return only)."""

    line_no: int
    quantity: int
    amount: int


class ReturnProblem(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def plan_line_return(
    state: LineState, quantity: int | None, amount: int | None, field: str
) -> LineReturn:
    """Turn a requested line return (by quantity, by amount, or everything left) into the
    quantity and amount it takes, never more than what is left."""
    left_q = state.quantity - state.returned_quantity
    left_a = state.amount - state.returned_amount
    if left_q <= 0 and left_a <= 0:
        raise ReturnProblem(field, f"line {state.line_no} is already fully returned")
    if quantity is None and amount is None:
        return LineReturn(state.line_no, left_q, left_a)
    if quantity is not None:
        if quantity <= 0 or quantity > left_q:
            raise ReturnProblem(f"{field}.quantity",
                                f"at most {left_q} of line {state.line_no} can be returned")
        done_q = state.returned_quantity + quantity
        done_a = cumulative_part(state.amount, done_q, state.quantity)
        if amount is not None and amount != done_a - state.returned_amount:
            if amount <= 0 or amount > left_a:
                raise ReturnProblem(f"{field}.amount",
                                    f"at most {left_a} of line {state.line_no} can be returned")
            done_a = state.returned_amount + amount
        return LineReturn(state.line_no, quantity, done_a - state.returned_amount)
    assert amount is not None
    if amount <= 0 or amount > left_a:
        raise ReturnProblem(f"{field}.amount",
                            f"at most {left_a} of line {state.line_no} can be returned")
    done_a = state.returned_amount + amount
    done_q = cumulative_part(state.quantity, done_a, state.amount)
    return LineReturn(state.line_no, done_q - state.returned_quantity, amount)


def award_reversal(
    award_amount: int, reversed_so_far: int, done: int, total: int
) -> int:
    """How much of an award this return gives back, once ``done`` of ``total`` is returned."""
    target = cumulative_part(award_amount, done, total)
    return max(0, min(award_amount, target) - reversed_so_far)


def sum_amounts(lines: Sequence[LineIn]) -> int:
    return sum(line_amount(line) for line in lines)
