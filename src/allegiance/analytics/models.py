"""Stored reports: the last computed copy of a report for a program and a set of parameters,
so the admin pages show heavy reports (retention, CLV, uplift…) at once, with their "as at"
time. Analytics writes only this table; it reads every feature's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class ReportSnapshot(Base):
    """Report ``kind`` of a program computed at ``computed_at`` with the parameters whose
    canonical form hashes to ``options_key``; ``body`` is the report in typed JSON."""

    __tablename__ = "report_snapshot"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    options_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    options: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    seconds: Mapped[float]
    computed_at: Mapped[datetime]


# --- Summary tables (migration 0026_analytics) -----------------------------------------------
# Written only by the database, by triggers in the writing transaction (and, for
# ``liability_delta``, moved into ``liability_holding`` by the job ``liability-fold``); the
# reports read them instead of the ledger's and the events' rows.


class LiabilityHolding(Base):
    """Per program, unit, member's tier ('' for none) and UTC day of credit: the sum over the
    member wallets of ``ledger_aging.remaining`` and of ``credits - debits`` (``net``). The
    negative balances of a tier are its ``net - remaining``."""

    __tablename__ = "liability_holding"
    __table_args__ = ({"sqlite_with_rowid": False},)

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    unit_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tier: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[int] = mapped_column(primary_key=True)
    remaining: Mapped[int]
    net: Mapped[int]


class LiabilityDelta(Base):
    """Changes to :class:`LiabilityHolding` not folded yet (PostgreSQL's triggers append here
    so concurrent earnings never wait on one shared row)."""

    __tablename__ = "liability_delta"

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    program_id: Mapped[str] = mapped_column(ID)
    unit_id: Mapped[str] = mapped_column(ID)
    tier: Mapped[str] = mapped_column(String(64))
    day: Mapped[int]
    remaining: Mapped[int]
    net: Mapped[int]


class PurchaseDay(Base):
    """Per program, member, local day of the program (migration 0028) and currency ('' for the
    program's): the processed purchases and their amount net of returns in minor units."""

    __tablename__ = "purchase_day"
    __table_args__ = ({"sqlite_with_rowid": False},)

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    day: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    purchases: Mapped[int]
    amount: Mapped[int]


class PurchaseMember(Base):
    """Per program and member, :class:`PurchaseDay` summed up: first and last purchase day,
    purchase days, amount, amount of the first day, and the currency ('*' when several)."""

    __tablename__ = "purchase_member"
    __table_args__ = ({"sqlite_with_rowid": False},)

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    first_day: Mapped[int]
    last_day: Mapped[int]
    days: Mapped[int]
    amount: Mapped[int]
    first_amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))


class MemberMonth(Base):
    """Per program, member and local month of the program (year × 12 + month): the processed
    purchases and activities."""

    __tablename__ = "member_month"
    __table_args__ = ({"sqlite_with_rowid": False},)

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    month: Mapped[int] = mapped_column(primary_key=True)
    events: Mapped[int]
