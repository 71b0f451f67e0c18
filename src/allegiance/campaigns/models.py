"""Rule-based segments and their members, and campaigns: time-boxed earning rules for
segments, with budgets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class Segment(Base):
    """Members of a program whose member fields satisfy ``condition`` (the rules' condition
    language over ``member.*``), refreshed set-based."""

    __tablename__ = "segment"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    condition: Mapped[str] = mapped_column(String(4000))
    members: Mapped[int] = mapped_column(default=0)
    refreshed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SegmentMember(Base):
    """An account in a segment since ``since``."""

    __tablename__ = "segment_member"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "segment_id"], ["segment.tenant_id", "segment.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        Index("ix_segment_member_account", "tenant_id", "account_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    segment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    since: Mapped[datetime]


class Campaign(Base):
    """A time-boxed earning rule (``rule``: trigger, condition, effects, limits in the rules'
    format) for the members of ``segments`` (empty: everyone), with an optional budget."""

    __tablename__ = "campaign"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("status IN ('draft', 'active', 'stopped')", name="status"),
        CheckConstraint("starts_at < ends_at", name="window"),
        Index("ix_campaign_program", "tenant_id", "program_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    segments: Mapped[list[Any]]
    rule: Mapped[dict[str, Any]]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    budget: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RfmModel(Base):
    """A program's RFM scoring: the purchase window in days, and the breakpoints of the last
    set-based refresh (per dimension, the lowest raw value of scores 2, 3, 4 and 5), which
    score one account between refreshes."""

    __tablename__ = "rfm_model"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        CheckConstraint("window_days > 0", name="window_days"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    window_days: Mapped[int]
    breakpoints: Mapped[dict[str, Any]]
    scored: Mapped[int] = mapped_column(default=0)
    computed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RfmScore(Base):
    """One account's recency, frequency and monetary scores (1–5, quintiles among the
    program's buyers of the window; 0: no purchase in the window) and the raw values behind
    them: the local day of the last purchase, purchases and spend net of returns."""

    __tablename__ = "rfm_score"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    recency: Mapped[int]
    frequency: Mapped[int]
    monetary: Mapped[int]
    last_day: Mapped[int]
    purchases: Mapped[int]
    spend: Mapped[int]
