"""HTTP routes of events: purchases and activities, returns, dry-run, reads, and the
resolution of unmatched events.

Scopes: reporting events and returns needs ``integration``; reads and dry-runs need ``read``;
matching an unmatched event needs ``admin``. Another tenant's ids read as not found. A replayed
event (same program, source and external id) answers 200 with the stored event and earns
nothing; a new one answers 201.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import audit, tenants
from allegiance.events import dryrun, returns, service
from allegiance.events import repository as repo
from allegiance.events.inputs import get_event, outcome
from allegiance.events.schemas import (
    DryAwardRead,
    DryRunRead,
    EventCreate,
    EventPage,
    EventRead,
    EventSummary,
    MatchCreate,
    ReturnCreate,
    TraceRead,
)
from allegiance.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["events"])


def _created_or_replayed(ctx: Ctx, body: EventCreate | ReturnCreate, run_fn: object) -> Response:
    replayed: list[bool] = []

    def run(session: Session) -> EventRead:
        result = run_fn(session)  # type: ignore[operator]
        replayed.append(not result.created)
        return EventRead.of(result)

    response = ctx.write(body, run, 201)
    if replayed and replayed[0]:
        response.status_code = 200
        response.headers["Event-Replayed"] = "true"
    return response


@router.post("/programs/{program_id}/events", status_code=201, response_model=EventRead,
             summary="Report a purchase or an activity",
             responses={200: {"model": EventRead, "description": "replay: already recorded"}})
def create_event(program_id: str, body: EventCreate,
                 ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)
    return _created_or_replayed(ctx, body, lambda s: service.ingest(
        s, ctx.tenant_id, program_id, body.data(), actor=ctx.actor))


@router.post("/programs/{program_id}/returns", status_code=201, response_model=EventRead,
             summary="Return a purchase, fully or by line",
             responses={200: {"model": EventRead, "description": "replay: already recorded"}})
def create_return(program_id: str, body: ReturnCreate,
                  ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)
    return _created_or_replayed(ctx, body, lambda s: returns.record_return(
        s, ctx.tenant_id, program_id, body.data(), actor=ctx.actor))


@router.post("/programs/{program_id}/events/dry-run", response_model=DryRunRead,
             summary="What an event would earn, and why each rule matched or not")
def dry_run(program_id: str, body: EventCreate, ctx: Ctx = Depends(need("read"))) -> DryRunRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        result = dryrun.dry_run(session, ctx.tenant_id, program_id, body.data())
    return DryRunRead(
        version=result.version, account_id=result.account_id, matched=result.matched,
        awards=[DryAwardRead(rule=a.rule, type=a.type,
                             line=None if a.line is None else a.line + 1, unit=a.unit,
                             amount=a.amount, data=dict(a.data)) for a in result.awards],
        traces=[TraceRead.model_validate(t) for t in result.traces],
    )


@router.get("/events/{event_id}", response_model=EventRead,
            summary="An event with its lines, awards and the balances it touched")
def read_event(event_id: str, ctx: Ctx = Depends(need("read"))) -> EventRead:
    with ctx.read() as session:
        event = get_event(session, ctx.tenant_id, event_id)
        ctx.check_program(event.program_id)
        return EventRead.of(outcome(session, ctx.tenant_id, event))


@router.get("/programs/{program_id}/events", response_model=EventPage,
            summary="Events of a program (e.g. the unmatched queue)")
def list_events(
    program_id: str,
    status: str | None = Query(None, pattern="^(processed|unmatched|rejected)$"),
    account_id: str | None = Query(None, max_length=40),
    kind: str | None = Query(None, pattern="^(purchase|activity|return)$"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200),
    ctx: Ctx = Depends(need("read")),
) -> EventPage:
    ctx.check_program(program_id)
    with ctx.read() as session:
        tenants.get_program(session, ctx.tenant_id, program_id)
        rows = repo.list_events(session, ctx.tenant_id, program_id, status=status,
                                account_id=account_id, kind=kind, after=decode_cursor(cursor),
                                limit=limit)
        items = [EventSummary.model_validate(r) for r in rows[:limit]]
    return EventPage(items=items,
                     next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.post("/events/{event_id}/match", response_model=EventRead,
             summary="Match an unmatched event to an account and process it")
def match_event(event_id: str, body: MatchCreate, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> EventRead:
        event = get_event(session, ctx.tenant_id, event_id)
        ctx.check_program(event.program_id)
        result = service.match(session, ctx.tenant_id, event_id, body.account_id,
                               actor=ctx.actor)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="event.match",
                     object_type="event", object_id=event_id,
                     before={"status": "unmatched"},
                     after={"status": result.event.status, "account_id": body.account_id})
        return EventRead.of(result)

    return ctx.write(body, run, 200)
