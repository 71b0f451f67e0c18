"""HTTP shapes of plans, subscriptions, charges and perks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from allegiance.kit.schemas import Input, Output


class PlanCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    fee: int = Field(ge=0, le=10**15, description="minor units of the currency")
    currency: str | None = Field(None, min_length=3, max_length=3,
                                 description="default: the program's base currency")
    billing: Literal["one_time", "monthly", "yearly"]
    trial_days: int = Field(0, ge=0, le=3650)
    grace_days: int = Field(0, ge=0, le=3650)


class PlanRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    fee: int
    currency: str
    billing: str
    trial_days: int
    grace_days: int
    status: str


class PlanList(Output):
    items: list[PlanRead]


class SubscribeIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    plan: str = Field(min_length=1, max_length=64, description="plan code")
    external_ref: str | None = Field(None, min_length=1, max_length=200,
                                     description="reference of the first fee (no trial)")


class SubscriptionRead(Output):
    id: str
    program_id: str
    plan_id: str
    account_id: str
    status: str = Field(description="at the time of the request")
    status_until: datetime | None = Field(description="when the status changes if nothing "
                                                      "happens (None: never)")
    started_at: datetime
    trial_ends_at: datetime | None
    paid_until: datetime | None
    paid: bool
    fees: int
    cancel_at: datetime | None
    cancelled_at: datetime | None


class SubscriptionList(Output):
    items: list[SubscriptionRead]


class PaymentIn(Input):
    external_ref: str = Field(min_length=1, max_length=200,
                              description="the payment's reference (idempotent)")
    amount: int | None = Field(None, ge=0, le=10**15, description="default: the plan's fee")


class ChargeRead(Output):
    id: str
    subscription_id: str
    account_id: str
    amount: int
    currency: str
    period_start: datetime
    period_end: datetime | None
    external_ref: str
    recorded_at: datetime


class ChargeList(Output):
    items: list[ChargeRead]


class CancelIn(Input):
    at_period_end: bool = True


class PerkCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    plans: list[str] = Field(default_factory=list, max_length=100,
                             description="plan codes that unlock it")
    tiers: list[str] = Field(default_factory=list, max_length=100,
                             description="tier levels that unlock it")


class PerkRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    description: str
    plans: list[str]
    tiers: list[str]


class PerkList(Output):
    items: list[PerkRead]


class PerkStateRead(Output):
    code: str
    name: str
    allowed: bool
    reason: str
    until: datetime | None = Field(description="while nothing changes (None: open-ended)")


class PerkStateList(Output):
    items: list[PerkStateRead]
