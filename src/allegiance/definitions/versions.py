"""Storing and finding program-definition versions, with the compiled rules cached."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allegiance import rules
from allegiance.definitions.models import ProgramVersion
from allegiance.kit import clock


@dataclass(frozen=True)
class Version:
    program_id: str
    number: int
    effective_from: datetime
    document: dict[str, Any]
    compiled: rules.CompiledProgram
    checksum: str


_compiled_cache: dict[str, rules.CompiledProgram] = {}


def checksum(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _compiled(document: dict[str, Any], digest: str) -> rules.CompiledProgram:
    found = _compiled_cache.get(digest)
    if found is None:
        found = rules.compile_program(document)
        if len(_compiled_cache) > 500:
            _compiled_cache.clear()
        _compiled_cache[digest] = found
    return found


def _version(row: ProgramVersion) -> Version:
    return Version(row.program_id, row.version, row.effective_from, row.document,
                   _compiled(row.document, row.checksum), row.checksum)


def store(
    session: Session, tenant_id: str, program_id: str, document: dict[str, Any], *,
    actor: str, effective_from: datetime | None = None,
) -> Version:
    """Add the next version (the document must already be valid)."""
    last = session.scalar(
        select(func.max(ProgramVersion.version)).where(
            ProgramVersion.tenant_id == tenant_id, ProgramVersion.program_id == program_id
        )
    )
    now = clock.now()
    digest = checksum(document)
    row = ProgramVersion(
        tenant_id=tenant_id, program_id=program_id, version=int(last or 0) + 1,
        document=document, checksum=digest, effective_from=effective_from or now,
        created_at=now, created_by=actor,
    )
    session.add(row)
    session.flush()
    return _version(row)


def version_at(session: Session, tenant_id: str, program_id: str, at: datetime) -> Version | None:
    """The version in force at ``at``: the newest one whose effective_from is not after it."""
    row = session.scalars(
        select(ProgramVersion)
        .where(ProgramVersion.tenant_id == tenant_id, ProgramVersion.program_id == program_id,
               ProgramVersion.effective_from <= at)
        .order_by(ProgramVersion.effective_from.desc(), ProgramVersion.version.desc())
        .limit(1)
    ).first()
    return None if row is None else _version(row)


def latest(session: Session, tenant_id: str, program_id: str) -> Version | None:
    row = session.scalars(
        select(ProgramVersion)
        .where(ProgramVersion.tenant_id == tenant_id, ProgramVersion.program_id == program_id)
        .order_by(ProgramVersion.version.desc())
        .limit(1)
    ).first()
    return None if row is None else _version(row)


def list_versions(session: Session, tenant_id: str, program_id: str) -> list[ProgramVersion]:
    return list(session.scalars(
        select(ProgramVersion)
        .where(ProgramVersion.tenant_id == tenant_id, ProgramVersion.program_id == program_id)
        .order_by(ProgramVersion.version)
    ))
