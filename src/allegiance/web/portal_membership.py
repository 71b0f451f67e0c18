"""Portal: membership. Per program of the account: its paid plans' subscriptions (status
now — trial, active, grace, lapsed, cancelled — and until when) and every perk of the
program with whether the account may use it now, why (the plan or tier level that unlocks
it, or what it needs) and until when — the same answers integrators get from
``GET /v1/programs/{id}/accounts/{account}/perks``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from allegiance import memberships, tenants
from allegiance.kit import clock
from allegiance.web.portal_base import account_of
from allegiance.web.security import Member, member, reading
from allegiance.web.templating import render

router = APIRouter()


@dataclass
class PlanRow:
    plan: memberships.Plan
    subscription: memberships.Subscription
    state: memberships.State


@dataclass
class ProgramView:
    program: tenants.Program
    plans: list[PlanRow]
    perks: list[memberships.PerkState]


@router.get("/membership")
def membership_page(request: Request, account: str | None = Query(None, max_length=40),
                    ctx: Member = Depends(member)) -> Response:
    account_id = account_of(ctx, account)
    views: list[ProgramView] = []
    now = clock.now()
    with reading(ctx.db) as s:
        for program in ctx.programs:
            rows = [PlanRow(memberships.get_plan(s, ctx.tenant_id, sub.plan_id), sub,
                            memberships.state(s, sub, now))
                    for sub in memberships.subscriptions_of(s, ctx.tenant_id, program.id,
                                                            account_id)]
            perks = memberships.perks_of(s, ctx.tenant_id, program.id, account_id)
            if rows or perks:
                views.append(ProgramView(program, rows, perks))
    return render(request, "portal/membership.html", {
        "ctx": ctx, "account_id": account_id, "views": views})
