"""Admin: the redemptions queue (approve, reject with a reason, fulfil; one at a time or the
ticked ones together), adjustments awaiting a second approver, the catalogue with its stock,
and the operators of the tenant."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from allegiance import audit, ledger, operators, rewards
from allegiance.kit.errors import AllegianceError, NotFound, ValidationFailed
from allegiance.operators import sessions
from allegiance.web import queries
from allegiance.web.forms import act, parse_int, url
from allegiance.web.security import Admin, admin, admin_form, reading
from allegiance.web.templating import render

router = APIRouter()
PAGE = 50
QUEUES = {"open": ("requested", "approved"), "requested": ("requested",),
          "approved": ("approved",), "fulfilled": ("fulfilled",),
          "rejected": ("rejected", "cancelled"), "all": ()}


@router.get("/redemptions")
def redemption_queue(request: Request, status: str = Query("open", max_length=20),
                     before: str | None = Query(None, max_length=40),
                     ctx: Admin = Depends(admin("view"))) -> Response:
    program = ctx.need_program()
    statuses = QUEUES.get(status, QUEUES["open"])
    with reading(ctx.db) as s:
        rows = queries.redemptions(s, ctx.tenant_id, program.id, statuses=statuses,
                                   before=before, limit=PAGE)
        names = queries.account_names(s, ctx.tenant_id, [r.account_id for r in rows])
        items = queries.rewards_by_id(s, ctx.tenant_id, [r.reward_id for r in rows])
        units = queries.units_by_id(s, ctx.tenant_id, program.id)
    more = rows[PAGE - 1].id if len(rows) > PAGE else None
    return render(request, "admin/redemptions.html", {
        "ctx": ctx, "rows": rows[:PAGE], "names": names, "items": items, "units": units,
        "status": status, "queues": list(QUEUES),
        "older_url": url("/admin/redemptions", status=status, before=more) if more else None})


def _decide(s: Session, ctx: Admin, redemption_id: str, action: str, reason: str) -> Any:
    row = rewards.get_redemption(s, ctx.tenant_id, redemption_id)
    if ctx.program is None or row.program_id != ctx.program.id:
        raise NotFound(f"redemption {redemption_id} not found", field="redemption_id")
    if action == "approve":
        return rewards.approve(s, ctx.tenant_id, redemption_id, actor=ctx.actor)
    if action == "reject":
        if not reason.strip():
            raise ValidationFailed("a rejection needs a reason", field="reason")
        return rewards.reject(s, ctx.tenant_id, redemption_id, actor=ctx.actor,
                              reason=reason.strip())
    if action == "fulfil":
        return rewards.fulfil(s, ctx.tenant_id, redemption_id, actor=ctx.actor)
    raise ValidationFailed("unknown action", field="action")


@router.post("/redemptions/{redemption_id}/{action}")
def decide(redemption_id: str, action: str, reason: str = Form("", max_length=500),
           back: str = Form("open", max_length=20),
           ctx: Admin = Depends(admin_form("redemptions"))) -> RedirectResponse:
    return act(ctx, lambda s: _decide(s, ctx, redemption_id, action, reason),
               lambda row: f"Redemption {row.id} is {row.status}.",
               url("/admin/redemptions", status=back))


@router.post("/redemptions")
async def decide_many(request: Request,
                      ctx: Admin = Depends(admin_form("redemptions"))) -> RedirectResponse:
    """The ticked redemptions, each in its own transaction (one failure stops no other)."""
    form = await request.form()
    ids = [str(v) for v in form.getlist("ids")][:PAGE]
    action = str(form.get("action") or "")
    reason = str(form.get("reason") or "")[:500]
    back = str(form.get("back") or "open")[:20]
    done, failed = 0, []
    for redemption_id in ids:
        try:
            with ctx.db.transaction() as s:
                _decide(s, ctx, redemption_id, action, reason)
            done += 1
        except AllegianceError as exc:
            failed.append(f"{redemption_id}: {exc.message}")
    text = f"{done} redemption(s) done." + (f" Not done: {'; '.join(failed)}" if failed else "")
    ctx.say("error" if failed else "ok", text)
    return RedirectResponse(url("/admin/redemptions", status=back), status_code=303)


@router.get("/catalogue")
def catalogue(request: Request, ctx: Admin = Depends(admin("view"))) -> Response:
    program = ctx.need_program()
    with reading(ctx.db) as s:
        items = rewards.list_rewards(s, ctx.tenant_id, program.id, limit=200)[:200]
        units = queries.units_by_id(s, ctx.tenant_id, program.id)
    return render(request, "admin/catalogue.html", {"ctx": ctx, "items": items, "units": units})


@router.post("/catalogue/{reward_id}")
def update_reward(reward_id: str, stock: str = Form("", max_length=20),
                  status: str = Form("", max_length=10),
                  ctx: Admin = Depends(admin_form("catalogue"))) -> RedirectResponse:
    def run(s: Session) -> rewards.Reward:
        reward = rewards.get_reward(s, ctx.tenant_id, reward_id)
        if ctx.program is None or reward.program_id != ctx.program.id:
            raise NotFound(f"reward {reward_id} not found", field="reward_id")
        changes: dict[str, Any] = {}
        if stock.strip():
            value = parse_int(stock)
            if value is None or value < 0:
                raise ValidationFailed("stock must be a whole number, 0 or more", field="stock")
            changes["stock"] = value
        if status in ("active", "retired"):
            changes["status"] = status
        return rewards.update_reward(s, ctx.tenant_id, reward_id, changes)

    return act(ctx, run, lambda r: f"{r.name} saved.", "/admin/catalogue")


@router.get("/operators")
def operator_list(request: Request, ctx: Admin = Depends(admin("operators"))) -> Response:
    with reading(ctx.db) as s:
        rows = operators.list_operators(s, ctx.tenant_id)
    return render(request, "admin/operators.html", {
        "ctx": ctx, "rows": rows, "roles": operators.ROLES, "role_names": operators.ROLE_NAMES})


@router.post("/operators")
def create_operator(email: str = Form("", max_length=320), name: str = Form("", max_length=200),
                    role: str = Form("read_only", max_length=20),
                    password: str = Form("", max_length=1024),
                    ctx: Admin = Depends(admin_form("operators"))) -> RedirectResponse:
    return act(ctx, lambda s: operators.create_operator(
        s, ctx.tenant_id, email=email, name=name, role=role, password=password,
        actor=ctx.actor), lambda o: f"{o.email} may now sign in.", "/admin/operators")


@router.post("/operators/{operator_id}")
def update_operator(operator_id: str, role: str = Form("", max_length=20),
                    status: str = Form("", max_length=10),
                    ctx: Admin = Depends(admin_form("operators"))) -> RedirectResponse:
    def run(s: Session) -> operators.OperatorUser:
        if operator_id == ctx.user.id:
            raise ValidationFailed("you cannot change your own role or status", field="role")
        row = operators.update_operator(s, ctx.tenant_id, operator_id, role=role or None,
                                        status=status or None, actor=ctx.actor)
        if row.status != "active":
            sessions.revoke_all(s, ctx.tenant_id, "operator", row.id)
        return row

    return act(ctx, run, lambda o: f"{o.email}: {operators.ROLE_NAMES[o.role]}, {o.status}.",
               "/admin/operators")


@router.get("/adjustments")
def adjustment_queue(request: Request, ctx: Admin = Depends(admin("view"))) -> Response:
    program = ctx.need_program()
    with reading(ctx.db) as s:
        rows = queries.pending_adjustments(s, ctx.tenant_id, program.id, limit=PAGE)
    return render(request, "admin/adjustments.html", {"ctx": ctx, "rows": rows})


@router.post("/adjustments/{adjustment_id}/{decision}")
def decide_adjustment(adjustment_id: str, decision: str, reason: str = Form("", max_length=1000),
                      ctx: Admin = Depends(admin_form("adjust"))) -> RedirectResponse:
    """The second approver's decision (never the requester: the ledger refuses that)."""
    def run(s: Session) -> Any:
        row = ledger.get_adjustment(s, ctx.tenant_id, adjustment_id)
        if ctx.program is None or row.program_id != ctx.program.id:
            raise NotFound(f"adjustment {adjustment_id} not found", field="adjustment_id")
        if decision not in ("approve", "reject"):
            raise ValidationFailed("approve or reject", field="decision")
        if decision == "reject" and not reason.strip():
            raise ValidationFailed("a rejection needs a reason", field="reason")
        done = ledger.decide_adjustment(s, ctx.tenant_id, adjustment_id,
                                        approve=decision == "approve", decided_by=ctx.actor,
                                        reason=reason.strip() or None)
        audit.record(s, ctx.tenant_id, actor=ctx.actor, action=f"adjustment.{decision}d",
                     object_type="adjustment", object_id=done.id,
                     after={"status": done.status, "amount": done.amount,
                            "reason": reason.strip() or None})
        return done

    return act(ctx, run, lambda a: f"Adjustment {a.id} is {a.status}.", "/admin/adjustments")
