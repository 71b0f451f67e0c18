"""HTTP shapes of referral plans, codes, referrals and statements."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from allegiance.kit.schemas import Input, Output


class PlanCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    window_days: int = Field(30, ge=1, le=3650, description="attribution window")
    lock_days: int = Field(30, ge=0, le=3650, description="pending until this many days")
    requires_application: bool = Field(False, description="affiliates apply and are reviewed")
    commission_unit_id: str | None = Field(None, max_length=40)
    commission_rates: dict[str, str] = Field(
        default_factory=dict, description='percent by category, "*" for the rest')
    bounty_unit_id: str | None = Field(None, max_length=40)
    bounty: int = Field(0, ge=0, description="fixed reward to the referrer per sign-up")
    referee_reward: int = Field(0, ge=0, description="reward to the new member (two-sided)")
    link_base: str | None = Field(None, max_length=500)
    attribution: Literal["signup", "click"] = Field(
        "signup", description="signup: the window opens at the member's sign-up (Coursera); "
        "click: a purchase goes to the latest click whose window covers it (Amazon)")


class PlanRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    window_days: int
    lock_days: int
    requires_application: bool
    commission_unit_id: str | None
    commission_rates: dict[str, Any]
    bounty_unit_id: str | None
    bounty: int
    referee_reward: int
    link_base: str | None
    attribution: str


class CodeCreate(Input):
    account_id: str = Field(min_length=1, max_length=40)
    application: dict[str, Any] = Field(default_factory=dict,
                                        description="what an affiliate tells the operator")


class CodeDecision(Input):
    reason: str | None = Field(None, max_length=1000)


class CodeRead(BaseModel):
    id: str
    plan_id: str
    account_id: str
    code: str
    status: str
    link: str | None
    reason: str | None


class SignupIn(Input):
    code: str = Field(min_length=1, max_length=64)
    account_id: str = Field(min_length=1, max_length=40, description="the new member")
    email: str | None = Field(None, max_length=320)
    tax_id: str | None = Field(None, max_length=64)
    device_hash: str | None = Field(None, max_length=128)
    visitor_id: str | None = Field(None, min_length=1, max_length=128,
                                   description="the visitor's earlier clicks become the member's")


class ClickIn(Input):
    code: str = Field(min_length=1, max_length=64)
    account_id: str | None = Field(None, min_length=1, max_length=40,
                                   description="the member who clicked, when known")
    visitor_id: str | None = Field(None, min_length=1, max_length=128,
                                   description="an anonymous visitor, matched to a member later")


class VisitorMatch(Input):
    account_id: str = Field(min_length=1, max_length=40)


class Matched(BaseModel):
    clicks: int


class ReferralRead(Output):
    id: str
    plan_id: str
    kind: str
    referrer_account_id: str
    referred_account_id: str | None
    visitor_id: str | None
    status: str
    reason: str | None
    signed_up_at: datetime
    window_ends_at: datetime


class EventIn(Input):
    event_id: str = Field(min_length=1, max_length=40)


class RewardLine(BaseModel):
    id: str
    referral_id: str
    kind: str
    event_id: str
    line_no: int
    unit_id: str
    amount: int
    reversed_amount: int
    state: str
    lock_at: datetime


class Statement(BaseModel):
    plan_id: str
    account_id: str
    pending: int
    payable: int
    reversed: int
    items: list[RewardLine]


class Synced(BaseModel):
    purchases: int = Field(description="purchases attributed or reconciled by this call")
    done: bool = Field(description="false: more are left; call again (each call resumes)")
