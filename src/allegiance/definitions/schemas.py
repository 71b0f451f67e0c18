"""Pydantic I/O models of program definitions, versions and diffs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ProblemRead(BaseModel):
    path: str
    message: str


class ValidationRead(BaseModel):
    valid: bool
    problems: list[ProblemRead]


class DefinitionApply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any] = Field(description="The program definition document.")
    effective_from: AwareDatetime | None = Field(
        default=None, description="When this version comes into force (default: now).")


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    program_id: str
    version: int
    effective_from: datetime
    checksum: str
    created_at: datetime | None = None
    created_by: str | None = None


class VersionPage(BaseModel):
    items: list[VersionRead]
    next_cursor: str | None


class DefinitionRead(BaseModel):
    program_id: str
    version: int
    effective_from: datetime
    checksum: str
    document: dict[str, Any]


class ChangeRead(BaseModel):
    path: str
    kind: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


class DiffRead(BaseModel):
    program_id: str
    against_version: int
    changes: list[ChangeRead]
    text: str
