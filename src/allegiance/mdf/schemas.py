"""HTTP shapes of co-marketing funds and claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from allegiance.kit.schemas import Input, Output


class FundCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    unit_id: str = Field(min_length=1, max_length=40, description="a money unit")
    budget: int = Field(ge=0, description="minor units")
    period_start: datetime
    period_end: datetime
    claim_deadline: datetime
    formula: dict[str, Any] = Field(
        default_factory=dict,
        description='e.g. {"percent": "50", "split_by_brands": true, "max": 500000}')
    accrual_percent: str | None = Field(
        None, max_length=20, description="allocate this share of each partner's purchases")


class FundRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    unit_id: str
    budget: int
    period_start: datetime
    period_end: datetime
    claim_deadline: datetime
    accrual_percent: str | None
    formula: dict[str, Any]
    ledger_account_id: str
    status: str


class AllocationIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    amount: int = Field(ge=1)


class AllocationRead(Output):
    id: str
    fund_id: str
    account_id: str
    ledger_account_id: str


class Accrued(BaseModel):
    allocated: int


class RequestIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    activity: str = Field(min_length=1, max_length=500)
    media: str | None = Field(None, max_length=64, description="outdoor, press, exhibition…")
    estimated_cost: int = Field(ge=1)


class PreapprovalIn(Input):
    amount: int | None = Field(None, ge=1, description="default: the formula on the estimate")


class ClaimIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    claim_id: str | None = Field(None, max_length=40, description="a pre-approved request")
    activity: str | None = Field(None, max_length=500)
    media: str | None = Field(None, max_length=64)
    actual_cost: int = Field(ge=0)
    other_brands: int = Field(0, ge=0, le=1000, description="other manufacturers shown")
    proof_ref: str = Field(min_length=1, max_length=1000)
    invoice_ref: str = Field(min_length=1, max_length=200)


class RejectIn(Input):
    reason: str = Field(min_length=1, max_length=1000)


class MdfClaimRead(Output):
    id: str
    fund_id: str
    allocation_id: str
    account_id: str
    activity: str
    media: str | None
    estimated_cost: int | None
    preapproved_amount: int | None
    actual_cost: int | None
    other_brands: int
    proof_ref: str | None
    invoice_ref: str | None
    amount: int
    status: str
    hold_id: str | None
    entry_id: str | None
    reason: str | None
    created_at: datetime
    claimed_at: datetime | None
    decided_at: datetime | None


class MdfClaimPage(BaseModel):
    items: list[MdfClaimRead]
    next_cursor: str | None


class PartnerViewRead(BaseModel):
    fund_id: str
    account_id: str
    allocated: int
    committed: int
    claimed: int
    paid: int
    expired: int
    remaining: int
