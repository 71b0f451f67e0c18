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
