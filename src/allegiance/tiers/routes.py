"""HTTP routes of tier ladders, account tiers, placements, metric reports and recalculation.

Scopes: reads need ``read``; metric reports and certifications need ``integration``; ladders,
placements and recalculations need ``admin`` and leave an audit row. Another tenant's ids read
as not found.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.pagination import MAX_LIMIT, check_limit, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need
from allegiance.tiers import service
from allegiance.tiers.models import TierLadder
from allegiance.tiers.schemas import (
    AccountTiersRead,
    CertificationCreate,
    MetricReportCreate,
    MoveRead,
    MovesRead,
    RecalculationCreate,
    RecalculationRead,
    TierChangePage,
    TierChangeRead,
    TierLadderCreate,
    TierLadderPage,
    TierLadderRead,
    TierLadderUpdate,
    TierPlacementCreate,
    TierStateRead,
)

router = APIRouter(tags=["tiers"])

LimitQuery = Query(50, ge=1, le=MAX_LIMIT, description="page size")
CursorQuery = Query(None, max_length=200, description="next_cursor of the previous page")


def _record(session: Session, ctx: Ctx, action: str, object_type: str, object_id: str,
            before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    audit.record(session, ctx.tenant_id, actor=ctx.actor, action=action,
                 object_type=object_type, object_id=object_id, before=before, after=after)


def _ladder(session: Session, ctx: Ctx, ladder_id: str) -> TierLadder:
    row = service.get_ladder(session, ctx.tenant_id, ladder_id)
    ctx.check_program(row.program_id)
    return row


def _moves(moves: list[service.Move]) -> MovesRead:
    return MovesRead(moves=[MoveRead.model_validate(m) for m in moves])


# ---------------------------------------------------------------------------------------------
# Ladders


@router.post("/programs/{program_id}/tier-ladders", status_code=201,
             response_model=TierLadderRead, summary="Create a tier ladder")
def create_ladder(program_id: str, body: TierLadderCreate,
                  ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> TierLadderRead:
        row = service.create_ladder(session, ctx.tenant_id, program_id, body.document())
        out = TierLadderRead.model_validate(row)
        _record(session, ctx, "tier_ladder.create", "tier_ladder", row.id, None,
                out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/tier-ladders", response_model=TierLadderPage,
            summary="List a program's tier ladders")
def list_ladders(program_id: str, limit: int = LimitQuery, cursor: str | None = CursorQuery,
                 ctx: Ctx = Depends(need("read"))) -> TierLadderPage:
    ctx.check_program(program_id)
    check_limit(limit)
    after = decode_cursor(cursor)
    with ctx.read() as session:
        rows = [r for r in service.list_ladders(session, ctx.tenant_id, program_id)
                if after is None or r.id > after]
        items = [TierLadderRead.model_validate(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return TierLadderPage(items=items, next_cursor=next_cursor)


@router.get("/tier-ladders/{ladder_id}", response_model=TierLadderRead, summary="One ladder")
def get_ladder(ladder_id: str, ctx: Ctx = Depends(need("read"))) -> TierLadderRead:
    with ctx.read() as session:
        return TierLadderRead.model_validate(_ladder(session, ctx, ladder_id))


@router.put("/tier-ladders/{ladder_id}", response_model=TierLadderRead,
            summary="Replace a ladder's definition")
def update_ladder(ladder_id: str, body: TierLadderUpdate,
                  ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> TierLadderRead:
        before = TierLadderRead.model_validate(_ladder(session, ctx, ladder_id))
        before_json = before.model_dump(mode="json")
        row = service.update_ladder(session, ctx.tenant_id, ladder_id, body.document())
        out = TierLadderRead.model_validate(row)
        _record(session, ctx, "tier_ladder.update", "tier_ladder", row.id, before_json,
                out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 200)


# ---------------------------------------------------------------------------------------------
# Account tiers


@router.get("/programs/{program_id}/accounts/{account_id}/tiers",
            response_model=AccountTiersRead,
            summary="An account's tiers with progress to the next level")
def account_tiers(program_id: str, account_id: str,
                  ctx: Ctx = Depends(need("read"))) -> AccountTiersRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        states = service.status(session, ctx.tenant_id, program_id, account_id)
    return AccountTiersRead(account_id=account_id, program_id=program_id,
                            tiers=[TierStateRead.model_validate(s) for s in states])


@router.post("/programs/{program_id}/accounts/{account_id}/tier-placement",
             response_model=MoveRead, summary="Place an account on a level by hand")
def place(program_id: str, account_id: str, body: TierPlacementCreate,
          ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> MoveRead:
        move = service.place(session, ctx.tenant_id, program_id, account_id, level=body.level,
                             reason=body.reason, actor=ctx.actor, ladder_code=body.ladder,
                             lock=body.lock)
        out = MoveRead.model_validate(move)
        _record(session, ctx, "tier.place", "account", account_id,
                {"level": move.from_level}, {**out.model_dump(mode="json"), "lock": body.lock,
                                             "note": body.reason})
        return out

    return ctx.write(body, run, 200)


@router.post("/programs/{program_id}/accounts/{account_id}/certifications",
             response_model=MovesRead, summary="Grant or revoke a certification")
def certify(program_id: str, account_id: str, body: CertificationCreate,
            ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> MovesRead:
        return _moves(service.certify(session, ctx.tenant_id, program_id, account_id,
                                      body.certification, body.granted, body.at,
                                      actor=ctx.actor))

    return ctx.write(body, run, 200)


@router.get("/programs/{program_id}/accounts/{account_id}/tiers/history",
            response_model=TierChangePage, summary="An account's tier history, newest first")
def history(program_id: str, account_id: str, limit: int = LimitQuery,
            cursor: str | None = CursorQuery,
            ctx: Ctx = Depends(need("read"))) -> TierChangePage:
    ctx.check_program(program_id)
    check_limit(limit)
    before = _decode(cursor)
    with ctx.read() as session:
        rows = service.history(session, ctx.tenant_id, program_id, account_id,
                               limit=limit + 1, before=before)
        items = [TierChangeRead.model_validate(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(f"{last.at.isoformat()}|{last.ladder_id}|{last.seq}")
    return TierChangePage(items=items, next_cursor=next_cursor)


def _decode(cursor: str | None) -> tuple[datetime, str, int] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        at, ladder_id, seq = key.split("|")
        return datetime.fromisoformat(at), ladder_id, int(seq)
    except ValueError as exc:
        raise ValidationFailed("cursor is not valid", field="cursor") from exc


# ---------------------------------------------------------------------------------------------
# Metrics and recalculation


@router.post("/programs/{program_id}/metrics", response_model=MovesRead,
             summary="Report a metric from outside (e.g. a combined balance)")
def report_metric(program_id: str, body: MetricReportCreate,
                  ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> MovesRead:
        return _moves(service.report_metric(session, ctx.tenant_id, program_id,
                                            body.account_id, body.metric, body.value, body.at,
                                            actor=ctx.actor))

    return ctx.write(body, run, 200)


@router.post("/programs/{program_id}/tiers/recalculate", response_model=RecalculationRead,
             summary="Recalculate every account's tiers (set-based)")
def recalculate(program_id: str, body: RecalculationCreate,
                ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> RecalculationRead:
        result = service.recalculate(session, ctx.tenant_id, program_id, at=body.at,
                                     period_end=body.period_end, actor=ctx.actor)
        out = RecalculationRead.model_validate(result)
        _record(session, ctx, "tiers.recalculate", "program", program_id, None,
                {**out.model_dump(mode="json"), "period_end": body.period_end})
        return out

    return ctx.write(body, run, 200)
