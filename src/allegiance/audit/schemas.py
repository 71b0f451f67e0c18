"""Response bodies of the audit log API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    seq: int
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: datetime
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRead]
    next_cursor: str | None


class ChainRead(BaseModel):
    rows: int
    ok: bool
    first_bad_seq: int | None
