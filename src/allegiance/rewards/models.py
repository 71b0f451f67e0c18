"""The rewards catalogue, its pools of e-gift codes, and redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class Reward(Base):
    """A catalogue item. ``stock`` None means unlimited; it only ever changes through a
    conditional update, so it never goes below zero."""

    __tablename__ = "reward"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "unit_id"], ["unit.tenant_id", "unit.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("cost > 0", name="cost_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    kind: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str] = mapped_column(ID)
    cost: Mapped[int]
    stock: Mapped[int | None]
    min_balance: Mapped[int | None]
    eligible_regions: Mapped[list[Any]]
    eligible_tiers: Mapped[list[Any]]
    eligible_segments: Mapped[list[Any]]  # account attribute "segment"
    causes: Mapped[list[Any]]
    limit_per_member: Mapped[int | None]
    limit_period: Mapped[str] = mapped_column(String(8), default="all")
    visible_from: Mapped[datetime | None]
    visible_to: Mapped[datetime | None]
    available_from: Mapped[datetime | None]
    available_to: Mapped[datetime | None]
    requires_approval: Mapped[bool]
    code_valid_days: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RewardCode(Base):
    """One e-gift code of a reward's pool; taken by at most one redemption."""

    __tablename__ = "reward_code"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "reward_id"], ["reward.tenant_id", "reward.id"]),
        UniqueConstraint("tenant_id", "reward_id", "code"),
        Index("ix_reward_code_free", "tenant_id", "reward_id", "redemption_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    reward_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(200))
    redemption_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime]


class Redemption(Base):
    """A member's claim on a reward: requested (points held) → approved (points posted) →
    fulfilled; or rejected / cancelled with the points and the stock given back."""

    __tablename__ = "redemption"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "reward_id"], ["reward.tenant_id", "reward.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "status IN ('requested', 'approved', 'fulfilled', 'cancelled', 'rejected')",
            name="status"),
        Index("ix_redemption_member", "tenant_id", "reward_id", "account_id", "created_at"),
        Index("ix_redemption_program", "tenant_id", "program_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    reward_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str | None] = mapped_column(ID)
    quantity: Mapped[int]
    points: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    hold_id: Mapped[str | None] = mapped_column(ID)
    entry_id: Mapped[str | None] = mapped_column(ID)
    reversal_entry_id: Mapped[str | None] = mapped_column(ID)
    code: Mapped[str | None] = mapped_column(String(200))
    code_expires_at: Mapped[datetime | None]
    code_used_at: Mapped[datetime | None]
    shipping: Mapped[dict[str, Any]]
    cause: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    fulfilled_at: Mapped[datetime | None]
