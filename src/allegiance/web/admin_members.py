"""Admin: the dashboard, the member list and Member 360 with its actions (adjust with a
reason, place in a tier, suspend or reactivate, send a portal invitation)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from allegiance import audit, ledger, members, operators, tiers
from allegiance.analytics import snapshots
from allegiance.kit.errors import NotFound, ValidationFailed
from allegiance.kit.settings import get_settings
from allegiance.web import member_queries, queries, queue_queries
from allegiance.web.forms import act, parse_int, url
from allegiance.web.security import Admin, admin, admin_form, reading
from allegiance.web.templating import render

router = APIRouter()
PAGE = 50


@router.get("/dashboard")
def dashboard(request: Request, background: BackgroundTasks,
              ctx: Admin = Depends(admin("view"))) -> Response:
    """The program's KPIs of the last 365 days (the stored analytics KPI report, with its
    time), what waits in the queues, and twelve months of points issued and redeemed."""
    figures = chart = kpis = None
    computed_at = None
    waiting: dict[str, int] = {}
    units: dict[str, Any] = {}
    if ctx.program is not None:
        options = snapshots.page_options()
        stored, stale = snapshots.latest(ctx.db, ctx.tenant_id, ctx.program.id, "kpis", options,
                                         get_settings().report_max_age_seconds)
        if stale:
            snapshots.refresh_later(ctx.db, ctx.tenant_id, ctx.program.id, "kpis", options,
                                    background.add_task)
        kpis, computed_at = stored.report, stored.computed_at
        with reading(ctx.db) as s:
            figures = queries.dashboard(s, ctx.tenant_id, ctx.program.id)
            waiting = queue_queries.waiting(s, ctx.tenant_id, ctx.program.id)
            units = {u.code: u for u in queries.units_by_id(s, ctx.tenant_id,
                                                            ctx.program.id).values()}
        chart = queries.bar_chart(figures.months)
    return render(request, "admin/dashboard.html", {
        "ctx": ctx, "figures": figures, "chart": chart, "kpis": kpis, "waiting": waiting,
        "units": units, "computed_at": computed_at})


@router.get("/members")
def member_list(request: Request, q: str = Query("", max_length=200),
                cursor: str | None = Query(None, max_length=200),
                ctx: Admin = Depends(admin("view"))) -> Response:
    with reading(ctx.db) as s:
        page = members.list_accounts(s, ctx.tenant_id, q=q.strip() or None, limit=PAGE,
                                     cursor=cursor)
        ids = [a.id for a in page.items]
        parents = queries.account_names(s, ctx.tenant_id,
                                        [a.parent_id for a in page.items if a.parent_id])
        balances: dict[str, list[queries.WalletRow]] = {}
        if ctx.program is not None:
            for row in queries.wallets(s, ctx.tenant_id, ids, ctx.program.id):
                if row.owner_type == "account":
                    balances.setdefault(row.owner_id, []).append(row)
    return render(request, "admin/members.html", {
        "ctx": ctx, "page": page, "q": q, "parents": parents, "balances": balances,
        "next_url": url("/admin/members", q=q, cursor=page.next_cursor)
        if page.next_cursor else None})


def _trail(s: Session, tenant_id: str, objects: dict[str, list[str]]) -> list[Any]:
    """The newest audit rows about these objects, by (type, id) so the index serves it."""
    wanted = [and_(audit.AuditRecord.object_type == kind, audit.AuditRecord.object_id.in_(ids))
              for kind, ids in objects.items() if ids]
    return list(s.scalars(select(audit.AuditRecord).where(
        audit.AuditRecord.tenant_id == tenant_id, or_(*wanted))
        .order_by(audit.AuditRecord.seq.desc()).limit(30)))


def _account(s: Session, ctx: Admin, account_id: str) -> members.Account:
    return members.get_account(s, ctx.tenant_id, account_id)


@router.get("/members/{account_id}")
def member_360(request: Request, account_id: str,
               wallet: str | None = Query(None, max_length=40),
               before: int | None = Query(None, ge=1),
               ctx: Admin = Depends(admin("view"))) -> Response:
    with reading(ctx.db) as s:
        account = _account(s, ctx, account_id)
        parent = members.get_account(s, ctx.tenant_id, account.parent_id) \
            if account.parent_id else None
        children = members.list_accounts(s, ctx.tenant_id, parent_id=account.id, limit=PAGE)
        users = members.list_users(s, ctx.tenant_id, account.id)
        enrolments = members.list_enrolments(s, ctx.tenant_id, account_id=account.id,
                                             limit=PAGE).items
        wallets = queries.wallets(s, ctx.tenant_id, [account.id])
        program_id = ctx.program.id if ctx.program else None
        chosen = next((w for w in wallets if w.id == wallet), None) or next(
            (w for w in wallets if w.program_id == program_id and w.owner_type == "account"),
            wallets[0] if wallets else None)
        history = queries.history(s, ctx.tenant_id, chosen.id, before_seq=before,
                                  limit=PAGE) if chosen else []
        tier_states: list[tiers.TierState] = []
        levels: list[tuple[str, str]] = []
        if ctx.program is not None:
            tier_states = tiers.status(s, ctx.tenant_id, ctx.program.id, account.id)
            for ladder in tiers.list_ladders(s, ctx.tenant_id, ctx.program.id):
                levels += [(f"{ladder.code}:{lv.code}", f"{ladder.name} — {lv.name}")
                           for lv in tiers.ladder_of(ladder).levels]
        redemptions = queries.redemptions(s, ctx.tenant_id, program_id or "",
                                          account_ids=[account.id], limit=20)[:20]
        reward_names = {r.id: r.name for r in queries.rewards_by_id(
            s, ctx.tenant_id, [r.reward_id for r in redemptions]).values()}
        sales = member_queries.sales_claims(s, ctx.tenant_id, program_id or "", account.id)
        co_marketing = member_queries.mdf_claims(s, ctx.tenant_id, program_id or "",
                                                 account.id)
        referred = member_queries.referral_rows(s, ctx.tenant_id, account.id)
        trail = _trail(s, ctx.tenant_id, {
            "account": [account.id], "user": [u.id for u in users],
            "member_user": [u.id for u in users], "enrolment": [e.id for e in enrolments],
            "redemption": [r.id for r in redemptions], "sales_claim": [c.id for c in sales],
            "mdf_claim": [c.id for c, _, _ in co_marketing], "referral": [r.id for r in referred]})
    more = history[PAGE - 1]["seq"] if len(history) > PAGE else None
    enrolment = next((e for e in enrolments if e.program_id == program_id), None)
    return render(request, "admin/member.html", {
        "ctx": ctx, "account": account, "parent": parent, "children": children.items,
        "users": users, "enrolments": enrolments, "enrolment": enrolment, "wallets": wallets,
        "chosen": chosen, "history": history[:PAGE], "tier_states": tier_states,
        "levels": levels, "redemptions": redemptions, "reward_names": reward_names,
        "trail": trail, "sales": sales, "co_marketing": co_marketing, "referred": referred,
        "program_names": {p.id: p.name for p in ctx.programs},
        "older_url": url(f"/admin/members/{account.id}", wallet=chosen.id if chosen else None,
                         before=more) if more else None})


@router.post("/members/{account_id}/adjust")
def adjust(account_id: str, wallet_id: str = Form(..., max_length=40),
           amount: str = Form(..., max_length=40), reason: str = Form("", max_length=1000),
           ctx: Admin = Depends(admin_form("adjust"))) -> RedirectResponse:
    def run(s: Session) -> ledger.Adjustment:
        _account(s, ctx, account_id)
        wallet = queries.wallet_of(s, ctx.tenant_id, wallet_id)
        if wallet is None or queries.owner_account(s, ctx.tenant_id, wallet) != account_id:
            raise NotFound("that wallet is not this member's", field="wallet_id")
        value = parse_int(amount)
        if value is None:
            raise ValidationFailed("the amount must be a whole number", field="amount")
        row = ledger.request_adjustment(s, ctx.tenant_id, wallet_id=wallet_id, amount=value,
                                        reason=reason, requested_by=ctx.actor)
        audit.record(s, ctx.tenant_id, actor=ctx.actor, action="adjustment.requested",
                     object_type="account", object_id=account_id,
                     after={"adjustment_id": row.id, "wallet_id": wallet_id,
                            "amount": value, "reason": row.reason, "status": row.status})
        return row

    def said(row: ledger.Adjustment) -> str:
        if row.status == "pending_approval":
            return "The adjustment is above the threshold and waits for a second approver."
        return f"Adjusted by {row.amount:+,}."

    return act(ctx, run, said, f"/admin/members/{account_id}?wallet={wallet_id}")


@router.post("/members/{account_id}/tier")
def place_tier(account_id: str, level: str = Form(..., max_length=200),
               reason: str = Form("", max_length=1000),
               ctx: Admin = Depends(admin_form("place_tier"))) -> RedirectResponse:
    program = ctx.need_program()
    ladder_code, _, level_code = level.partition(":")

    def run(s: Session) -> Any:
        _account(s, ctx, account_id)
        return tiers.place(s, ctx.tenant_id, program.id, account_id,
                           level=level_code or None, reason=reason, actor=ctx.actor,
                           ladder_code=ladder_code or None)

    return act(ctx, run, f"Placed on {level_code or 'no level'}.",
               f"/admin/members/{account_id}")


@router.post("/members/{account_id}/status")
def change_status(account_id: str, to_status: str = Form(..., max_length=20),
                  reason: str = Form("", max_length=1000),
                  ctx: Admin = Depends(admin_form("suspend"))) -> RedirectResponse:
    program = ctx.need_program()

    def run(s: Session) -> members.Enrolment:
        if to_status not in ("suspended", "active"):
            raise ValidationFailed("choose suspend or reactivate", field="to_status")
        if not reason.strip():
            raise ValidationFailed("give a reason", field="reason")
        found = members.list_enrolments(s, ctx.tenant_id, program_id=program.id,
                                        account_id=account_id, limit=1).items
        if not found:
            raise NotFound("the member is not enrolled in this program", field="account_id")
        return members.change_enrolment_status(s, ctx.tenant_id, found[0].id, to_status,
                                               actor=ctx.actor, reason=reason.strip())

    return act(ctx, run, lambda e: f"The enrolment is now {e.status}.",
               f"/admin/members/{account_id}")


@router.post("/members/{account_id}/invite")
def invite(request: Request, account_id: str, user_id: str = Form(..., max_length=40),
           ctx: Admin = Depends(admin_form("invite"))) -> RedirectResponse:
    base = str(request.base_url)

    def run(s: Session) -> Any:
        user = members.get_user(s, ctx.tenant_id, user_id)
        if user.account_id != account_id:
            raise NotFound("that user is not this member's", field="user_id")
        return operators.portal.invite(s, ctx.tenant_id, user_id, actor=ctx.actor,
                                       base_url=base)

    return act(ctx, run, "The invitation e-mail is on its way (outbox event "
                         "portal.invitation).", f"/admin/members/{account_id}")
