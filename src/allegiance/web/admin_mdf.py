"""Admin: co-marketing (MDF) funds of the program and their queue — pre-approval requests
(pre-approve, optionally for less than the formula gives, or reject with a reason) and fund
claims with proof (pay the reimbursement into the partner's money wallet, or reject with a
reason); one at a time or the ticked ones together."""

from __future__ import annotations

from decimal import InvalidOperation

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from allegiance import mdf
from allegiance.kit.errors import NotFound, ValidationFailed
from allegiance.kit.money import to_minor
from allegiance.web import bulk, queries, queue_queries
from allegiance.web.forms import act, url
from allegiance.web.security import Admin, admin, admin_form, reading
from allegiance.web.templating import render

router = APIRouter()
PAGE = 50
HOME = "/admin/co-marketing"


@router.get("/co-marketing")
def mdf_queue(request: Request, status: str = Query("open", max_length=20),
              fund: str = Query("", max_length=40),
              before: str | None = Query(None, max_length=40),
              ctx: Admin = Depends(admin("view"))) -> Response:
    program = ctx.need_program()
    if status not in queue_queries.MDF_QUEUES:
        status = "open"
    with reading(ctx.db) as s:
        funds = queue_queries.funds(s, ctx.tenant_id, program.id)
        chosen = [f.id for f in funds if not fund or f.id == fund]
        rows = queue_queries.mdf_claims(s, ctx.tenant_id, chosen,
                                        statuses=queue_queries.MDF_QUEUES[status],
                                        before=before, limit=PAGE)
        names = queries.account_names(s, ctx.tenant_id, [r.account_id for r in rows])
        units = queries.units_by_id(s, ctx.tenant_id, program.id)
    by_id = {f.id: f for f in funds}
    previews = {}
    for row in rows[:PAGE]:
        if row.status == "requested" and row.estimated_cost is not None:
            previews[row.id] = mdf.Formula.parse(by_id[row.fund_id].formula).reimbursement(
                row.estimated_cost)
    more = rows[PAGE - 1].id if len(rows) > PAGE else None
    return render(request, "admin/mdf.html", {
        "ctx": ctx, "rows": rows[:PAGE], "funds": funds, "by_id": by_id, "fund": fund,
        "names": names, "units": units, "previews": previews, "status": status,
        "queues": list(queue_queries.MDF_QUEUES),
        "older_url": url(HOME, status=status, fund=fund, before=more) if more else None})


def _amount(text: str, currency: str | None) -> int | None:
    """An optional amount in the fund's currency ("250" or "250.00") as minor units."""
    if not text.strip():
        return None
    try:
        value = to_minor(text.strip().replace(",", ""), currency or "USD")
    except (ValueError, InvalidOperation):
        raise ValidationFailed("the amount must be a number in the fund's currency, "
                               "like 250.00", field="amount") from None
    if value <= 0:
        raise ValidationFailed("the amount must be above 0", field="amount")
    return value


def _decide(s: Session, ctx: Admin, claim_id: str, action: str, reason: str,
            amount: str = "") -> mdf.MdfClaim:
    claim = mdf.get_claim(s, ctx.tenant_id, claim_id)
    fund = mdf.get_fund(s, ctx.tenant_id, claim.fund_id)
    if ctx.program is None or fund.program_id != ctx.program.id:
        raise NotFound(f"co-marketing claim {claim_id} not found", field="claim_id")
    if action == "approve":
        if claim.status == "requested":
            unit = queries.units_by_id(s, ctx.tenant_id, fund.program_id).get(fund.unit_id)
            return mdf.preapprove(s, ctx.tenant_id, claim_id, actor=ctx.actor,
                                  amount=_amount(amount, unit.currency if unit else None))
        return mdf.approve_claim(s, ctx.tenant_id, claim_id, actor=ctx.actor)
    if action == "reject":
        if not reason.strip():
            raise ValidationFailed("a rejection needs a reason", field="reason")
        return mdf.reject_claim(s, ctx.tenant_id, claim_id, actor=ctx.actor,
                                reason=reason.strip())
    raise ValidationFailed("approve or reject", field="action")


def _said(claim: mdf.MdfClaim) -> str:
    return {"preapproved": f"Request {claim.id} is pre-approved.",
            "paid": f"Claim {claim.id} is paid.",
            "rejected": f"{claim.id} is rejected."}.get(claim.status,
                                                        f"{claim.id} is {claim.status}.")


@router.post("/co-marketing/{claim_id}/{action}")
def decide(claim_id: str, action: str, reason: str = Form("", max_length=1000),
           amount: str = Form("", max_length=30), back: str = Form("open", max_length=20),
           ctx: Admin = Depends(admin_form("mdf"))) -> RedirectResponse:
    return act(ctx, lambda s: _decide(s, ctx, claim_id, action, reason, amount), _said,
               url(HOME, status=back))


@router.post("/co-marketing")
async def decide_many(request: Request,
                      ctx: Admin = Depends(admin_form("mdf"))) -> RedirectResponse:
    """Approve pre-approves the ticked requests (for the formula's amount) and pays the
    ticked claims; reject needs a reason."""
    ids, action, reason = await bulk.ticked(request)
    if action == "reject" and not reason.strip():
        ctx.say("error", "A rejection needs a reason.")
        return RedirectResponse(HOME, status_code=303)
    return bulk.apply_each(ctx, ids, lambda s, i: _decide(s, ctx, i, action, reason),
                           "request or claim", HOME)
