"""Admin: custom requests (Utinet's personal managers). An operator sees the requests of the
accounts it manages (or every request of the program), prices a request in one of the
program's units, fulfils an accepted one, or declines. Only the account's manager may price
or fulfil — the service refuses anyone else."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from allegiance.kit.errors import NotFound, ValidationFailed
from allegiance.memberships import managers
from allegiance.web import queries
from allegiance.web.forms import act, parse_int, url
from allegiance.web.security import Admin, admin, admin_form, reading
from allegiance.web.templating import render

router = APIRouter()
PAGE = 100
QUEUES = {"open": ("requested", "quoted", "accepted"), "done": ("fulfilled",),
          "closed": ("declined", "cancelled"), "all": ()}


@router.get("/requests")
def request_queue(request: Request, status: str = Query("open", max_length=20),
                  mine: bool = Query(True),
                  ctx: Admin = Depends(admin("view"))) -> Response:
    program = ctx.need_program()
    statuses = QUEUES.get(status, QUEUES["open"])
    with reading(ctx.db) as s:
        rows = managers.list_requests(s, ctx.tenant_id, program.id,
                                      manager_id=ctx.user.id if mine else None, limit=PAGE)
        rows = [r for r in rows if not statuses or r.status in statuses]
        names = queries.account_names(s, ctx.tenant_id, [r.account_id for r in rows])
        units = queries.units_by_id(s, ctx.tenant_id, program.id)
    return render(request, "admin/requests.html", {
        "ctx": ctx, "rows": rows, "names": names, "units": units, "status": status,
        "mine": mine, "queues": list(QUEUES)})


def _owned(s: Session, ctx: Admin, request_id: str) -> None:
    row = managers.get_request(s, ctx.tenant_id, request_id)
    if ctx.program is None or row.program_id != ctx.program.id:
        raise NotFound(f"custom request {request_id} not found", field="custom_request_id")


def _back(back: str) -> str:
    return url("/admin/requests", status=back if back in QUEUES else "open")


@router.post("/requests/{request_id}/quote")
def quote(request_id: str, unit_id: str = Form(..., max_length=40),
          price: str = Form(..., max_length=30), note: str = Form("", max_length=1000),
          valid_days: str = Form("", max_length=10), back: str = Form("open", max_length=20),
          ctx: Admin = Depends(admin_form("redemptions"))) -> RedirectResponse:
    def run(s: Session) -> Any:
        _owned(s, ctx, request_id)
        amount = parse_int(price)
        if amount is None or amount <= 0:
            raise ValidationFailed("the price is a positive whole number", field="price")
        days = parse_int(valid_days)
        return managers.quote(s, ctx.tenant_id, request_id, operator_id=ctx.user.id,
                              unit_id=unit_id, price=amount, note=note.strip() or None,
                              valid_days=days, actor=ctx.actor)

    return act(ctx, run, lambda row: f"Request {row.id} is quoted at {row.price}.",
               _back(back))


@router.post("/requests/{request_id}/{action}")
def decide(request_id: str, action: str, reason: str = Form("", max_length=500),
           back: str = Form("open", max_length=20),
           ctx: Admin = Depends(admin_form("redemptions"))) -> RedirectResponse:
    def run(s: Session) -> Any:
        _owned(s, ctx, request_id)
        if action == "fulfil":
            return managers.fulfil(s, ctx.tenant_id, request_id, operator_id=ctx.user.id,
                                   actor=ctx.actor)
        if action == "decline":
            return managers.decline(s, ctx.tenant_id, request_id,
                                    reason=reason.strip() or None, actor=ctx.actor)
        raise ValidationFailed("unknown action", field="action")

    return act(ctx, run, lambda row: f"Request {row.id} is {row.status}.", _back(back))
