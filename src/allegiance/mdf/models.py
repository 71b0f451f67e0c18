"""Co-marketing (MDF) funds, partner allocations and claims. The money itself lives in the
ledger: a fund account and one allocation account per partner, both ``no_overdraw``, so an
allocation can never be over-committed, even under concurrent claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class MdfFund(Base):
    """A budget of one period in a money unit; claims are accepted until ``claim_deadline``,
    then what was not used expires."""

    __tablename__ = "mdf_fund"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "unit_id"], ["unit.tenant_id", "unit.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("budget >= 0", name="budget_not_negative"),
        CheckConstraint("status IN ('open', 'expired')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[str] = mapped_column(ID)
    budget: Mapped[int]
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    claim_deadline: Mapped[datetime]
    # Allocations accrued as a share of each partner's purchases in the period (percent).
    accrual_percent: Mapped[str | None] = mapped_column(String(20))
    formula: Mapped[dict[str, Any]]
    ledger_account_id: Mapped[str] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime]


class MdfAllocation(Base):
    __tablename__ = "mdf_allocation"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "fund_id"], ["mdf_fund.tenant_id", "mdf_fund.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "fund_id", "account_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    fund_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    ledger_account_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime]


class MdfClaim(Base):
    """A partner's co-marketing activity: optionally pre-approved (requested → preapproved,
    the estimate held on the allocation), then claimed with proof (the reimbursement held),
    then paid into the partner's money wallet or rejected; unused pre-approvals expire."""

    __tablename__ = "mdf_claim"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "fund_id"], ["mdf_fund.tenant_id", "mdf_fund.id"]),
        ForeignKeyConstraint(["tenant_id", "allocation_id"],
                             ["mdf_allocation.tenant_id", "mdf_allocation.id"]),
        Index("ix_mdf_claim_queue", "tenant_id", "fund_id", "status"),
        CheckConstraint(
            "status IN ('requested', 'preapproved', 'claimed', 'paid', 'rejected', 'expired')",
            name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    fund_id: Mapped[str] = mapped_column(ID)
    allocation_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    activity: Mapped[str] = mapped_column(String(500))
    media: Mapped[str | None] = mapped_column(String(64))
    estimated_cost: Mapped[int | None]
    preapproved_amount: Mapped[int | None]
    actual_cost: Mapped[int | None]
    other_brands: Mapped[int] = mapped_column(default=0)
    proof_ref: Mapped[str | None] = mapped_column(String(1000))
    invoice_ref: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(12))
    hold_id: Mapped[str | None] = mapped_column(ID)
    entry_id: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str | None] = mapped_column(String(1000))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
