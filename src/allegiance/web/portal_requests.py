"""The member portal: the academy (courses done, certifications held) and custom requests
(Utinet). An account with a personal manager asks for an
item that is not in the catalogue, sees the manager's price, and accepts it (the price is held
in its wallet until the manager fulfils it), declines it, or withdraws the request (a held
price comes back). Only users who may spend the account's points accept; every account a page
names is checked against the user's tree (404 otherwise)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from allegiance import members
from allegiance.engagement import academy
from allegiance.kit.errors import Forbidden, NotFound, ValidationFailed
from allegiance.memberships import managers
from allegiance.memberships.models import CustomRequest
from allegiance.web import queries
from allegiance.web.forms import act, url
from allegiance.web.security import Member, member, member_form, reading
from allegiance.web.templating import render

router = APIRouter()


def _account_of(ctx: Member, account: str | None) -> str:
    chosen = account or ctx.account.id
    if not ctx.sees(chosen):
        raise NotFound("no such account", field="account")
    return chosen


@router.get("/requests")
def requests_page(request: Request, account: str | None = Query(None, max_length=40),
                  ctx: Member = Depends(member)) -> Response:
    account_id = _account_of(ctx, account)
    rows: list[CustomRequest] = []
    manager = None
    units: dict[str, Any] = {}
    if ctx.program is not None:
        with reading(ctx.db) as s:
            rows = managers.list_requests(s, ctx.tenant_id, ctx.program.id,
                                          account_id=account_id)
            manager = managers.manager_of(s, ctx.tenant_id, account_id)
            units = queries.units_by_id(s, ctx.tenant_id, ctx.program.id)
    may_spend = members.may_spend(ctx.user.role, "account", account_id == ctx.account.id, True)
    return render(request, "portal/requests.html", {
        "ctx": ctx, "account_id": account_id, "rows": rows, "has_manager": manager is not None,
        "units": units, "may_spend": may_spend})


@router.post("/requests")
def ask(account: str = Form("", max_length=40), description: str = Form("", max_length=2000),
        quantity: int = Form(1, ge=1, le=10000),
        ctx: Member = Depends(member_form)) -> RedirectResponse:
    account_id = _account_of(ctx, account or None)
    program = ctx.program

    def run(s: Session) -> CustomRequest:
        if program is None:
            raise ValidationFailed("you are in no program", field="program_id")
        return managers.create_request(s, ctx.tenant_id, program.id, account_id,
                                       description=description, quantity=quantity,
                                       user_id=ctx.user.id, actor=ctx.actor)

    return act(ctx, run, "Sent to your personal manager, who will price it.",
               url("/portal/requests", account=account_id))


@router.post("/requests/{request_id}/{action}")
def answer(request_id: str, action: str, reason: str = Form("", max_length=500),
           ctx: Member = Depends(member_form)) -> RedirectResponse:
    with reading(ctx.db) as s:
        row = managers.get_request(s, ctx.tenant_id, request_id)
        account_id = row.account_id
        if not ctx.sees(account_id) or ctx.program is None or \
                row.program_id != ctx.program.id:
            raise NotFound("no such request", field="custom_request_id")

    def run(s: Session) -> CustomRequest:
        if not members.may_spend(ctx.user.role, "account", account_id == ctx.account.id, True):
            raise Forbidden("your role may not spend this account's points", field="account")
        if action == "accept":
            return managers.accept(s, ctx.tenant_id, request_id, actor=ctx.actor)
        if action == "decline":
            return managers.decline(s, ctx.tenant_id, request_id,
                                    reason=reason.strip() or None, actor=ctx.actor)
        if action == "cancel":
            return managers.cancel(s, ctx.tenant_id, request_id,
                                   reason=reason.strip() or None, actor=ctx.actor)
        raise ValidationFailed("unknown action", field="action")

    said = {"accept": "Accepted: the price is reserved until your manager delivers.",
            "decline": "Declined.", "cancel": "Withdrawn; anything reserved is given back."}
    return act(ctx, run, said.get(action, "Done."), url("/portal/requests", account=account_id))


@router.get("/academy")
def academy_page(request: Request, account: str | None = Query(None, max_length=40),
                 ctx: Member = Depends(member)) -> Response:
    """The program's courses (done or not) and the account's certifications with their
    state and expiry."""
    account_id = _account_of(ctx, account)
    courses: list[Any] = []
    done: dict[str, Any] = {}
    certifications: list[Any] = []
    held: dict[str, Any] = {}
    if ctx.program is not None:
        with reading(ctx.db) as s:
            courses = academy.list_courses(s, ctx.tenant_id, ctx.program.id)
            certifications = academy.list_certifications(s, ctx.tenant_id, ctx.program.id)
            record = academy.transcript(s, ctx.tenant_id, ctx.program.id, account_id)
            for course, completion in record.completions:
                done[course.code] = completion.completed_at  # the latest wins (sorted)
            held = {c.code: h for c, h in record.certifications}
    return render(request, "portal/academy.html", {
        "ctx": ctx, "account_id": account_id, "courses": courses, "done": done,
        "certifications": certifications, "held": held})
