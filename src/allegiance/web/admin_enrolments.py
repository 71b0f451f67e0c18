"""Admin: the enrolment applications of the program (programs whose enrolment mode is
``application``): approve, or reject with a reason; one at a time or the ticked ones."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from allegiance import members
from allegiance.kit.errors import NotFound, ValidationFailed
from allegiance.web import bulk, queue_queries
from allegiance.web.forms import act, url
from allegiance.web.security import Admin, admin, admin_form, reading
from allegiance.web.templating import render

router = APIRouter()
PAGE = 50


@router.get("/applications")
def application_queue(request: Request, status: str = Query("applied", max_length=20),
                      q: str = Query("", max_length=200),
                      before: str | None = Query(None, max_length=40),
                      ctx: Admin = Depends(admin("view"))) -> Response:
    program = ctx.need_program()
    if status not in queue_queries.APPLICATION_STATUSES:
        status = "applied"
    with reading(ctx.db) as s:
        rows = queue_queries.applications(s, ctx.tenant_id, program.id, status=status,
                                          q=q.strip() or None, before=before, limit=PAGE)
    more = rows[PAGE - 1][0].id if len(rows) > PAGE else None
    return render(request, "admin/applications.html", {
        "ctx": ctx, "rows": rows[:PAGE], "status": status, "q": q,
        "statuses": queue_queries.APPLICATION_STATUSES,
        "mode": program.enrolment_mode,
        "older_url": url("/admin/applications", status=status, q=q, before=more)
        if more else None})


def _decide(s: Session, ctx: Admin, enrolment_id: str, action: str,
            reason: str) -> members.Enrolment:
    row = members.get_enrolment(s, ctx.tenant_id, enrolment_id)
    if ctx.program is None or row.program_id != ctx.program.id:
        raise NotFound(f"enrolment {enrolment_id} not found", field="enrolment_id")
    if action == "approve":
        return members.approve_application(s, ctx.tenant_id, enrolment_id, actor=ctx.actor,
                                           reason=reason.strip() or None)
    if action == "reject":
        if not reason.strip():
            raise ValidationFailed("a rejection needs a reason", field="reason")
        return members.reject_application(s, ctx.tenant_id, enrolment_id, actor=ctx.actor,
                                          reason=reason.strip())
    raise ValidationFailed("approve or reject", field="action")


@router.post("/applications/{enrolment_id}/{action}")
def decide(enrolment_id: str, action: str, reason: str = Form("", max_length=1000),
           ctx: Admin = Depends(admin_form("enrolments"))) -> RedirectResponse:
    return act(ctx, lambda s: _decide(s, ctx, enrolment_id, action, reason),
               lambda e: f"Application {e.id} is {'approved' if e.status == 'active' else e.status}.",
               "/admin/applications")


@router.post("/applications")
async def decide_many(request: Request,
                      ctx: Admin = Depends(admin_form("enrolments"))) -> RedirectResponse:
    ids, action, reason = await bulk.ticked(request)
    if action == "reject" and not reason.strip():
        ctx.say("error", "A rejection needs a reason.")
        return RedirectResponse("/admin/applications", status_code=303)
    return bulk.apply_each(ctx, ids, lambda s, i: _decide(s, ctx, i, action, reason),
                           "application", "/admin/applications")
