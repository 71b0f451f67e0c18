"""Admin: the review queue of partner sales claims. Filter by status, overdue (past the
review deadline), account and invoice or seller text; approve (the claim earns as a purchase
through the rules in force at the invoice date) or reject with a reason, one at a time or the
ticked ones together; download the proof file. The claims service refuses a reviewer who
submitted the claim. Deciding needs the ``redemptions`` permission (the queues' one)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from allegiance import claims, members
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError, NotFound, ValidationFailed
from allegiance.web import queries
from allegiance.web.forms import act, url
from allegiance.web.portal_base import proof_download
from allegiance.web.security import Admin, admin, admin_form, reading
from allegiance.web.templating import render

router = APIRouter()
PAGE = 50
PERMISSION = "redemptions"
STATUSES = ("submitted", "approved", "rejected", "duplicate", "all")


def _queue(s: Session, tenant_id: str, program_id: str, *, status: str, overdue: bool,
           account: str | None, text: str, after: str | None) -> list[claims.SalesClaim]:
    """Oldest first (the review order), ``PAGE + 1`` rows for the pager."""
    model = claims.SalesClaim
    query = select(model).where(model.tenant_id == tenant_id, model.program_id == program_id)
    if status != "all":
        query = query.where(model.status == status)
    if overdue:
        query = query.where(model.status == "submitted", model.review_due_at < clock.now())
    if account:
        query = query.where(model.account_id == account)
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        query = query.where(or_(model.invoice_number.ilike(like), model.seller.ilike(like)))
    if after:
        query = query.where(model.id > after)
    return list(s.scalars(query.order_by(model.id).limit(PAGE + 1)))


def _submitters(s: Session, tenant_id: str, rows: list[claims.SalesClaim]) -> dict[str, str]:
    """``member_user:<id>`` → the user's name, in one query (other actors stay as they are)."""
    ids = sorted({r.submitted_by.removeprefix("member_user:") for r in rows
                  if r.submitted_by.startswith("member_user:")})
    if not ids:
        return {}
    return {f"member_user:{u.id}": u.name for u in s.scalars(select(members.User).where(
        members.User.tenant_id == tenant_id, members.User.id.in_(ids)))}


@router.get("/claims")
def claim_queue(request: Request, status: str = Query("submitted", max_length=12),
                overdue: bool = Query(False), account: str = Query("", max_length=40),
                q: str = Query("", max_length=100), after: str | None = Query(None, max_length=40),
                ctx: Admin = Depends(admin("view"))) -> Response:
    program = ctx.need_program()
    status = status if status in STATUSES else "submitted"
    with reading(ctx.db) as s:
        rows = _queue(s, ctx.tenant_id, program.id, status=status, overdue=overdue,
                      account=account or None, text=q.strip(), after=after)
        names = queries.account_names(s, ctx.tenant_id, sorted({r.account_id for r in rows}))
        people = _submitters(s, ctx.tenant_id, rows)
    more = rows[PAGE - 1].id if len(rows) > PAGE else None
    filters = {"status": status, "overdue": "1" if overdue else None, "account": account,
               "q": q}
    return render(request, "admin/claims.html", {
        "ctx": ctx, "rows": rows[:PAGE], "names": names, "people": people, "status": status,
        "statuses": STATUSES, "overdue": overdue, "account": account, "q": q,
        "now": clock.now(), "back": url("/admin/claims", **filters),
        "newer_url": url("/admin/claims", **filters, after=more) if more else None})


def _of_program(s: Session, ctx: Admin, claim_id: str) -> claims.SalesClaim:
    """A claim of the chosen program, else not found (another tenant's or program's)."""
    row = claims.get_claim(s, ctx.tenant_id, claim_id)
    if ctx.program is None or row.program_id != ctx.program.id:
        raise NotFound(f"claim {claim_id} not found", field="claim_id")
    return row


def _decide(s: Session, ctx: Admin, claim_id: str, action: str, reason: str) -> Any:
    _of_program(s, ctx, claim_id)
    if action == "approve":
        return claims.approve(s, ctx.tenant_id, claim_id, actor=ctx.actor)
    if action == "reject":
        if not reason.strip():
            raise ValidationFailed("a rejection needs a reason", field="reason")
        return claims.reject(s, ctx.tenant_id, claim_id, actor=ctx.actor,
                             reason=reason.strip())
    raise ValidationFailed("unknown action", field="action")


def _back(target: str) -> str:
    return target if target.startswith("/admin/claims") and "//" not in target \
        else "/admin/claims"


@router.post("/claims/{claim_id}/{action}")
def decide(claim_id: str, action: str, reason: str = Form("", max_length=1000),
           back: str = Form("", max_length=400),
           ctx: Admin = Depends(admin_form(PERMISSION))) -> RedirectResponse:
    with reading(ctx.db) as s:
        _of_program(s, ctx, claim_id)
    return act(ctx, lambda s: _decide(s, ctx, claim_id, action, reason),
               lambda row: f"Claim {row.id} is {row.status}.", _back(back))


@router.post("/claims")
async def decide_many(request: Request,
                      ctx: Admin = Depends(admin_form(PERMISSION))) -> RedirectResponse:
    """The ticked claims, each in its own transaction (one failure stops no other)."""
    form = await request.form()
    ids = [str(v) for v in form.getlist("ids")][:PAGE]
    action = str(form.get("action") or "")
    reason = str(form.get("reason") or "")[:1000]
    back = _back(str(form.get("back") or "")[:400])
    if not ids:
        ctx.say("error", "Tick at least one claim.")
        return RedirectResponse(back, status_code=303)
    done, failed = 0, []
    for claim_id in ids:
        try:
            with ctx.db.transaction() as s:
                _decide(s, ctx, claim_id, action, reason)
            done += 1
        except AllegianceError as exc:
            failed.append(f"{claim_id}: {exc.message}")
    text = f"{done} claim(s) done." + (f" Not done: {'; '.join(failed)}" if failed else "")
    ctx.say("error" if failed else "ok", text)
    return RedirectResponse(back, status_code=303)


@router.get("/claims/{claim_id}/proof")
def claim_proof(claim_id: str, ctx: Admin = Depends(admin("view"))) -> Response:
    with reading(ctx.db) as s:
        row = _of_program(s, ctx, claim_id)
    return proof_download(row.proof_ref, ctx.tenant_id)
