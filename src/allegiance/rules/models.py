"""What limits have used: per member, rule, limit and period."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class RuleUsage(Base):
    __tablename__ = "rule_usage"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        CheckConstraint("used_amount >= 0 AND used_times >= 0", name="non_negative"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    rule_code: Mapped[str] = mapped_column(String(120), primary_key=True)
    limit_index: Mapped[int] = mapped_column(primary_key=True)
    period_key: Mapped[str] = mapped_column(String(16), primary_key=True)
    used_amount: Mapped[int] = mapped_column(default=0)
    used_times: Mapped[int] = mapped_column(default=0)
