"""Pydantic I/O models of tenants, programs, units and API keys.

Inputs forbid unknown fields, so protected fields (tenant, status, ids, timestamps) can never
be written through a body. Amounts and thresholds are strict integers.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from allegiance.kit.money import MAX_AMOUNT
from allegiance.kit.schemas import Input as _Input
from allegiance.kit.schemas import Output as _Output

Code = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
Scope = Literal["admin", "integration", "read"]


class ExpiryPolicyIn(_Input):
    """When points expire: ``never``; ``after_months`` (months); ``end_of_period`` (period,
    periods_after); ``inactivity`` (months without activity)."""

    kind: Literal["never", "after_months", "end_of_period", "inactivity"]
    months: int | None = Field(default=None, strict=True, ge=1, le=1200)
    period: Literal["month", "quarter", "year"] | None = None
    periods_after: int | None = Field(default=None, strict=True, ge=0, le=100)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class TenantRead(_Output):
    id: str
    name: str
    status: str
    created_at: datetime


# ---------------------------------------------------------------------------------------------
# Programs


class ProgramCreate(_Input):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    base_currency: str = Field(min_length=3, max_length=3)
    time_zone: str = Field(default="UTC", max_length=64)
    enrolment_mode: Literal["open", "application", "invitation", "automatic"] = "open"
    eligible_regions: list[str] = Field(default_factory=list, max_length=500)
    adjustment_approval_threshold: int | None = Field(default=None, strict=True, ge=0,
                                                      lt=MAX_AMOUNT)
    settings: dict[str, Any] = Field(default_factory=dict)


class ProgramUpdate(_Input):
    """Fields left out stay as they are; ``code`` and ``status`` cannot change here."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    base_currency: str | None = Field(default=None, min_length=3, max_length=3)
    time_zone: str | None = Field(default=None, max_length=64)
    enrolment_mode: Literal["open", "application", "invitation", "automatic"] | None = None
    eligible_regions: list[str] | None = Field(default=None, max_length=500)
    # null removes the threshold (no adjustment then needs a second approver).
    adjustment_approval_threshold: int | None = Field(default=None, strict=True, ge=0,
                                                      lt=MAX_AMOUNT)
    settings: dict[str, Any] | None = None


class ProgramRead(_Output):
    id: str
    code: str
    name: str
    base_currency: str
    time_zone: str
    enrolment_mode: str
    eligible_regions: list[str]
    adjustment_approval_threshold: int | None
    status: str
    settings: dict[str, Any]
    created_at: datetime


# ---------------------------------------------------------------------------------------------
# Units


class UnitCreate(_Input):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["points", "money"]
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    value_in_base: Decimal = Field(default=Decimal(0), ge=0, lt=10**14, decimal_places=10)
    negative_floor: int = Field(default=0, strict=True, le=0, gt=-MAX_AMOUNT)
    expiry_policy: ExpiryPolicyIn | None = None
    transferable: bool = True


class UnitUpdate(_Input):
    """Fields left out stay as they are; ``code``, ``kind`` and ``currency`` are fixed."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    value_in_base: Decimal | None = Field(default=None, ge=0, lt=10**14, decimal_places=10)
    negative_floor: int | None = Field(default=None, strict=True, le=0, gt=-MAX_AMOUNT)
    expiry_policy: ExpiryPolicyIn | None = None
    transferable: bool | None = None


class UnitRead(_Output):
    id: str
    program_id: str
    code: str
    name: str
    kind: str
    currency: str | None
    value_in_base: Decimal
    negative_floor: int
    expiry_policy: dict[str, Any]
    transferable: bool
    created_at: datetime


# ---------------------------------------------------------------------------------------------
# API keys


class ApiKeyCreate(_Input):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    # Limit the key to these programs; empty means every program of the tenant.
    program_ids: list[str] = Field(default_factory=list, max_length=100)
    expires_at: AwareDatetime | None = None


class ApiKeyRead(_Output):
    """An API key as listed: never its secret nor the secret's hash."""

    id: str
    name: str
    scopes: list[str]
    program_ids: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="Last authenticated use (recorded at most once a minute per process).")
    rotated_at: datetime | None = None
    previous_secret_expires_at: datetime | None = Field(
        default=None, description="Until when the secret replaced by the last rotation works.")


class ApiKeyRotate(_Input):
    grace_seconds: int = Field(
        default=0, ge=0, le=7 * 24 * 3600,
        description="How long the old secret keeps working (0: refused at once).")


class ApiKeyIssued(ApiKeyRead):
    """A newly created key; ``secret`` is shown this once and never again."""

    secret: str


class Page(BaseModel):
    next_cursor: str | None


class ProgramPage(Page):
    items: list[ProgramRead]


class UnitPage(Page):
    items: list[UnitRead]


class ApiKeyPage(Page):
    items: list[ApiKeyRead]
