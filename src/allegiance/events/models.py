"""Events (purchases, activities, returns), their lines, what each earned, and the running
member counters rules can read."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class Event(Base):
    """One reported business event. ``(program, source, external_id)`` is unique: a replayed
    event is found, never earned twice. ``account_id`` is null while the event is unmatched."""

    __tablename__ = "event"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "source", "external_id"),
        CheckConstraint("kind IN ('purchase', 'activity', 'return')", name="kind"),
        CheckConstraint("status IN ('processed', 'unmatched', 'rejected')", name="status"),
        CheckConstraint("reported_by IN ('member', 'operator', 'third_party')",
                        name="reported_by"),
        Index("ix_event_program_status", "tenant_id", "program_id", "status"),
        Index("ix_event_account", "tenant_id", "account_id"),
        Index("ix_event_original", "tenant_id", "original_event_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(10))
    activity_type: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(120))
    external_id: Mapped[str] = mapped_column(String(200))
    reported_by: Mapped[str] = mapped_column(String(12))
    reporter_account_id: Mapped[str | None] = mapped_column(ID)
    account_id: Mapped[str | None] = mapped_column(ID)
    match_key: Mapped[dict[str, Any]] = mapped_column(default=dict)
    user_id: Mapped[str | None] = mapped_column(ID)
    occurred_at: Mapped[datetime]
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(default=0)
    # An event reported in another currency than the program's: what was sent, and the rate
    # (base per unit, of the day ``fx_date``) that turned it into ``currency``/``amount``.
    original_currency: Mapped[str | None] = mapped_column(String(3))
    original_amount: Mapped[int | None]
    fx_rate: Mapped[Decimal | None] = mapped_column(Numeric(24, 10))
    fx_date: Mapped[date | None] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(default=0)
    returned_amount: Mapped[int] = mapped_column(default=0)
    channel: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(1000))
    original_event_id: Mapped[str | None] = mapped_column(ID)
    version: Mapped[int | None]
    created_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class EventLine(Base):
    """A purchase line (or, on a return, the original line and what is given back)."""

    __tablename__ = "event_line"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "event_id"], ["event.tenant_id", "event.id"]),
        CheckConstraint("returned_quantity >= 0 AND returned_amount >= 0", name="returned"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    line_no: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str | None] = mapped_column(String(120))
    name: Mapped[str | None] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(120))
    brand: Mapped[str | None] = mapped_column(String(120))
    labels: Mapped[list[Any]] = mapped_column(default=list)
    quantity: Mapped[int] = mapped_column(default=1)
    unit_price: Mapped[int | None]
    amount: Mapped[int] = mapped_column(default=0)
    returned_quantity: Mapped[int] = mapped_column(default=0)
    returned_amount: Mapped[int] = mapped_column(default=0)


class EventAward(Base):
    """One effect an event earned: a posting pair (``entry_id``: debit at ``entry_line_no``,
    credit at ``entry_line_no + 1``), a pending hold, a tier credit, a badge or a coupon."""

    __tablename__ = "event_award"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "event_id"], ["event.tenant_id", "event.id"]),
        CheckConstraint("reversed_amount >= 0 AND reversed_amount <= amount",
                        name="reversed_le_amount"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    award_no: Mapped[int] = mapped_column(primary_key=True)
    rule_code: Mapped[str] = mapped_column(String(120))
    effect: Mapped[int]
    line_no: Mapped[int | None]
    type: Mapped[str] = mapped_column(String(32))
    unit_code: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int]
    owner_type: Mapped[str | None] = mapped_column(String(10))
    owner_id: Mapped[str | None] = mapped_column(ID)
    entry_id: Mapped[str | None] = mapped_column(ID)
    entry_line_no: Mapped[int | None]
    hold_id: Mapped[str | None] = mapped_column(ID)
    reversed_amount: Mapped[int] = mapped_column(default=0)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class MemberCounter(Base):
    """A running total of a program's counter for one account (``member.counters.<name>``)."""

    __tablename__ = "member_counter"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class MemberCounterKey(Base):
    """A value a ``distinct`` counter already counted for one account (the course a member
    completed): unique, so the same value is counted once even by concurrent events."""

    __tablename__ = "member_counter_key"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
