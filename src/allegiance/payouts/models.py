"""Payout policies of money units (store credit or withdrawable), and payout batches: what
the finance system pays, one item per member wallet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class PayoutPolicy(Base):
    """Whether a money unit can be withdrawn (paid out) or is store credit, spendable only
    at the operator; and the smallest amount paid out."""

    __tablename__ = "payout_policy"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "unit_id"], ["unit.tenant_id", "unit.id"]),
        CheckConstraint("minimum >= 0", name="minimum_not_negative"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    unit_id: Mapped[str] = mapped_column(ID, primary_key=True)
    withdrawable: Mapped[bool]
    minimum: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime]


class PayoutBatch(Base):
    __tablename__ = "payout_batch"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "unit_id"], ["unit.tenant_id", "unit.id"]),
        UniqueConstraint("tenant_id", "program_id", "unit_id", "label"),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    unit_id: Mapped[str] = mapped_column(ID)
    label: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(8))
    total: Mapped[int] = mapped_column(default=0)
    items: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class PayoutItem(Base):
    """One wallet's payout: the amount is held (pending) until finance reports it paid
    (posted) or failed (released back to the wallet)."""

    __tablename__ = "payout_item"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "batch_id"], ["payout_batch.tenant_id",
                                                         "payout_batch.id"]),
        UniqueConstraint("tenant_id", "batch_id", "wallet_id"),
        Index("ix_payout_item_owner", "tenant_id", "owner_type", "owner_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'paid', 'failed')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ID)
    wallet_id: Mapped[str] = mapped_column(ID)
    owner_type: Mapped[str] = mapped_column(String(10))
    owner_id: Mapped[str] = mapped_column(ID)
    amount: Mapped[int]
    status: Mapped[str] = mapped_column(String(8))
    hold_id: Mapped[str] = mapped_column(ID)
    entry_id: Mapped[str | None] = mapped_column(ID)
    reference: Mapped[str | None] = mapped_column(String(200))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime]
