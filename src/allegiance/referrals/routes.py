"""HTTP routes of referrals and affiliates."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from allegiance import events
from allegiance.kit.web import Ctx, need
from allegiance.referrals import clicks, service
from allegiance.referrals.models import ReferralCode, ReferralReward
from allegiance.referrals.schemas import (
    ClickIn,
    CodeCreate,
    CodeDecision,
    CodeRead,
    EventIn,
    Matched,
    PlanCreate,
    PlanRead,
    ReferralRead,
    RewardLine,
    SignupIn,
    Statement,
    Synced,
    VisitorMatch,
)

router = APIRouter(tags=["referrals"])
SYNC_BATCH = 500
SYNC_BATCHES = 20  # at most 10,000 purchases per call; ``done`` false: call again


def _code(session: Session, tenant_id: str, row: ReferralCode) -> CodeRead:
    plan = service.get_plan(session, tenant_id, row.plan_id)
    return CodeRead(id=row.id, plan_id=row.plan_id, account_id=row.account_id, code=row.code,
                    status=row.status, link=service.link(plan, row), reason=row.reason)


def _plan_program(ctx: Ctx, session: Session, plan_id: str) -> str:
    program_id = service.get_plan(session, ctx.tenant_id, plan_id).program_id
    ctx.check_program(program_id)
    return program_id


@router.post("/programs/{program_id}/referral-plans", status_code=201, response_model=PlanRead,
             summary="Create a referral or affiliate plan")
def create_plan(program_id: str, body: PlanCreate,
                ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> PlanRead:
        plan = service.create_plan(session, ctx.tenant_id, program_id,
                                   **body.model_dump())
        return PlanRead.model_validate(plan)

    return ctx.write(body, run, 201)


@router.get("/referral-plans/{plan_id}", response_model=PlanRead, summary="Read a plan")
def get_plan(plan_id: str, ctx: Ctx = Depends(need("read"))) -> PlanRead:
    with ctx.read() as session:
        _plan_program(ctx, session, plan_id)
        return PlanRead.model_validate(service.get_plan(session, ctx.tenant_id, plan_id))


@router.post("/referral-plans/{plan_id}/codes", response_model=CodeRead,
             summary="A member's code and link (an application if the plan reviews them)")
def issue_code(plan_id: str, body: CodeCreate,
               ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> CodeRead:
        _plan_program(ctx, session, plan_id)
        row = service.issue_code(session, ctx.tenant_id, plan_id, body.account_id,
                                 application=body.application, actor=ctx.actor)
        return _code(session, ctx.tenant_id, row)

    return ctx.write(body, run)


def _decide(ctx: Ctx, code_id: str, body: CodeDecision, approve: bool) -> Response:
    def run(session: Session) -> CodeRead:
        _plan_program(ctx, session, service.get_code(session, ctx.tenant_id, code_id).plan_id)
        row = service.decide_application(session, ctx.tenant_id, code_id, approve=approve,
                                         actor=ctx.actor, reason=body.reason)
        return _code(session, ctx.tenant_id, row)

    return ctx.write(body, run)


@router.post("/referral-codes/{code_id}/approve", response_model=CodeRead,
             summary="Accept an affiliate application")
def approve(code_id: str, body: CodeDecision | None = None,
            ctx: Ctx = Depends(need("admin"))) -> Response:
    return _decide(ctx, code_id, body or CodeDecision(), True)


@router.post("/referral-codes/{code_id}/reject", response_model=CodeRead,
             summary="Refuse an affiliate application")
def reject(code_id: str, body: CodeDecision | None = None,
           ctx: Ctx = Depends(need("admin"))) -> Response:
    return _decide(ctx, code_id, body or CodeDecision(), False)


@router.post("/programs/{program_id}/referrals", status_code=201, response_model=ReferralRead,
             summary="Record a sign-up through a code (fraud checks; rejected ones earn 0)")
def signup(program_id: str, body: SignupIn,
           ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> ReferralRead:
        row = service.signup(
            session, ctx.tenant_id, program_id, code=body.code, account_id=body.account_id,
            email=body.email, tax_id=body.tax_id, device_hash=body.device_hash,
            actor=ctx.actor)
        if body.visitor_id:
            clicks.match_visitor(session, ctx.tenant_id, row.plan_id, body.visitor_id,
                                 body.account_id)
        return ReferralRead.model_validate(row)

    return ctx.write(body, run, 201)


@router.post("/referral-plans/{plan_id}/clicks", status_code=201, response_model=ReferralRead,
             summary="Record a click on a code's link (per-click attribution window)")
def click(plan_id: str, body: ClickIn, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> ReferralRead:
        _plan_program(ctx, session, plan_id)
        return ReferralRead.model_validate(clicks.record_click(
            session, ctx.tenant_id, plan_id, code=body.code, account_id=body.account_id,
            visitor_id=body.visitor_id))

    return ctx.write(body, run, 201)


@router.post("/referral-plans/{plan_id}/visitors/{visitor_id}/match", response_model=Matched,
             summary="Give an anonymous visitor's clicks to the member it turned out to be")
def match_visitor(plan_id: str, visitor_id: str, body: VisitorMatch,
                  ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> Matched:
        _plan_program(ctx, session, plan_id)
        return Matched(clicks=clicks.match_visitor(session, ctx.tenant_id, plan_id,
                                                   visitor_id, body.account_id))

    return ctx.write(body, run)


@router.get("/referrals/{referral_id}", response_model=ReferralRead, summary="Read a referral")
def get_referral(referral_id: str, ctx: Ctx = Depends(need("read"))) -> ReferralRead:
    with ctx.read() as session:
        row = service.get_referral(session, ctx.tenant_id, referral_id)
        _plan_program(ctx, session, row.plan_id)
        return ReferralRead.model_validate(row)


@router.post("/referrals/attribute", response_model=list[RewardLine],
             summary="Commission on a purchase (and refunds of it); idempotent")
def attribute(body: EventIn, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> list[RewardLine]:
        ctx.check_program(events.get_event(session, ctx.tenant_id, body.event_id).program_id)
        rows = service.attribute(session, ctx.tenant_id, body.event_id, actor=ctx.actor)
        return [_line(session, ctx.tenant_id, row) for row in rows]

    return ctx.write(body, run)


@router.post("/referral-plans/{plan_id}/sync", response_model=Synced,
             summary="Attribute and reconcile the plan's new (or newly refunded) purchases")
def sync(plan_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> Synced:
        _plan_program(ctx, session, plan_id)
        purchases, done = service.sync(session, ctx.tenant_id, plan_id, actor=ctx.actor,
                                       batch=SYNC_BATCH, max_batches=SYNC_BATCHES)
        return Synced(purchases=purchases, done=done)

    return ctx.write(None, run)


def _line(session: Session, tenant_id: str, row: ReferralReward) -> RewardLine:
    return RewardLine(id=row.id, referral_id=row.referral_id, kind=row.kind,
                      event_id=row.event_id, line_no=row.line_no, unit_id=row.unit_id,
                      amount=row.amount, reversed_amount=row.reversed_amount,
                      state=service.reward_state(session, tenant_id, row), lock_at=row.lock_at)


@router.get("/referral-plans/{plan_id}/statements/{account_id}", response_model=Statement,
            summary="A member's referral statement: pending, payable and reversed rewards")
def statement(plan_id: str, account_id: str, ctx: Ctx = Depends(need("read"))) -> Statement:
    with ctx.read() as session:
        _plan_program(ctx, session, plan_id)
        rows = service.statement(session, ctx.tenant_id, plan_id, account_id)
        items = [_line(session, ctx.tenant_id, row) for row, _state in rows]
    return Statement(
        plan_id=plan_id, account_id=account_id,
        pending=sum(i.amount - i.reversed_amount for i in items if i.state == "pending"),
        payable=sum(i.amount - i.reversed_amount for i in items if i.state == "payable"),
        reversed=sum(i.reversed_amount for i in items), items=items)
