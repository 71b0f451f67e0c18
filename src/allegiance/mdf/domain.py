"""Pure logic of co-marketing funds: the reimbursement formula as data and the partner view.
No I/O.

A formula is a mapping::

    {"percent": "50", "split_by_brands": true, "max": 500000}

``percent`` of the actual cost; with ``split_by_brands`` the share falls in proportion to the
number of brands shown (BWT: 50% when only ours appears, 25% with one other manufacturer,
16.66% with two); ``max`` caps one claim (minor units). Amounts round down to the minor unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

CLAIM_STATUSES = ("requested", "preapproved", "claimed", "paid", "rejected", "expired")


class FormulaError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Formula:
    num: int
    den: int
    split_by_brands: bool = False
    max: int | None = None

    @staticmethod
    def parse(data: Mapping[str, Any]) -> Formula:
        known = {"percent", "split_by_brands", "max"}
        extra = set(data) - known
        if extra:
            raise FormulaError(f"formula.{sorted(extra)[0]}", "is not a formula field")
        try:
            percent = Decimal(str(data.get("percent", "100")))
        except InvalidOperation as exc:
            raise FormulaError("formula.percent", "must be a number") from exc
        if not percent.is_finite() or not 0 <= percent <= 100:
            raise FormulaError("formula.percent", "must be between 0 and 100")
        cap = data.get("max")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            raise FormulaError("formula.max", "must be a whole number >= 0")
        num, den = percent.as_integer_ratio()
        return Formula(num, den * 100, bool(data.get("split_by_brands", False)), cap)

    def reimbursement(self, cost: int, other_brands: int = 0) -> int:
        """What one claim of ``cost`` may be reimbursed, before the pre-approved ceiling."""
        if cost < 0 or other_brands < 0:
            raise FormulaError("actual_cost", "cost and brand count must not be negative")
        divisor = self.den * (1 + other_brands if self.split_by_brands else 1)
        amount = cost * self.num // divisor
        return amount if self.max is None else min(amount, self.max)


def accrual_target(volume: int, num: int, den: int) -> int:
    """A fund accrued as a share of the partner's purchases: ``volume * num / den``, down."""
    return max(volume, 0) * num // den


@dataclass(frozen=True)
class PartnerView:
    allocated: int
    committed: int
    claimed: int
    paid: int
    expired: int

    @property
    def remaining(self) -> int:
        return self.allocated - self.committed - self.paid - self.expired
