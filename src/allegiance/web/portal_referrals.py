"""Portal: referrals. Per referral plan of the account's programs: the account's code and
link (issued on request; an affiliate plan takes an application an operator reviews), the
sign-ups through it, and its rewards — bounties and commissions, pending until their lock
date, then payable (posted to the wallet), or void after a refund."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from allegiance import ledger, referrals, tenants
from allegiance.kit.errors import NotFound
from allegiance.web.forms import act, url
from allegiance.web.portal_base import account_of, may_act, need_act
from allegiance.web.security import Member, member, member_form, reading
from allegiance.web.templating import render

router = APIRouter()
SIGNUPS_SHOWN = 50


@dataclass
class PlanView:
    plan: referrals.ReferralPlan
    code: referrals.ReferralCode | None
    link: str | None
    signups: list[referrals.Referral]
    signup_count: int
    # (state, unit) → total, and the rewards themselves, newest first
    totals: dict[tuple[str, str], int] = field(default_factory=dict)
    rewards: list[tuple[referrals.ReferralReward, str]] = field(default_factory=list)


def _plan_view(s: Session, ctx: Member, plan: referrals.ReferralPlan,
               account_id: str) -> PlanView:
    code = s.scalars(select(referrals.ReferralCode).where(
        referrals.ReferralCode.tenant_id == ctx.tenant_id,
        referrals.ReferralCode.plan_id == plan.id,
        referrals.ReferralCode.account_id == account_id)).first()
    base = select(referrals.Referral).where(
        referrals.Referral.tenant_id == ctx.tenant_id, referrals.Referral.plan_id == plan.id,
        referrals.Referral.referrer_account_id == account_id,
        referrals.Referral.kind == "signup")
    signups = list(s.scalars(base.order_by(referrals.Referral.id.desc()).limit(SIGNUPS_SHOWN)))
    count = len(signups) if len(signups) < SIGNUPS_SHOWN else int(s.scalar(
        base.with_only_columns(func.count())) or 0)
    view = PlanView(plan, code, referrals.link(plan, code) if code and code.status == "active"
                    else None, signups, count)
    reward, referral, hold = referrals.ReferralReward, referrals.Referral, ledger.Hold
    # The service's reward_state, for many rows in one query: no hold or all given back →
    # void; the hold pending → pending; posted → payable; voided or expired → void.
    state = case((or_(reward.hold_id.is_(None), reward.amount == reward.reversed_amount),
                  "void"), (hold.state == "pending", "pending"),
                 (hold.state == "posted", "payable"), else_="void")
    earned = (select(reward, state).join(referral, and_(
        referral.tenant_id == reward.tenant_id, referral.id == reward.referral_id))
        .outerjoin(hold, and_(hold.tenant_id == reward.tenant_id, hold.id == reward.hold_id))
        .where(reward.tenant_id == ctx.tenant_id, referral.plan_id == plan.id,
               reward.owner_account_id == account_id))
    view.rewards = [(item[0], str(item[1])) for item in s.execute(
        earned.order_by(reward.id.desc()).limit(SIGNUPS_SHOWN))]
    totals = earned.with_only_columns(state, reward.unit_id,
                                    func.sum(reward.amount - reward.reversed_amount)) \
        .group_by(state, reward.unit_id)
    view.totals = {(str(st), str(unit)): int(total or 0)
                   for st, unit, total in s.execute(totals)}
    return view


@router.get("/referrals")
def referral_page(request: Request, account: str | None = Query(None, max_length=40),
                  ctx: Member = Depends(member)) -> Response:
    account_id = account_of(ctx, account)
    plans: list[PlanView] = []
    units: dict[str, tenants.Unit] = {}
    with reading(ctx.db) as s:
        for program in ctx.programs:
            units.update({u.id: u for u in tenants.list_units(s, ctx.tenant_id, program.id)})
        rows = s.scalars(select(referrals.ReferralPlan).where(
            referrals.ReferralPlan.tenant_id == ctx.tenant_id,
            referrals.ReferralPlan.program_id.in_([p.id for p in ctx.programs] or [""]))
            .order_by(referrals.ReferralPlan.code).limit(20))
        plans = [_plan_view(s, ctx, plan, account_id) for plan in list(rows)]
    return render(request, "portal/referrals.html", {
        "ctx": ctx, "account_id": account_id, "plans": plans, "units": units,
        "may_act": may_act(ctx, account_id)})


@router.post("/referrals/{plan_id}/code")
def get_code(plan_id: str, account: str = Form("", max_length=40),
             note: str = Form("", max_length=1000),
             ctx: Member = Depends(member_form)) -> RedirectResponse:
    account_id = account_of(ctx, account or None)
    with reading(ctx.db) as s:
        plan = referrals.get_plan(s, ctx.tenant_id, plan_id)
    if all(p.id != plan.program_id for p in ctx.programs):
        raise NotFound(f"referral plan {plan_id} not found", field="plan_id")

    def run(s: Session) -> referrals.ReferralCode:
        need_act(ctx, account_id)
        application = {"note": note.strip(), "by": ctx.user.id} \
            if plan.requires_application else None
        return referrals.issue_code(s, ctx.tenant_id, plan.id, account_id,
                                    application=application, actor=ctx.actor)

    def said(row: referrals.ReferralCode) -> str:
        if row.status == "applied":
            return "Thank you! Your application waits for review."
        return f"Your referral code is {row.code}."

    return act(ctx, run, said, url("/portal/referrals", account=account_id))
