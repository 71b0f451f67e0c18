"""HTTP shapes of saved column mappings and import jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from allegiance.kit.schemas import Input, Output


class MappingIn(Input):
    mapping: dict[str, Any] = Field(
        default_factory=dict,
        description="columns, attributes, types, defaults, account_source, time_zone "
                    "(docs/imports.md)")


class MappingRead(Output):
    program_id: str
    source: str
    kind: str
    mapping: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class MappingList(Output):
    items: list[MappingRead]


class JobRead(Output):
    id: str
    program_id: str
    kind: str
    source: str
    file_name: str
    size: int
    status: str = Field(description="queued, running, done or failed")
    attempts: int
    rows_total: int | None = Field(description="data rows in the file (known once started)")
    rows_done: int
    progress: float | None = Field(None, description="rows_done / rows_total, 0 to 1")
    created: int
    replayed: int
    unmatched: int
    rejected_events: int
    rejected_rows: int
    has_error_report: bool = False
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(Output):
    items: list[JobRead]
    next_cursor: str | None
