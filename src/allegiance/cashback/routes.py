"""HTTP routes of volume rebates (admin), discount schedules (admin) and the checkout's quote
and order confirmation (integration)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance.cashback import discounts, service
from allegiance.cashback.schemas import (
    AccrualRead,
    CouponRead,
    DiscountScheduleCreate,
    DiscountScheduleRead,
    OrderIn,
    OrderRead,
    QuoteIn,
    QuoteRead,
    RebateScheduleCreate,
    RebateScheduleRead,
    RunReport,
)
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["cashback, rebates and discounts"])


@router.post("/programs/{program_id}/rebate-schedules", status_code=201,
             response_model=RebateScheduleRead, summary="Create a volume rebate schedule")
def create_rebate_schedule(program_id: str, body: RebateScheduleCreate,
                           ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> RebateScheduleRead:
        return RebateScheduleRead.model_validate(service.create_schedule(
            session, ctx.tenant_id, program_id, actor=ctx.actor, **body.model_dump()))

    return ctx.write(body, run, 201)


@router.post("/rebate-schedules/{schedule_id}/run", response_model=RunReport,
             summary="Accrue the running period, true up ended ones, claw back returns")
def run_rebates(schedule_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> RunReport:
        ctx.check_program(service.get_schedule(session, ctx.tenant_id,
                                               schedule_id).program_id)
        return RunReport(**service.run_schedule(session, ctx.tenant_id, schedule_id,
                                                actor=ctx.actor))

    return ctx.write(None, run)


@router.get("/rebate-schedules/{schedule_id}/accruals", response_model=list[AccrualRead],
            summary="Accruals of a schedule (open: pending; settled: posted)")
def list_accruals(schedule_id: str, account_id: str | None = Query(None, max_length=40),
                  ctx: Ctx = Depends(need("read"))) -> list[AccrualRead]:
    with ctx.read() as session:
        ctx.check_program(service.get_schedule(session, ctx.tenant_id,
                                               schedule_id).program_id)
        return [AccrualRead.model_validate(r) for r in service.accruals(
            session, ctx.tenant_id, schedule_id, account_id=account_id)]


@router.post("/programs/{program_id}/discount-schedules", status_code=201,
             response_model=DiscountScheduleRead,
             summary="Create a cumulative discount schedule (with next-order coupons)")
def create_discount_schedule(program_id: str, body: DiscountScheduleCreate,
                             ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> DiscountScheduleRead:
        return DiscountScheduleRead.model_validate(discounts.create_schedule(
            session, ctx.tenant_id, program_id, actor=ctx.actor, **body.model_dump()))

    return ctx.write(body, run, 201)


@router.post("/programs/{program_id}/quote", response_model=QuoteRead,
             summary="The discount an order gets now (for a checkout; writes nothing)")
def quote(program_id: str, body: QuoteIn, ctx: Ctx = Depends(need("read"))) -> QuoteRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        result = discounts.quote(session, ctx.tenant_id, program_id,
                                 account_id=body.account_id, amount=body.amount,
                                 coupon_code=body.coupon_code)
    return QuoteRead(**asdict(result))


@router.post("/programs/{program_id}/orders", response_model=OrderRead,
             summary="Confirm a checkout: use its coupon once, issue the next-order coupon")
def confirm(program_id: str, body: OrderIn,
            ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> OrderRead:
        result, coupon = discounts.confirm(
            session, ctx.tenant_id, program_id, account_id=body.account_id,
            order_id=body.order_id, amount=body.amount, coupon_code=body.coupon_code,
            actor=ctx.actor)
        return OrderRead(quote=QuoteRead(**asdict(result)),
                         next_order_coupon=None if coupon is None
                         else CouponRead.model_validate(coupon))

    return ctx.write(body, run)


@router.get("/programs/{program_id}/accounts/{account_id}/next-order-coupons",
            response_model=list[CouponRead], summary="A member's next-order coupons")
def list_coupons(program_id: str, account_id: str,
                 ctx: Ctx = Depends(need("read"))) -> list[CouponRead]:
    ctx.check_program(program_id)
    with ctx.read() as session:
        return [CouponRead.model_validate(c)
                for c in discounts.coupons(session, ctx.tenant_id, account_id, program_id)
                if discounts.get_schedule(session, ctx.tenant_id,
                                          c.schedule_id).program_id == program_id]
