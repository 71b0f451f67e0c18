"""HTTP shapes of partner sales claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from allegiance.kit.schemas import Input, Output


class ClaimLine(Input):
    sku: str | None = Field(None, max_length=120)
    name: str | None = Field(None, max_length=300)
    category: str | None = Field(None, max_length=120)
    brand: str | None = Field(None, max_length=120)
    labels: list[str] = Field(default_factory=list, max_length=50)
    quantity: int = Field(1, ge=1)
    unit_price: int | None = Field(None, ge=0, description="minor units")
    amount: int | None = Field(None, ge=0, description="minor units; default quantity × price")


class ClaimCreate(Input):
    account_id: str = Field(min_length=1, max_length=40)
    user_id: str | None = Field(None, max_length=40, description="the rep who sold (SPIFFs)")
    invoice_number: str = Field(min_length=1, max_length=100)
    invoice_date: datetime
    seller: str = Field(min_length=1, max_length=200, description="who issued the invoice")
    currency: str | None = Field(None, min_length=3, max_length=3)
    lines: list[ClaimLine] = Field(min_length=1, max_length=500)
    proof_ref: str = Field(min_length=1, max_length=1000,
                           description="reference of the uploaded proof file (URL or key)")


class Rejection(Input):
    reason: str = Field(min_length=1, max_length=1000)


class ClaimRead(Output):
    id: str
    program_id: str
    account_id: str
    user_id: str | None
    invoice_number: str
    invoice_date: datetime
    seller: str
    invoice_key: str
    currency: str | None
    amount: int
    lines: list[dict[str, Any]]
    proof_ref: str
    status: str
    duplicate_of: str | None
    reason: str | None
    submitted_by: str
    submitted_at: datetime
    review_due_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    event_id: str | None


class ClaimPage(BaseModel):
    items: list[ClaimRead]
    next_cursor: str | None
