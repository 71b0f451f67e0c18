"""Partner sales claims and the register of invoice keys that makes duplicates impossible."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class SalesClaim(Base):
    """A member's claim for a sale of the operator's products, backed by an invoice:
    submitted → approved (earns as a purchase) or rejected; a copy of an invoice already
    claimed is stored as ``duplicate`` and can never be approved."""

    __tablename__ = "sales_claim"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        Index("ix_sales_claim_queue", "tenant_id", "program_id", "status", "submitted_at"),
        Index("ix_sales_claim_key", "tenant_id", "program_id", "invoice_key"),
        CheckConstraint("status IN ('submitted', 'approved', 'rejected', 'duplicate')",
                        name="status"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str | None] = mapped_column(ID)
    invoice_number: Mapped[str] = mapped_column(String(100))
    invoice_date: Mapped[datetime]
    seller: Mapped[str] = mapped_column(String(200))
    invoice_key: Mapped[str] = mapped_column(String(320))
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[int]
    lines: Mapped[list[Any]]
    proof_ref: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(12))
    duplicate_of: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str | None] = mapped_column(String(1000))
    submitted_by: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[datetime]
    review_due_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    event_id: Mapped[str | None] = mapped_column(ID)


class ClaimInvoiceKey(Base):
    """One row per key of an invoice currently claimed (submitted or approved) in a program
    (``claims.domain.invoice_keys``: one or two per claim): the primary key is the duplicate
    check, so concurrent copies cannot both get in."""

    __tablename__ = "claim_invoice_key"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    invoice_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    claim_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime]
