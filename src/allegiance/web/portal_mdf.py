"""Portal: co-marketing funds (MDF). Per fund of the program: what the account was allocated,
what is committed (pre-approved or claimed and held), claimed and awaiting payment, paid,
expired and what remains (the funds of every program the account is in); its requests and claims. A member asks for pre-approval of an
activity, then claims the reimbursement with proof of performance (a file) and the invoice
(or claims directly, held on the allocation at once)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import mdf, tenants
from allegiance.kit import clock
from allegiance.kit.errors import NotFound, ValidationFailed
from allegiance.web.forms import act, parse_int, url
from allegiance.web.portal_base import (
    account_of,
    may_act,
    need_act,
    parse_money,
    proof_download,
    with_proof,
)
from allegiance.web.security import Member, member, member_form, reading
from allegiance.web.templating import render

router = APIRouter()
CLAIMS_SHOWN = 50


@dataclass
class FundView:
    fund: mdf.MdfFund
    view: mdf.PartnerView
    currency: str | None
    is_open: bool
    claims: list[mdf.MdfClaim]


def _fund(s: Session, ctx: Member, fund_id: str) -> mdf.MdfFund:
    fund = s.get(mdf.MdfFund, (ctx.tenant_id, fund_id))
    if fund is None or all(p.id != fund.program_id for p in ctx.programs):
        raise NotFound(f"fund {fund_id} not found", field="fund_id")
    return fund


def _visible(ctx: Member, fund_id: str, claim_id: str | None) -> None:
    """A fund of the user's programs and a request of its tree, else not found (404)."""
    with reading(ctx.db) as s:
        _fund(s, ctx, fund_id)
        if claim_id is not None:
            row = mdf.get_claim(s, ctx.tenant_id, claim_id)
            if row.fund_id != fund_id or not ctx.sees(row.account_id):
                raise NotFound(f"co-marketing claim {claim_id} not found", field="claim_id")


@router.get("/co-marketing")
def funds(request: Request, account: str | None = Query(None, max_length=40),
          ctx: Member = Depends(member)) -> Response:
    account_id = account_of(ctx, account)
    shown: list[FundView] = []
    if ctx.programs:
        now = clock.now()
        with reading(ctx.db) as s:
            rows = s.scalars(select(mdf.MdfFund).where(
                mdf.MdfFund.tenant_id == ctx.tenant_id,
                mdf.MdfFund.program_id.in_([p.id for p in ctx.programs]))
                .order_by(mdf.MdfFund.period_start.desc(), mdf.MdfFund.code).limit(20))
            for fund in list(rows):
                view = mdf.partner_view(s, ctx.tenant_id, fund.id, account_id)
                is_open = fund.status == "open" and now < fund.claim_deadline
                if not is_open and view.allocated == 0:
                    continue
                unit = s.get(tenants.Unit, (ctx.tenant_id, fund.unit_id))
                mine = mdf.list_claims(s, ctx.tenant_id, fund.id, account_id=account_id,
                                       limit=CLAIMS_SHOWN)[:CLAIMS_SHOWN]
                shown.append(FundView(fund, view, unit.currency if unit else None, is_open,
                                      sorted(mine, key=lambda c: c.id, reverse=True)))
    return render(request, "portal/co_marketing.html", {
        "ctx": ctx, "account_id": account_id, "funds": shown,
        "may_act": may_act(ctx, account_id)})


@router.post("/co-marketing/{fund_id}/request")
def request_preapproval(fund_id: str, account: str = Form("", max_length=40),
                        activity: str = Form("", max_length=500),
                        media: str = Form("", max_length=64),
                        estimated_cost: str = Form("", max_length=20),
                        ctx: Member = Depends(member_form)) -> RedirectResponse:
    account_id = account_of(ctx, account or None)
    _visible(ctx, fund_id, None)

    def run(s: Session) -> mdf.MdfClaim:
        need_act(ctx, account_id)
        cost = parse_money(estimated_cost, "estimated_cost")
        assert cost is not None
        return mdf.request(s, ctx.tenant_id, fund_id, account_id=account_id,
                           activity=activity.strip(), estimated_cost=cost,
                           media=media.strip() or None, actor=ctx.actor)

    return act(ctx, run, lambda row: f"Request {row.id} waits for pre-approval.",
               url("/portal/co-marketing", account=account_id))


@router.post("/co-marketing/{fund_id}/claim")
def claim(fund_id: str, account: str = Form("", max_length=40),
          claim_id: str = Form("", max_length=40), activity: str = Form("", max_length=500),
          media: str = Form("", max_length=64), actual_cost: str = Form("", max_length=20),
          other_brands: str = Form("0", max_length=4),
          invoice_ref: str = Form("", max_length=200), proof: UploadFile | None = File(None),
          ctx: Member = Depends(member_form)) -> RedirectResponse:
    account_id = account_of(ctx, account or None)
    _visible(ctx, fund_id, claim_id or None)

    def run(s: Session, ref: str) -> mdf.MdfClaim:
        need_act(ctx, account_id)
        cost = parse_money(actual_cost, "actual_cost")
        brands = parse_int(other_brands or "0")
        if brands is None or not 0 <= brands <= 50:
            raise ValidationFailed("other brands must be a whole number from 0 to 50",
                                   field="other_brands")
        if not invoice_ref.strip():
            raise ValidationFailed("enter the invoice number of the activity",
                                   field="invoice_ref")
        assert cost is not None
        return mdf.submit_claim(
            s, ctx.tenant_id, fund_id, account_id=account_id, actual_cost=cost,
            proof_ref=ref, invoice_ref=invoice_ref.strip(), other_brands=brands,
            activity=activity.strip() or None, media=media.strip() or None,
            claim_id=claim_id or None, actor=ctx.actor)

    return with_proof(ctx, proof, run,
                      lambda row: f"Claim {row.id} for {row.amount / 100:,.2f} waits for review.",
                      url("/portal/co-marketing", account=account_id))


@router.get("/co-marketing/claims/{claim_id}/proof")
def claim_proof(claim_id: str, ctx: Member = Depends(member)) -> Response:
    with reading(ctx.db) as s:
        row = mdf.get_claim(s, ctx.tenant_id, claim_id)
    if not ctx.sees(row.account_id):
        raise NotFound(f"co-marketing claim {claim_id} not found", field="claim_id")
    return proof_download(row.proof_ref, ctx.tenant_id)
