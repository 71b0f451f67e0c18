"""Column mappings saved per program, source and kind: an upload or a CLI import from a
source uses its saved mapping when it names none."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from allegiance import audit, tenants
from allegiance.imports import domain
from allegiance.imports.errors import MappingNotFound
from allegiance.imports.models import ImportMapping
from allegiance.kit import clock


def _check(source: str, kind: str) -> None:
    if kind not in domain.KINDS:
        raise domain.MappingInvalid(f"kind must be one of {', '.join(domain.KINDS)}",
                                    field="kind")
    if not source or len(source) > 120:
        raise domain.MappingInvalid("source must be 1 to 120 characters", field="source")


def save_mapping(session: Session, tenant_id: str, program_id: str, source: str, kind: str,
                 data: Any, *, actor: str) -> ImportMapping:
    """Create or replace the mapping of (program, source, kind); it is validated first."""
    _check(source, kind)
    tenants.get_program(session, tenant_id, program_id)
    domain.mapping_from(data, kind)
    now = clock.now()
    row = session.get(ImportMapping, (tenant_id, program_id, source, kind))
    before = None if row is None else dict(row.mapping)
    if row is None:
        row = ImportMapping(tenant_id=tenant_id, program_id=program_id, source=source,
                            kind=kind, mapping=dict(data or {}), created_at=now, updated_at=now)
        session.add(row)
    else:
        row.mapping = dict(data or {})
        row.updated_at = now
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="import_mapping.saved",
                 object_type="import_mapping", object_id=f"{program_id}:{source}:{kind}",
                 before=before, after=dict(row.mapping))
    return row


def get_mapping(session: Session, tenant_id: str, program_id: str, source: str,
                kind: str) -> ImportMapping:
    row = session.get(ImportMapping, (tenant_id, program_id, source, kind))
    if row is None:
        raise MappingNotFound(f"no saved mapping for {kind} from {source}", field="source")
    return row


def saved_mapping(session: Session, tenant_id: str, program_id: str, source: str,
                  kind: str) -> dict[str, Any] | None:
    """The saved mapping's data, or None."""
    row = session.get(ImportMapping, (tenant_id, program_id, source, kind))
    return None if row is None else dict(row.mapping)


def list_mappings(session: Session, tenant_id: str, program_id: str) -> list[ImportMapping]:
    tenants.get_program(session, tenant_id, program_id)  # another tenant's program: not found
    return list(session.scalars(
        select(ImportMapping)
        .where(ImportMapping.tenant_id == tenant_id, ImportMapping.program_id == program_id)
        .order_by(ImportMapping.source, ImportMapping.kind)))


def delete_mapping(session: Session, tenant_id: str, program_id: str, source: str, kind: str,
                   *, actor: str) -> None:
    row = get_mapping(session, tenant_id, program_id, source, kind)
    before = dict(row.mapping)
    session.execute(delete(ImportMapping).where(
        ImportMapping.tenant_id == tenant_id, ImportMapping.program_id == program_id,
        ImportMapping.source == source, ImportMapping.kind == kind))
    audit.record(session, tenant_id, actor=actor, action="import_mapping.deleted",
                 object_type="import_mapping", object_id=f"{program_id}:{source}:{kind}",
                 before=before)
