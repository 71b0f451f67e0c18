"""HTTP routes of partner sales claims: members submit (integration), operators review (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance.claims import service
from allegiance.claims.schemas import ClaimCreate, ClaimPage, ClaimRead, Rejection
from allegiance.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["claims"])


@router.post("/programs/{program_id}/claims", status_code=201, response_model=ClaimRead,
             summary="Submit a sales claim (a copy of a claimed invoice is stored as duplicate)")
def submit(program_id: str, body: ClaimCreate,
           ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> ClaimRead:
        claim = service.submit(
            session, ctx.tenant_id, program_id, account_id=body.account_id,
            invoice_number=body.invoice_number, invoice_date=body.invoice_date,
            seller=body.seller, lines=[line.model_dump() for line in body.lines],
            proof_ref=body.proof_ref, user_id=body.user_id, currency=body.currency,
            actor=ctx.actor)
        return ClaimRead.model_validate(claim)

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/claims", response_model=ClaimPage,
            summary="The claims queue (filter by status, account, overdue review)")
def list_claims(program_id: str, status: str | None = Query(None, max_length=12),
                account_id: str | None = Query(None, max_length=40), overdue: bool = False,
                limit: int = Query(50, ge=1, le=MAX_LIMIT),
                cursor: str | None = Query(None, max_length=200),
                ctx: Ctx = Depends(need("read"))) -> ClaimPage:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = service.list_claims(session, ctx.tenant_id, program_id, status=status,
                                   account_id=account_id, overdue=overdue, limit=limit,
                                   after=decode_cursor(cursor))
        items = [ClaimRead.model_validate(r) for r in rows[:limit]]
    return ClaimPage(items=items,
                     next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/claims/{claim_id}", response_model=ClaimRead, summary="Read a claim")
def get_claim(claim_id: str, ctx: Ctx = Depends(need("read"))) -> ClaimRead:
    with ctx.read() as session:
        claim = service.get_claim(session, ctx.tenant_id, claim_id)
        ctx.check_program(claim.program_id)
        return ClaimRead.model_validate(claim)


@router.post("/claims/{claim_id}/approve", response_model=ClaimRead,
             summary="Approve a claim: it earns as a purchase (reviewer ≠ submitter)")
def approve(claim_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> ClaimRead:
        ctx.check_program(service.get_claim(session, ctx.tenant_id, claim_id).program_id)
        return ClaimRead.model_validate(
            service.approve(session, ctx.tenant_id, claim_id, actor=ctx.actor))

    return ctx.write(None, run)


@router.post("/claims/{claim_id}/reject", response_model=ClaimRead,
             summary="Reject a claim with a reason")
def reject(claim_id: str, body: Rejection, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> ClaimRead:
        ctx.check_program(service.get_claim(session, ctx.tenant_id, claim_id).program_id)
        return ClaimRead.model_validate(
            service.reject(session, ctx.tenant_id, claim_id, actor=ctx.actor,
                           reason=body.reason))

    return ctx.write(body, run)
