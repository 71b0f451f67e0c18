"""Tier ladders, qualifying metrics per month, each account's status on a ladder and its
history. (The scratch rows of a recalculation live in a temporary table: see ``repository``.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class TierLadder(Base):
    """A ladder of levels; ``definition`` is the ladder document (see ``tiers.domain``)."""

    __tablename__ = "tier_ladder"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(100))
    is_primary: Mapped[bool] = mapped_column(default=False)
    definition: Mapped[dict[str, Any]]
    # The last month index whose period end was settled (downgrades happen once per period).
    settled_through: Mapped[int | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TierMetric(Base):
    """One account's qualifying metric for one month of the program's calendar.

    Accumulated metrics (points earned, spend, count) add credits into the month's row; reported
    metrics (a combined balance, a rating, a certification) replace the month's value.
    ``bucket`` is the month index ``year * 12 + month - 1`` in the program's time zone.
    """

    __tablename__ = "tier_metric"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        # Clustered by the key on SQLite: window sums read values in key order.
        {"sqlite_with_rowid": False},
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    metric: Mapped[str] = mapped_column(String(100), primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)
    # When the value last changed (for reports: the time of the report it holds).
    updated_at: Mapped[datetime]


class TierStatus(Base):
    """An account's current level on a ladder (``level_rank`` -1 and no code: no level)."""

    __tablename__ = "tier_status"
    # Derived rows written only by this feature, from accounts that tier_metric or enrolment
    # already tie to the account table: no foreign keys and no second index, so that a first
    # recalculation of a million members does not pay two million per-row constraint checks.
    # Reads go by the key (tenant, ladder, account) with the program's ladder ids.
    __table_args__ = (
        CheckConstraint("level_rank >= -1", name="level_rank"),
        {"sqlite_with_rowid": False},
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    ladder_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    level_code: Mapped[str | None] = mapped_column(String(64))
    level_rank: Mapped[int] = mapped_column(default=-1)
    since: Mapped[datetime | None]
    locked: Mapped[bool] = mapped_column(default=False)
    lock_reason: Mapped[str | None] = mapped_column(String(1000))
    # Month index the account's anniversary periods count from.
    anchor_month: Mapped[int]
    # Number of changes so far; the next change row gets ``version + 1`` as its ``seq``.
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime]


class TierChange(Base):
    """Tier history: every move of an account on a ladder, who or what made it, and why."""

    __tablename__ = "tier_change"
    # Append-only history of tier_status rows (same key prefix); no foreign key, as above.
    # Clustered by the key on SQLite (migration 0023): one B-tree written per row.
    __table_args__ = (
        CheckConstraint(
            "reason IN ('upgrade', 'downgrade', 'manual', 'direct_placement', 'certification')",
            name="reason",
        ),
        {"sqlite_with_rowid": False},
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    ladder_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    program_id: Mapped[str] = mapped_column(ID)
    from_level: Mapped[str | None] = mapped_column(String(64))
    to_level: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(1000))
    # The qualifying value when the move was decided by the metric.
    value: Mapped[int | None]
    at: Mapped[datetime]
