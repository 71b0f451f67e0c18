"""Versions of program definitions: each apply is a new version; an event is evaluated by the
version in force at its time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class ProgramVersion(Base):
    __tablename__ = "program_version"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        Index("ix_program_version_effective", "tenant_id", "program_id", "effective_from"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    document: Mapped[dict[str, Any]]
    checksum: Mapped[str] = mapped_column(String(64))
    effective_from: Mapped[datetime]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
