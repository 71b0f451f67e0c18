"""Volume rebate schedules and their accruals per member and period; cumulative discount
schedules and the next-order coupons they issue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class RebateSchedule(Base):
    __tablename__ = "rebate_schedule"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "unit_id"], ["unit.tenant_id", "unit.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("period IN ('month', 'quarter', 'year')", name="period"),
        CheckConstraint("clawback_days >= 0", name="clawback_days"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[str] = mapped_column(ID)
    period: Mapped[str] = mapped_column(String(8))
    brackets: Mapped[list[Any]]
    # Only lines of these categories count (empty: the whole purchase).
    categories: Mapped[list[Any]]
    # Returns this long after the period end still claw the rebate back.
    clawback_days: Mapped[int] = mapped_column(default=90)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class RebateAccrual(Base):
    """One member's rebate for one period: ``open`` while the period runs (the accrued
    amount held as pending in the wallet), ``settled`` after the true-up (posted)."""

    __tablename__ = "rebate_accrual"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "schedule_id"],
                             ["rebate_schedule.tenant_id", "rebate_schedule.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "schedule_id", "account_id", "period_start"),
        Index("ix_rebate_accrual_status", "tenant_id", "schedule_id", "status"),
        CheckConstraint("status IN ('open', 'settled')", name="status"),
        CheckConstraint("amount >= 0 AND clawed_back >= 0", name="amounts"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    schedule_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    volume: Mapped[int] = mapped_column(default=0)
    amount: Mapped[int] = mapped_column(default=0)
    clawed_back: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(8))
    revision: Mapped[int] = mapped_column(default=0)
    hold_id: Mapped[str | None] = mapped_column(ID)
    entry_id: Mapped[str | None] = mapped_column(ID)
    updated_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]


class DiscountSchedule(Base):
    """A discount that grows with the member's cumulative order volume in a period, and
    optionally a coupon for the next order after each qualifying order."""

    __tablename__ = "discount_schedule"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("period IN ('month', 'quarter', 'year', 'lifetime')", name="period"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(8))
    brackets: Mapped[list[Any]]
    next_order_percent: Mapped[str | None] = mapped_column(String(20))
    next_order_min_amount: Mapped[int] = mapped_column(default=0)
    next_order_valid_days: Mapped[int | None]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class NextOrderCoupon(Base):
    """A discount on the member's next order, issued once per qualifying order; single use,
    with an expiry."""

    __tablename__ = "next_order_coupon"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "schedule_id"],
                             ["discount_schedule.tenant_id", "discount_schedule.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("tenant_id", "schedule_id", "issued_for_order"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    schedule_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(40))
    percent: Mapped[str] = mapped_column(String(20))
    issued_for_order: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]
    used_for_order: Mapped[str | None] = mapped_column(String(200))
