"""HTTP shapes of rewards, code pools, redemptions and coupons."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["physical", "egift", "experience", "service", "coupon", "cashout", "donation",
               "marketing"]
Period = Literal["day", "month", "year", "all"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _RewardOptions(_In):
    description: str | None = Field(None, max_length=2000)
    stock: int | None = Field(None, ge=0, description="None: unlimited")
    min_balance: int | None = Field(None, ge=0, description="available balance needed (cash-out)")
    eligible_regions: list[str] | None = Field(None, max_length=300)
    eligible_tiers: list[str] | None = Field(None, max_length=100)
    eligible_segments: list[str] | None = Field(
        None, max_length=100, description="values of the account attribute \"segment\"")
    causes: list[str] | None = Field(None, max_length=100, description="donation causes")
    limit_per_member: int | None = Field(None, ge=1)
    limit_period: Period | None = None
    visible_from: datetime | None = None
    visible_to: datetime | None = None
    available_from: datetime | None = None
    available_to: datetime | None = None
    requires_approval: bool | None = None
    code_valid_days: int | None = Field(None, ge=1, description="coupon / e-gift code validity")


class RewardCreate(_RewardOptions):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    unit_id: str = Field(min_length=1, max_length=40)
    cost: int = Field(ge=1, description="per item, in the unit")


class RewardUpdate(_RewardOptions):
    name: str | None = Field(None, min_length=1, max_length=200)
    cost: int | None = Field(None, ge=1)
    status: Literal["active", "retired"] | None = None


class RewardRead(_Out):
    id: str
    program_id: str
    code: str
    name: str
    description: str
    kind: str
    unit_id: str
    cost: int
    stock: int | None
    min_balance: int | None
    eligible_regions: list[str]
    eligible_tiers: list[str]
    eligible_segments: list[str]
    causes: list[str]
    limit_per_member: int | None
    limit_period: str
    visible_from: datetime | None
    visible_to: datetime | None
    available_from: datetime | None
    available_to: datetime | None
    requires_approval: bool
    code_valid_days: int | None
    status: str
    created_at: datetime
    updated_at: datetime


class RewardPage(BaseModel):
    items: list[RewardRead]
    next_cursor: str | None


class CodesUpload(_In):
    codes: list[str] = Field(min_length=1, max_length=10000)


class CodesAdded(BaseModel):
    added: int
    free: int


class RedemptionCreate(_In):
    reward_id: str = Field(min_length=1, max_length=40)
    account_id: str = Field(min_length=1, max_length=40)
    quantity: int = Field(1, ge=1, le=10000)
    user_id: str | None = Field(None, max_length=40)
    cause: str | None = Field(None, max_length=200)
    shipping: dict[str, Any] | None = Field(None, description="address and contact")
    pay_from: Literal["account", "user"] = Field(
        "account", description="the company's wallet, or the wallet of user_id (an employee)")


class Decision(_In):
    reason: str | None = Field(None, max_length=500)


class Fulfilment(_In):
    shipping: dict[str, Any] | None = Field(None, description="e.g. carrier, tracking, status")


class ShippingUpdate(_In):
    shipping_status: Literal["preparing", "shipped", "in_transit", "delivered", "returned", "lost"]
    carrier: str | None = Field(None, max_length=100)
    tracking: str | None = Field(None, max_length=200)
    note: str | None = Field(None, max_length=500)


class RedemptionRead(_Out):
    id: str
    program_id: str
    reward_id: str
    account_id: str
    user_id: str | None
    quantity: int
    points: int
    status: str
    hold_id: str | None
    entry_id: str | None
    reversal_entry_id: str | None
    code: str | None
    code_expires_at: datetime | None
    code_used_at: datetime | None
    shipping: dict[str, Any]
    cause: str | None
    reason: str | None
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    fulfilled_at: datetime | None


class RedemptionPage(BaseModel):
    items: list[RedemptionRead]
    next_cursor: str | None


class CouponIn(_In):
    code: str = Field(min_length=1, max_length=200)


class CouponRead(BaseModel):
    code: str
    valid: bool
    redemption_id: str
    reward_id: str
    account_id: str
    expires_at: datetime | None
    used_at: datetime | None
