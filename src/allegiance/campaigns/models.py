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
    """An account in a segment since ``since``: derived data the refresh rebuilds, so one
    key and nothing else (migration ``0027_segments``) — no foreign keys (each inserted row
    locked its account and segment: most of a first refresh's time on PostgreSQL) and no
    index by account (an account's segments are a probe of the key per segment of the
    program). Nothing deletes accounts or segments; the refresh removes the memberships of
    accounts no longer actively enrolled."""

    __tablename__ = "segment_member"
    __table_args__ = ({"sqlite_with_rowid": False},)

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
    score any account (no score is stored per account), and its distribution."""

    __tablename__ = "rfm_model"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        CheckConstraint("window_days > 0", name="window_days"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    window_days: Mapped[int]
    breakpoints: Mapped[dict[str, Any]]
    distribution: Mapped[dict[str, Any]]  # per dimension, buyers per score ("1".."5")
    scored: Mapped[int] = mapped_column(default=0)
    computed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SegmentInputChange(Base):
    """A program whose segment inputs (enrolments, enrolled accounts' region, attributes and
    status, running RFM inputs, member counters) a transaction changed, written by database
    triggers (migration ``0036_segmentinputs``; ``tx``: the PostgreSQL transaction id, 0 on
    SQLite) and deleted by the refresh that read it."""

    __tablename__ = "segment_input_change"

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tx: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


class SegmentRefresh(Base):
    """What a program's last full segment refresh was computed for (``fingerprint``: local
    day, definition version, RFM window, segments and conditions)."""

    __tablename__ = "segment_refresh"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    refreshed_at: Mapped[datetime]
