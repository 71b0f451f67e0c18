"""Request and response bodies of the members API. Inputs forbid unknown fields, so status,
merge fields, tier and tenant can never be written through a body."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from allegiance.kit.money import MAX_AMOUNT

Role = Literal["owner", "manager", "rep", "viewer"]
EnrolmentStatus = Literal["applied", "invited", "active", "suspended", "closed", "rejected"]

_INPUT = ConfigDict(extra="forbid")
_OUTPUT = ConfigDict(from_attributes=True)


class ExternalId(BaseModel):
    model_config = _INPUT

    source: str = Field(min_length=1, max_length=64, examples=["crm"])
    external_id: str = Field(min_length=1, max_length=200, examples=["C-1042"])


class AccountCreate(BaseModel):
    model_config = _INPUT

    name: str = Field(min_length=1, max_length=200)
    parent_id: str | None = Field(default=None, max_length=40)
    member_number: str | None = Field(default=None, min_length=1, max_length=32,
                                      description="Generated (M00000001…) when absent.")
    region: str | None = Field(default=None, max_length=10, examples=["US-CA"])
    email: str | None = Field(default=None, max_length=320)
    tax_id: str | None = Field(default=None, max_length=64)
    attributes: dict[str, Any] = Field(default_factory=dict)
    external_ids: list[ExternalId] = Field(default_factory=list, max_length=50)


class AccountUpdate(BaseModel):
    model_config = _INPUT

    name: str | None = Field(default=None, min_length=1, max_length=200)
    parent_id: str | None = Field(default=None, max_length=40,
                                  description="Move the account; null makes it a root.")
    member_number: str | None = Field(default=None, min_length=1, max_length=32)
    region: str | None = Field(default=None, max_length=10)
    email: str | None = Field(default=None, max_length=320)
    tax_id: str | None = Field(default=None, max_length=64)
    attributes: dict[str, Any] | None = None


class AccountRead(BaseModel):
    model_config = _OUTPUT

    id: str
    parent_id: str | None
    name: str
    member_number: str
    region: str | None
    email: str | None
    tax_id: str | None
    attributes: dict[str, Any]
    status: str
    merged_into_id: str | None
    external_ids: list[ExternalId] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class AccountPage(BaseModel):
    items: list[AccountRead]
    next_cursor: str | None


class MergeRequest(BaseModel):
    model_config = _INPUT

    into_account_id: str = Field(min_length=1, max_length=40)
    reason: str = Field(min_length=1, max_length=1000)


class UserCreate(BaseModel):
    model_config = _INPUT

    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    role: Role
    external_id: str | None = Field(default=None, max_length=200)


class UserUpdate(BaseModel):
    model_config = _INPUT

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    role: Role | None = None
    external_id: str | None = Field(default=None, max_length=200)
    status: Literal["active", "disabled"] | None = None


class UserRead(BaseModel):
    model_config = _OUTPUT

    id: str
    account_id: str
    name: str
    email: str | None
    role: str
    external_id: str | None
    status: str
    created_at: datetime
    updated_at: datetime


class EnrolmentCreate(BaseModel):
    model_config = _INPUT

    account_id: str = Field(min_length=1, max_length=40)
    application: dict[str, Any] | None = Field(
        default=None, description="What the applicant sends (programs by application).")
    invitation_token: str | None = Field(default=None, min_length=1, max_length=200)


class EnrolmentRead(BaseModel):
    model_config = _OUTPUT

    id: str
    program_id: str
    account_id: str
    status: str
    tier: str | None
    application: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class EnrolmentPage(BaseModel):
    items: list[EnrolmentRead]
    next_cursor: str | None


class StatusChange(BaseModel):
    model_config = _INPUT

    to_status: EnrolmentStatus
    reason: str | None = Field(default=None, max_length=1000)


class Approval(BaseModel):
    model_config = _INPUT

    reason: str | None = Field(default=None, max_length=1000)


class Rejection(BaseModel):
    model_config = _INPUT

    reason: str = Field(min_length=1, max_length=1000)


class EnrolmentChangeRead(BaseModel):
    model_config = _OUTPUT

    id: str
    from_status: str | None
    to_status: str
    reason: str | None
    actor: str
    at: datetime


class InvitationCreate(BaseModel):
    model_config = _INPUT

    email: str = Field(min_length=3, max_length=320)
    account_id: str | None = Field(default=None, max_length=40)
    expires_in_days: int = Field(default=14, ge=1, le=365)


class InvitationRead(BaseModel):
    model_config = _OUTPUT

    id: str
    program_id: str
    account_id: str | None
    email: str
    status: str
    created_at: datetime
    expires_at: datetime


class InvitationIssued(InvitationRead):
    token: str = Field(description="Shown once; only its hash is stored.")


class InvitationAccept(BaseModel):
    model_config = _INPUT

    token: str = Field(min_length=1, max_length=200)
    account_id: str = Field(min_length=1, max_length=40)


class TransferCreate(BaseModel):
    model_config = _INPUT

    from_wallet_id: str = Field(min_length=1, max_length=40)
    to_wallet_id: str = Field(min_length=1, max_length=40)
    amount: int = Field(gt=0, lt=MAX_AMOUNT)
    entry_key: str | None = Field(default=None, min_length=1, max_length=200)


class TransferRead(BaseModel):
    model_config = _OUTPUT

    entry_id: str
    seq: int
    created: bool
