"""HTTP routes of co-marketing funds: the operator creates and allocates funds and reviews
claims (admin); partners request, claim and read their view (integration / read)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need
from allegiance.mdf import service
from allegiance.mdf.schemas import (
    Accrued,
    AllocationIn,
    AllocationRead,
    ClaimIn,
    FundCreate,
    FundRead,
    MdfClaimPage,
    MdfClaimRead,
    PartnerViewRead,
    PreapprovalIn,
    RejectIn,
    RequestIn,
)

router = APIRouter(tags=["co-marketing funds"])


def _fund_program(ctx: Ctx, session: Session, fund_id: str) -> None:
    ctx.check_program(service.get_fund(session, ctx.tenant_id, fund_id).program_id)


def _claim_program(ctx: Ctx, session: Session, claim_id: str) -> None:
    _fund_program(ctx, session, service.get_claim(session, ctx.tenant_id, claim_id).fund_id)


@router.post("/programs/{program_id}/mdf-funds", status_code=201, response_model=FundRead,
             summary="Create a co-marketing fund for a period")
def create_fund(program_id: str, body: FundCreate,
                ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> FundRead:
        fund = service.create_fund(
            session, ctx.tenant_id, program_id, code=body.code, name=body.name,
            unit_id=body.unit_id, budget=body.budget, period_start=body.period_start,
            period_end=body.period_end, claim_deadline=body.claim_deadline,
            formula=body.formula, accrual_percent=body.accrual_percent, actor=ctx.actor)
        return FundRead.model_validate(fund)

    return ctx.write(body, run, 201)


@router.get("/mdf-funds/{fund_id}", response_model=FundRead, summary="Read a fund")
def get_fund(fund_id: str, ctx: Ctx = Depends(need("read"))) -> FundRead:
    with ctx.read() as session:
        _fund_program(ctx, session, fund_id)
        return FundRead.model_validate(service.get_fund(session, ctx.tenant_id, fund_id))


@router.post("/mdf-funds/{fund_id}/allocations", response_model=AllocationRead,
             summary="Allocate part of the fund to a partner (never beyond the fund)")
def allocate(fund_id: str, body: AllocationIn, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> AllocationRead:
        _fund_program(ctx, session, fund_id)
        return AllocationRead.model_validate(service.allocate(
            session, ctx.tenant_id, fund_id, body.account_id, body.amount, actor=ctx.actor))

    return ctx.write(body, run)


@router.post("/mdf-funds/{fund_id}/accrue", response_model=Accrued,
             summary="Top allocations up to the accrual share of each partner's purchases")
def accrue(fund_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> Accrued:
        _fund_program(ctx, session, fund_id)
        return Accrued(allocated=service.accrue(session, ctx.tenant_id, fund_id,
                                                actor=ctx.actor))

    return ctx.write(None, run)


@router.get("/mdf-funds/{fund_id}/partners/{account_id}", response_model=PartnerViewRead,
            summary="A partner's allocated, committed, claimed, paid and remaining funds")
def partner_view(fund_id: str, account_id: str,
                 ctx: Ctx = Depends(need("read"))) -> PartnerViewRead:
    with ctx.read() as session:
        _fund_program(ctx, session, fund_id)
        view = service.partner_view(session, ctx.tenant_id, fund_id, account_id)
    return PartnerViewRead(fund_id=fund_id, account_id=account_id, allocated=view.allocated,
                           committed=view.committed, claimed=view.claimed, paid=view.paid,
                           expired=view.expired, remaining=view.remaining)


@router.post("/mdf-funds/{fund_id}/requests", status_code=201, response_model=MdfClaimRead,
             summary="Ask for pre-approval of a co-marketing activity")
def request(fund_id: str, body: RequestIn,
            ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> MdfClaimRead:
        _fund_program(ctx, session, fund_id)
        return MdfClaimRead.model_validate(service.request(
            session, ctx.tenant_id, fund_id, account_id=body.account_id,
            activity=body.activity, estimated_cost=body.estimated_cost, media=body.media,
            actor=ctx.actor))

    return ctx.write(body, run, 201)


@router.post("/mdf-funds/{fund_id}/claims", status_code=201, response_model=MdfClaimRead,
             summary="Claim a reimbursement with proof (held on the allocation)")
def claim(fund_id: str, body: ClaimIn, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> MdfClaimRead:
        _fund_program(ctx, session, fund_id)
        return MdfClaimRead.model_validate(service.submit_claim(
            session, ctx.tenant_id, fund_id, account_id=body.account_id,
            actual_cost=body.actual_cost, proof_ref=body.proof_ref,
            invoice_ref=body.invoice_ref, other_brands=body.other_brands,
            activity=body.activity, media=body.media, claim_id=body.claim_id,
            actor=ctx.actor))

    return ctx.write(body, run, 201)


@router.get("/mdf-funds/{fund_id}/claims", response_model=MdfClaimPage,
            summary="List a fund's requests and claims")
def list_claims(fund_id: str, status: str | None = Query(None, max_length=12),
                account_id: str | None = Query(None, max_length=40),
                limit: int = Query(50, ge=1, le=MAX_LIMIT),
                cursor: str | None = Query(None, max_length=200),
                ctx: Ctx = Depends(need("read"))) -> MdfClaimPage:
    with ctx.read() as session:
        _fund_program(ctx, session, fund_id)
        rows = service.list_claims(session, ctx.tenant_id, fund_id, status=status,
                                   account_id=account_id, limit=limit,
                                   after=decode_cursor(cursor))
        items = [MdfClaimRead.model_validate(r) for r in rows[:limit]]
    return MdfClaimPage(items=items,
                        next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.post("/mdf-claims/{claim_id}/preapprove", response_model=MdfClaimRead,
             summary="Pre-approve a request (holds the amount on the allocation)")
def preapprove(claim_id: str, body: PreapprovalIn | None = None,
               ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> MdfClaimRead:
        _claim_program(ctx, session, claim_id)
        return MdfClaimRead.model_validate(service.preapprove(
            session, ctx.tenant_id, claim_id, actor=ctx.actor,
            amount=body.amount if body else None))

    return ctx.write(body, run)


@router.post("/mdf-claims/{claim_id}/approve", response_model=MdfClaimRead,
             summary="Pay a claim into the partner's money wallet")
def approve(claim_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> MdfClaimRead:
        _claim_program(ctx, session, claim_id)
        return MdfClaimRead.model_validate(
            service.approve_claim(session, ctx.tenant_id, claim_id, actor=ctx.actor))

    return ctx.write(None, run)


@router.post("/mdf-claims/{claim_id}/reject", response_model=MdfClaimRead,
             summary="Reject a request or claim with a reason (releases its hold)")
def reject(claim_id: str, body: RejectIn, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> MdfClaimRead:
        _claim_program(ctx, session, claim_id)
        return MdfClaimRead.model_validate(service.reject_claim(
            session, ctx.tenant_id, claim_id, actor=ctx.actor, reason=body.reason))

    return ctx.write(body, run)
