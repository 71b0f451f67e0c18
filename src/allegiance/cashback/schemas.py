"""HTTP shapes of rebate schedules, accruals, discount schedules, quotes and orders."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from allegiance.kit.schemas import Input, Output


class RebateScheduleCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    unit_id: str = Field(min_length=1, max_length=40, description="a money unit")
    period: Literal["month", "quarter", "year"]
    brackets: list[dict[str, Any]] = Field(
        min_length=1, max_length=50,
        description='[{"up_to": 500000, "percent": "1"}, …, {"percent": "1.5"}]')
    categories: list[str] = Field(default_factory=list, max_length=500)
    clawback_days: int = Field(90, ge=0, le=3650)


class RebateScheduleRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    unit_id: str
    period: str
    brackets: list[dict[str, Any]]
    categories: list[str]
    clawback_days: int
    active: bool


class AccrualRead(Output):
    id: str
    schedule_id: str
    account_id: str
    period_start: datetime
    period_end: datetime
    volume: int
    amount: int
    clawed_back: int
    status: str
    hold_id: str | None
    entry_id: str | None


class RunReport(BaseModel):
    accrued: int
    settled: int
    clawed_back: int


class DiscountScheduleCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    period: Literal["month", "quarter", "year", "lifetime"]
    brackets: list[dict[str, Any]] = Field(
        min_length=1, max_length=50,
        description='[{"from": 0, "percent": "0"}, {"from": 100000, "percent": "3"}]')
    next_order_percent: str | None = Field(None, max_length=20)
    next_order_min_amount: int = Field(0, ge=0)
    next_order_valid_days: int | None = Field(None, ge=1, le=3650)


class DiscountScheduleRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    period: str
    brackets: list[dict[str, Any]]
    next_order_percent: str | None
    next_order_min_amount: int
    next_order_valid_days: int | None
    active: bool


class QuoteIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    amount: int = Field(ge=0, description="order amount, minor units")
    coupon_code: str | None = Field(None, max_length=40)


class OrderIn(QuoteIn):
    order_id: str = Field(min_length=1, max_length=200)


class QuoteRead(BaseModel):
    schedule_id: str | None
    volume: int
    percent: str
    discount: int
    coupon_code: str | None
    coupon_percent: str | None
    coupon_discount: int
    total_discount: int
    payable: int


class CouponRead(Output):
    id: str
    schedule_id: str
    account_id: str
    code: str
    percent: str
    issued_for_order: str
    issued_at: datetime
    expires_at: datetime | None
    used_at: datetime | None
    used_for_order: str | None


class OrderRead(BaseModel):
    quote: QuoteRead
    next_order_coupon: CouponRead | None
