"""HTTP routes of payouts (admin): policies, batches, the finance file, paid / failed."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.kit.web import Ctx, need
from allegiance.payouts import domain, service, statements
from allegiance.payouts.schemas import (
    BatchCreate,
    BatchItems,
    BatchRead,
    FailedIn,
    ItemRead,
    PaidIn,
    PolicyIn,
    PolicyRead,
    StatementLineRead,
    StatementRead,
)

router = APIRouter(tags=["payouts"])


@router.put("/units/{unit_id}/payout-policy", response_model=PolicyRead,
            summary="Make a money unit withdrawable (with a minimum) or store credit")
def set_policy(unit_id: str, body: PolicyIn, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> PolicyRead:
        ctx.check_program(tenants.get_unit(session, ctx.tenant_id, unit_id).program_id)
        return PolicyRead.model_validate(service.set_policy(
            session, ctx.tenant_id, unit_id, withdrawable=body.withdrawable,
            minimum=body.minimum, actor=ctx.actor))

    return ctx.write(body, run)


@router.get("/units/{unit_id}/payout-policy", response_model=PolicyRead,
            summary="A money unit's payout policy (store credit unless set)")
def get_policy(unit_id: str, ctx: Ctx = Depends(need("read"))) -> PolicyRead:
    with ctx.read() as session:
        ctx.check_program(tenants.get_unit(session, ctx.tenant_id, unit_id).program_id)
        return PolicyRead.model_validate(service.policy_of(session, ctx.tenant_id, unit_id))


@router.post("/programs/{program_id}/payout-batches", status_code=201,
             response_model=BatchRead, summary="Hold every payable wallet into a payout batch")
def create_batch(program_id: str, body: BatchCreate,
                 ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> BatchRead:
        return BatchRead.model_validate(service.create_batch(
            session, ctx.tenant_id, program_id, body.unit_id, label=body.label,
            actor=ctx.actor))

    return ctx.write(body, run, 201)


@router.get("/payout-batches/{batch_id}", response_model=BatchItems,
            summary="A payout batch and its items (JSON statement)")
def get_batch(batch_id: str, ctx: Ctx = Depends(need("read"))) -> BatchItems:
    with ctx.read() as session:
        batch = service.get_batch(session, ctx.tenant_id, batch_id)
        ctx.check_program(batch.program_id)
        return BatchItems(batch=BatchRead.model_validate(batch),
                          items=[ItemRead.model_validate(i)
                                 for i in service.items(session, ctx.tenant_id, batch_id)])


@router.get("/payout-batches/{batch_id}/file.csv", summary="The payout file for finance (CSV)",
            response_class=Response)
def batch_file(batch_id: str, ctx: Ctx = Depends(need("read"))) -> Response:
    with ctx.read() as session:
        batch = service.get_batch(session, ctx.tenant_id, batch_id)
        ctx.check_program(batch.program_id)
        text = domain.to_csv(service.rows(session, ctx.tenant_id, batch_id))
    return Response(text, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="payout-{batch_id}.csv"'})


@router.post("/payout-items/{item_id}/paid", response_model=ItemRead,
             summary="Finance paid the item (posts the held money)")
def paid(item_id: str, body: PaidIn | None = None,
         ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> ItemRead:
        ctx.check_program(service.item_program(session, ctx.tenant_id, item_id))
        return ItemRead.model_validate(service.mark_paid(
            session, ctx.tenant_id, item_id, reference=body.reference if body else None,
            actor=ctx.actor))

    return ctx.write(body, run)


@router.post("/payout-items/{item_id}/failed", response_model=ItemRead,
             summary="The payment failed: the money returns to the wallet")
def failed(item_id: str, body: FailedIn, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> ItemRead:
        ctx.check_program(service.item_program(session, ctx.tenant_id, item_id))
        return ItemRead.model_validate(service.mark_failed(
            session, ctx.tenant_id, item_id, reason=body.reason, actor=ctx.actor))

    return ctx.write(body, run)


@router.get("/programs/{program_id}/statements", response_model=StatementRead,
            summary="Finance statement: members' wallet movements in a period, by cause "
                    "(format=csv for the file)")
def statement(program_id: str, start: datetime = Query(alias="from"),
              end: datetime = Query(alias="to"),
              unit_id: str | None = Query(None, max_length=40),
              format: str = Query("json", pattern="^(json|csv)$"),
              ctx: Ctx = Depends(need("read"))) -> Response | StatementRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        lines = statements.statement(session, ctx.tenant_id, program_id, start=start, end=end,
                                     unit_id=unit_id)
        currency = tenants.get_program(session, ctx.tenant_id, program_id).base_currency
    if format == "csv":
        return Response(statements.to_csv(lines), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="statement-{program_id}.csv"'})
    return StatementRead(program_id=program_id, start=start, end=end, currency=currency,
                         totals=statements.totals(lines),
                         value_totals=statements.value_totals(lines),
                         lines=[StatementLineRead(**asdict(line)) for line in lines])
