"""HTTP shapes of payout policies and batches."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from allegiance.kit.schemas import Input, Output


class PolicyIn(Input):
    withdrawable: bool = Field(description="false: store credit, spendable only at the operator")
    minimum: int = Field(0, ge=0, description="smallest payout, minor units")


class PolicyRead(Output):
    unit_id: str
    withdrawable: bool
    minimum: int


class BatchCreate(Input):
    unit_id: str = Field(min_length=1, max_length=40)
    label: str = Field(min_length=1, max_length=100, description="e.g. 2026-11")


class BatchRead(Output):
    id: str
    program_id: str
    unit_id: str
    label: str
    status: str
    total: int
    items: int
    created_at: datetime
    closed_at: datetime | None


class ItemRead(Output):
    id: str
    batch_id: str
    wallet_id: str
    owner_type: str
    owner_id: str
    amount: int
    status: str
    hold_id: str
    entry_id: str | None
    reference: str | None
    failure_reason: str | None


class BatchItems(BaseModel):
    batch: BatchRead
    items: list[ItemRead]


class PaidIn(Input):
    reference: str | None = Field(None, max_length=200, description="the payment's reference")


class FailedIn(Input):
    reason: str = Field(min_length=1, max_length=500)


class StatementLineRead(BaseModel):
    entry_id: str
    seq: int
    effective_at: datetime
    category: str
    kind: str
    source_type: str
    source_id: str
    owner_type: str
    owner_id: str
    unit: str
    amount: int
    detail: str
    currency: str = Field(description="the program's base currency; empty when the unit has "
                                      "no value")
    value: Decimal | None = Field(description="the amount's value in that currency (unit "
                                              "value_in_base × amount, to the minor unit)")


class StatementRead(BaseModel):
    program_id: str
    start: datetime
    end: datetime
    currency: str = Field(description="the base currency of every value")
    totals: dict[str, dict[str, int]]
    value_totals: dict[str, dict[str, Decimal]] = Field(
        description="{unit: {category: net value}} for the units that have a value")
    lines: list[StatementLineRead]
