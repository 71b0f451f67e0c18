"""HTTP routes of plans and perks (admin), subscriptions and fees (integration), and the
perks an account may use (read). Another tenant's ids read as not found."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from allegiance import audit, members, tenants
from allegiance.kit.web import Ctx, need
from allegiance.memberships import service
from allegiance.memberships.models import Subscription
from allegiance.memberships.schemas import (
    CancelIn,
    ChargeList,
    ChargeRead,
    PaymentIn,
    PerkCreate,
    PerkList,
    PerkRead,
    PerkStateList,
    PerkStateRead,
    PlanCreate,
    PlanList,
    PlanRead,
    SubscribeIn,
    SubscriptionList,
    SubscriptionRead,
)

router = APIRouter(tags=["memberships"])


def _read(session: Session, sub: Subscription) -> SubscriptionRead:
    now = service.state(session, sub)
    return SubscriptionRead(
        id=sub.id, program_id=sub.program_id, plan_id=sub.plan_id, account_id=sub.account_id,
        status=now.status, status_until=now.until, started_at=sub.started_at,
        trial_ends_at=sub.trial_ends_at, paid_until=sub.paid_until, paid=sub.paid,
        fees=sub.fees, cancel_at=sub.cancel_at, cancelled_at=sub.cancelled_at)


@router.post("/programs/{program_id}/plans", status_code=201, response_model=PlanRead,
             summary="Define a paid membership plan")
def create_plan(program_id: str, body: PlanCreate,
                ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> PlanRead:
        row = service.create_plan(session, ctx.tenant_id, program_id, **body.model_dump())
        out = PlanRead.model_validate(row)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="plan.create",
                     object_type="plan", object_id=row.id, after=out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/plans", response_model=PlanList,
            summary="List a program's plans")
def list_plans(program_id: str, ctx: Ctx = Depends(need("read"))) -> PlanList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        return PlanList(items=[PlanRead.model_validate(p)
                               for p in service.list_plans(session, ctx.tenant_id, program_id)])


@router.post("/programs/{program_id}/subscriptions", status_code=201,
             response_model=SubscriptionRead,
             summary="Subscribe an account to a plan (trial, or the first fee recorded now)")
def subscribe(program_id: str, body: SubscribeIn,
              ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> SubscriptionRead:
        sub = service.subscribe(session, ctx.tenant_id, program_id, body.account_id,
                                body.plan, external_ref=body.external_ref, actor=ctx.actor)
        return _read(session, sub)

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/accounts/{account_id}/subscriptions",
            response_model=SubscriptionList, summary="An account's subscriptions")
def account_subscriptions(program_id: str, account_id: str,
                          ctx: Ctx = Depends(need("read"))) -> SubscriptionList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        tenants.get_program(session, ctx.tenant_id, program_id)  # another tenant's: not found
        members.get_account(session, ctx.tenant_id, account_id)
        rows = service.subscriptions_of(session, ctx.tenant_id, program_id, account_id)
        return SubscriptionList(items=[_read(session, r) for r in rows])


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionRead,
            summary="Read a subscription (status at the time of the request)")
def get_subscription(subscription_id: str,
                     ctx: Ctx = Depends(need("read"))) -> SubscriptionRead:
    with ctx.read() as session:
        sub = service.get_subscription(session, ctx.tenant_id, subscription_id)
        ctx.check_program(sub.program_id)
        return _read(session, sub)


@router.post("/subscriptions/{subscription_id}/payments", response_model=ChargeRead,
             summary="Record a fee paid: the first after a trial or a renewal (idempotent "
                     "by external_ref)")
def record_payment(subscription_id: str, body: PaymentIn,
                   ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> ChargeRead:
        sub = service.get_subscription(session, ctx.tenant_id, subscription_id)
        ctx.check_program(sub.program_id)
        charge = service.record_payment(session, ctx.tenant_id, subscription_id,
                                        external_ref=body.external_ref, amount=body.amount,
                                        actor=ctx.actor)
        return ChargeRead.model_validate(charge)

    return ctx.write(body, run)


@router.get("/subscriptions/{subscription_id}/charges", response_model=ChargeList,
            summary="The fees recorded for a subscription")
def charges(subscription_id: str, ctx: Ctx = Depends(need("read"))) -> ChargeList:
    with ctx.read() as session:
        sub = service.get_subscription(session, ctx.tenant_id, subscription_id)
        ctx.check_program(sub.program_id)
        return ChargeList(items=[ChargeRead.model_validate(c) for c in
                                 service.charges_of(session, ctx.tenant_id, subscription_id)])


@router.post("/subscriptions/{subscription_id}/cancel", response_model=SubscriptionRead,
             summary="Cancel a subscription now or at the end of the paid period")
def cancel(subscription_id: str, body: CancelIn,
           ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> SubscriptionRead:
        sub = service.get_subscription(session, ctx.tenant_id, subscription_id)
        ctx.check_program(sub.program_id)
        sub = service.cancel(session, ctx.tenant_id, subscription_id,
                             at_period_end=body.at_period_end, actor=ctx.actor)
        return _read(session, sub)

    return ctx.write(body, run)


@router.post("/programs/{program_id}/perks", status_code=201, response_model=PerkRead,
             summary="Define a perk unlocked by plans or tier levels")
def create_perk(program_id: str, body: PerkCreate,
                ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> PerkRead:
        row = service.create_perk(session, ctx.tenant_id, program_id, **body.model_dump())
        return PerkRead.model_validate(row)

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/perks", response_model=PerkList,
            summary="List a program's perks")
def list_perks(program_id: str, ctx: Ctx = Depends(need("read"))) -> PerkList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        return PerkList(items=[PerkRead.model_validate(p)
                               for p in service.list_perks(session, ctx.tenant_id, program_id)])


def _states(ctx: Ctx, program_id: str, account_id: str,
            code: str | None) -> list[PerkStateRead]:
    ctx.check_program(program_id)
    with ctx.read() as session:
        return [PerkStateRead(code=s.perk.code, name=s.perk.name, allowed=s.answer.allowed,
                              reason=s.answer.reason, until=s.answer.until)
                for s in service.perks_of(session, ctx.tenant_id, program_id, account_id,
                                          code)]


@router.get("/programs/{program_id}/accounts/{account_id}/perks", response_model=PerkStateList,
            summary="The program's perks with whether the account may use each now")
def account_perks(program_id: str, account_id: str,
                  ctx: Ctx = Depends(need("read"))) -> PerkStateList:
    return PerkStateList(items=_states(ctx, program_id, account_id, None))


@router.get("/programs/{program_id}/accounts/{account_id}/perks/{perk}",
            response_model=PerkStateRead, summary="May this account use this perk now?")
def account_perk(program_id: str, account_id: str, perk: str,
                 ctx: Ctx = Depends(need("read"))) -> PerkStateRead:
    return _states(ctx, program_id, account_id, perk)[0]
