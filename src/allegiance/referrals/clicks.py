"""Clicks on referral links (per-click attribution, Amazon Associates).

A plan whose ``attribution`` is ``click`` attributes a purchase to the latest click whose
window (``window_days`` after the click) covers it; a new click opens a new window. A click
is a :class:`Referral` row of kind ``click``: by a known account, or by an anonymous visitor
(``visitor_id``) matched to an account later (at sign-up or by :func:`match_visitor`). A
click by the code's owner itself (or its company hierarchy, e-mail, tax id, device) is
stored ``rejected`` and earns nothing. Clicks pay no bounty: that is the sign-up's.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import members
from allegiance.kit import clock
from allegiance.kit.ids import new_id
from allegiance.referrals import domain
from allegiance.referrals.errors import CodeNotActive, CodeNotFound, InvalidReferral
from allegiance.referrals.models import Referral, ReferralCode, ReferralPlan
from allegiance.referrals.service import _identity, get_plan


def _self_click(session: Session, tenant_id: str, referrer_id: str,
                account_id: str) -> str | None:
    referrer = members.get_account(session, tenant_id, referrer_id)
    clicker = members.get_account(session, tenant_id, account_id)
    members.refuse_erased(clicker, "account_id")
    return domain.self_referral(_identity(referrer), _identity(clicker))


def record_click(session: Session, tenant_id: str, plan_id: str, *, code: str,
                 account_id: str | None = None, visitor_id: str | None = None) -> Referral:
    """A click on the link of ``code`` now: opens a window of ``window_days``. The clicker is
    an account, or an anonymous ``visitor_id`` (matched to an account later), or both (then
    the visitor's earlier anonymous clicks are matched to the account too)."""
    plan = get_plan(session, tenant_id, plan_id)
    if plan.attribution != "click":
        raise InvalidReferral("the plan attributes purchases to sign-ups, not clicks",
                              field="plan_id")
    if account_id is None and not visitor_id:
        raise InvalidReferral("a click needs an account_id or a visitor_id", field="account_id")
    row = session.scalars(select(ReferralCode).where(
        ReferralCode.tenant_id == tenant_id, ReferralCode.plan_id == plan.id,
        ReferralCode.code == domain.normalise_code(code))).first()
    if row is None:
        raise CodeNotFound("no such referral code in the plan", field="code")
    if row.status != "active":
        raise CodeNotActive(f"the code is {row.status}", field="code")
    members.refuse_erased(members.get_account(session, tenant_id, row.account_id), "code")
    reason = None
    if account_id is not None:
        reason = _self_click(session, tenant_id, row.account_id, account_id)
        if visitor_id:
            match_visitor(session, tenant_id, plan.id, visitor_id, account_id)
    now = clock.now()
    click = Referral(
        tenant_id=tenant_id, id=new_id("ref"), plan_id=plan.id, code_id=row.id, kind="click",
        referrer_account_id=row.account_id, referred_account_id=account_id,
        visitor_id=visitor_id or None, email_key=None, tax_key=None, device_hash=None,
        status="rejected" if reason else "qualified", reason=reason, signed_up_at=now,
        window_ends_at=now + timedelta(days=plan.window_days), created_at=now)
    session.add(click)
    session.flush()
    return click


def match_visitor(session: Session, tenant_id: str, plan_id: str, visitor_id: str,
                  account_id: str) -> int:
    """Give an anonymous visitor's clicks in the plan to the account it turned out to be
    (self-clicks become ``rejected``). Returns how many clicks were matched."""
    plan: ReferralPlan = get_plan(session, tenant_id, plan_id)
    members.refuse_erased(members.get_account(session, tenant_id, account_id), "account_id")
    rows = list(session.scalars(select(Referral).where(
        Referral.tenant_id == tenant_id, Referral.plan_id == plan.id,
        Referral.kind == "click", Referral.visitor_id == visitor_id,
        Referral.referred_account_id.is_(None)).order_by(Referral.id)))
    for click in rows:
        click.referred_account_id = account_id
        reason = _self_click(session, tenant_id, click.referrer_account_id, account_id)
        if reason:
            click.status, click.reason = "rejected", reason
    session.flush()
    return len(rows)
