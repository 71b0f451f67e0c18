"""Programs, their units, and the tenant's API keys."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class Program(Base):
    __tablename__ = "program"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint(
            "enrolment_mode IN ('open', 'application', 'invitation', 'automatic')",
            name="enrolment_mode",
        ),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    base_currency: Mapped[str] = mapped_column(String(3))
    enrolment_mode: Mapped[str] = mapped_column(String(20), default="open")
    # ISO 3166 codes (with subdivisions such as "US-CA"); empty means everywhere.
    eligible_regions: Mapped[list[Any]] = mapped_column(default=list)
    # Manual adjustments whose absolute amount is above this need a second approver.
    adjustment_approval_threshold: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default="active")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class Unit(Base):
    """What a wallet holds: a points currency of its own name, or money in an ISO currency."""

    __tablename__ = "unit"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("kind IN ('points', 'money')", name="kind"),
        CheckConstraint("negative_floor <= 0", name="negative_floor"),
        CheckConstraint("value_in_base >= 0", name="value_in_base"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    # For money units the ISO currency; amounts are in its minor units.
    currency: Mapped[str | None] = mapped_column(String(3))
    # Value of one unit (one point, or one minor unit of money) in the base currency's major
    # units: 0.01 means a point is worth one cent. Used for liability.
    value_in_base: Mapped[Decimal] = mapped_column(Numeric(24, 10))
    # How far below zero a member wallet may go (0 forbids negative balances).
    negative_floor: Mapped[int] = mapped_column(default=0)
    # {"kind": "never"} | {"kind": "after_months", "months": N}
    # | {"kind": "end_of_period", "period": "month"|"quarter"|"year", "periods_after": N}
    # | {"kind": "inactivity", "months": N}
    expiry_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    transferable: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class ApiKey(Base):
    """A tenant's API key; only a SHA-256 of the secret is stored."""

    __tablename__ = "api_key"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        Index("ix_api_key_lookup", "id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))
    # After a rotation the previous secret keeps working until this moment (grace period).
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None]
    rotated_at: Mapped[datetime | None]
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    # Programs this key may touch; empty means all of the tenant's programs.
    program_ids: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
