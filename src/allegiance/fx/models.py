"""Exchange rates per tenant: one rate per (base currency, currency, day)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class FxRate(Base):
    """``rate``: how many units of ``base_currency`` one unit of ``currency`` is worth (major
    units, e.g. EUR→USD 1.0842), valid from ``day`` until the next rate's day."""

    __tablename__ = "fx_rate"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        UniqueConstraint("tenant_id", "base_currency", "currency", "day"),
        CheckConstraint("rate > 0", name="rate_positive"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    base_currency: Mapped[str] = mapped_column(String(3))
    currency: Mapped[str] = mapped_column(String(3))
    day: Mapped[date] = mapped_column(Date)
    rate: Mapped[Decimal] = mapped_column(Numeric(24, 10))
    source: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
