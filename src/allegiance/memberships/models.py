"""Paid plans, subscriptions and the fees recorded against them, and perks unlocked by plan
or tier."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class Plan(Base):
    """A membership plan: a one-time, monthly or yearly fee, a free trial, days of grace."""

    __tablename__ = "membership_plan"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("fee >= 0 AND trial_days >= 0 AND grace_days >= 0", name="non_negative"),
        CheckConstraint("billing IN ('one_time', 'monthly', 'yearly')", name="billing"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    fee: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    billing: Mapped[str] = mapped_column(String(10))
    trial_days: Mapped[int] = mapped_column(default=0)
    grace_days: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime]


class Subscription(Base):
    """An account's subscription to a plan. ``status`` is what it was when last written;
    reads compute the status at the clock from the dates (a job writes the changes)."""

    __tablename__ = "membership_subscription"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "plan_id"],
                             ["membership_plan.tenant_id", "membership_plan.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint("status IN ('trial', 'active', 'grace', 'lapsed', 'cancelled')",
                        name="status"),
        Index("ix_membership_subscription_account", "tenant_id", "program_id", "account_id"),
        Index("ix_membership_subscription_status", "tenant_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    plan_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime]
    trial_ends_at: Mapped[datetime | None]
    paid_until: Mapped[datetime | None]
    paid: Mapped[bool] = mapped_column(default=False)
    anchor_day: Mapped[int | None]
    fees: Mapped[int] = mapped_column(default=0)
    cancel_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Charge(Base):
    """A fee recorded against a subscription (no payment rails: the integrator reports it)."""

    __tablename__ = "membership_charge"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "subscription_id"],
                             ["membership_subscription.tenant_id", "membership_subscription.id"]),
        UniqueConstraint("tenant_id", "subscription_id", "external_ref"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime | None]
    external_ref: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime]


class Perk(Base):
    """An entitlement (priority support, account manager, early access…) unlocked by any of
    ``plans`` (plan codes) or ``tiers`` (tier level names)."""

    __tablename__ = "membership_perk"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    plans: Mapped[list[Any]]
    tiers: Mapped[list[Any]]
    created_at: Mapped[datetime]


class AccountManager(Base):
    """The operator user who is an account's personal manager (Utinet's manager of a large
    corporate client): one per account; prices its custom requests."""

    __tablename__ = "account_manager"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        ForeignKeyConstraint(["tenant_id", "operator_id"],
                             ["operator_user.tenant_id", "operator_user.id"]),
        Index("ix_account_manager_operator", "tenant_id", "operator_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    operator_id: Mapped[str] = mapped_column(ID)
    assigned_at: Mapped[datetime]
    assigned_by: Mapped[str] = mapped_column(String(200))


class CustomRequest(Base):
    """A member's request for an item outside the catalogue: requested → quoted (the manager's
    price in a unit) → accepted (the price held in the account's wallet) → fulfilled (posted);
    or declined, or cancelled (a held price is given back)."""

    __tablename__ = "custom_request"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint(
            "status IN ('requested', 'quoted', 'accepted', 'fulfilled', 'declined', "
            "'cancelled')", name="status"),
        CheckConstraint("price IS NULL OR price > 0", name="price_positive"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_custom_request_account", "tenant_id", "program_id", "account_id"),
        Index("ix_custom_request_manager", "tenant_id", "manager_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str | None] = mapped_column(ID)
    manager_id: Mapped[str] = mapped_column(ID)
    description: Mapped[str] = mapped_column(String(2000))
    quantity: Mapped[int]
    status: Mapped[str] = mapped_column(String(10))
    unit_id: Mapped[str | None] = mapped_column(ID)
    price: Mapped[int | None]
    quote_note: Mapped[str | None] = mapped_column(String(1000))
    quote_expires_at: Mapped[datetime | None]
    hold_id: Mapped[str | None] = mapped_column(ID)
    entry_id: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    quoted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    fulfilled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
