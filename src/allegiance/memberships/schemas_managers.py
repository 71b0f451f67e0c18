"""HTTP shapes of account managers and custom requests."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from allegiance.kit.schemas import Input, Output


class ManagerIn(Input):
    operator_id: str = Field(min_length=1, max_length=40,
                             description="the operator user who manages the account")


class ManagerRead(Output):
    account_id: str
    operator_id: str
    assigned_at: datetime
    assigned_by: str


class ManagedList(Output):
    items: list[ManagerRead]


class RequestCreate(Input):
    account_id: str = Field(min_length=1, max_length=40)
    user_id: str | None = Field(None, max_length=40)
    description: str = Field(min_length=1, max_length=2000,
                             description="the item wanted (not in the catalogue)")
    quantity: int = Field(1, ge=1, le=10**6)


class QuoteIn(Input):
    operator_id: str = Field(min_length=1, max_length=40, description="the account's manager")
    unit_id: str = Field(min_length=1, max_length=40)
    price: int = Field(ge=1, le=10**15, description="in the unit, for the whole request")
    note: str | None = Field(None, max_length=1000)
    valid_days: int | None = Field(None, ge=1, le=3650,
                                   description="the quote expires after this many days")


class ManagerAction(Input):
    operator_id: str = Field(min_length=1, max_length=40, description="the account's manager")


class ReasonIn(Input):
    reason: str | None = Field(None, max_length=500)


class RequestRead(Output):
    id: str
    program_id: str
    account_id: str
    user_id: str | None
    manager_id: str
    description: str
    quantity: int
    status: str
    unit_id: str | None
    price: int | None
    quote_note: str | None
    quote_expires_at: datetime | None
    hold_id: str | None
    entry_id: str | None
    reason: str | None
    created_at: datetime
    quoted_at: datetime | None
    decided_at: datetime | None
    fulfilled_at: datetime | None


class RequestList(Output):
    items: list[RequestRead]
