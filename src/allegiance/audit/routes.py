"""HTTP routes of the audit log: read it (newest first, filtered by object) and verify its
hash chain. Admin only."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from allegiance.audit import service
from allegiance.audit.schemas import AuditPage, AuditRead, ChainRead
from allegiance.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["audit"])


@router.get("/audit-log", response_model=AuditPage,
            summary="The audit log, newest first (filter by object or actor)")
def list_audit(
    object_type: str | None = Query(None, max_length=40),
    object_id: str | None = Query(None, max_length=200),
    actor: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200),
    ctx: Ctx = Depends(need("admin")),
) -> AuditPage:
    after = decode_cursor(cursor)
    try:
        before_seq = int(after) if after is not None else None
    except ValueError:
        before_seq = 0
    with ctx.read() as session:
        rows = service.page(session, ctx.tenant_id, object_type=object_type,
                            object_id=object_id, actor=actor, before_seq=before_seq,
                            limit=limit + 1)
        items = [AuditRead.model_validate(r) for r in rows[:limit]]
    next_cursor = encode_cursor(str(items[-1].seq)) if len(rows) > limit else None
    return AuditPage(items=items, next_cursor=next_cursor)


@router.get("/audit-log/verify", response_model=ChainRead,
            summary="Recompute the audit log's hash chain (tamper detection)")
def verify_audit(ctx: Ctx = Depends(need("admin"))) -> ChainRead:
    with ctx.read() as session:
        check = service.verify(session, ctx.tenant_id)
    return ChainRead(rows=check.rows, ok=check.first_bad_seq is None,
                     first_bad_seq=check.first_bad_seq)
