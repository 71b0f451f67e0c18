"""Append-only, hash-chained audit log of every change: who, what, when, before, after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance.audit.models import AuditRecord
from allegiance.kit import clock, sequences
from allegiance.kit.ids import new_id

AUDIT_SEQUENCE = "audit"


def _content(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))


def record(
    session: Session,
    tenant_id: str,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one audit row in the caller's transaction."""
    seq, previous_hash = sequences.reserve(session, tenant_id, AUDIT_SEQUENCE)
    at = clock.now()
    fields = {
        "seq": seq, "actor": actor, "action": action, "object_type": object_type,
        "object_id": object_id, "before": before, "after": after, "at": at.isoformat(),
    }
    digest = sequences.chain(previous_hash, _content(fields))
    sequences.set_last_hash(session, tenant_id, AUDIT_SEQUENCE, digest)
    row = AuditRecord(
        tenant_id=tenant_id, id=new_id("aud"), seq=seq, actor=actor, action=action,
        object_type=object_type, object_id=object_id, before=before, after=after, at=at,
        hash=digest,
    )
    session.add(row)
    session.flush()
    return row


def history(
    session: Session, tenant_id: str, object_type: str | None = None, object_id: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    stmt = select(AuditRecord).where(AuditRecord.tenant_id == tenant_id)
    if object_type:
        stmt = stmt.where(AuditRecord.object_type == object_type)
    if object_id:
        stmt = stmt.where(AuditRecord.object_id == object_id)
    return list(session.scalars(stmt.order_by(AuditRecord.seq.desc()).limit(limit)))


@dataclass(frozen=True)
class ChainCheck:
    rows: int
    first_bad_seq: int | None


def verify(session: Session, tenant_id: str) -> ChainCheck:
    """Recompute the hash chain; ``first_bad_seq`` is the first row that does not match."""
    previous = ""
    count = 0
    expected_seq = 1
    for row in session.scalars(
        select(AuditRecord).where(AuditRecord.tenant_id == tenant_id).order_by(AuditRecord.seq)
    ):
        count += 1
        fields = {
            "seq": row.seq, "actor": row.actor, "action": row.action,
            "object_type": row.object_type, "object_id": row.object_id, "before": row.before,
            "after": row.after, "at": row.at.isoformat(),
        }
        previous = sequences.chain(previous, _content(fields))
        if row.seq != expected_seq or previous != row.hash:
            return ChainCheck(count, row.seq)
        expected_seq += 1
    return ChainCheck(count, None)
