"""Paid memberships: plans, subscriptions (trial, renewal, grace, lapse, cancellation), fees
recorded as charges and ``membership.*`` events (no payment rails), and perks unlocked by a
live plan or a tier level, answered per account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit, members, tenants, tiers
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique
from allegiance.kit.ids import new_id
from allegiance.memberships import domain
from allegiance.memberships.errors import (
    AlreadySubscribed,
    DuplicateCode,
    InvalidPlan,
    NotRenewable,
    PerkNotFound,
    PlanNotFound,
    SubscriptionNotFound,
)
from allegiance.memberships.models import Charge, Perk, Plan, Subscription

# --- plans -----------------------------------------------------------------------------------


def _add_unique(session: Session, row: Any, what: str) -> None:
    add_unique(session, row, DuplicateCode(f"{what} {row.code} exists in this program", field="code"))


def create_plan(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                fee: int, billing: str, currency: str | None = None, trial_days: int = 0,
                grace_days: int = 0) -> Plan:
    program = tenants.get_program(session, tenant_id, program_id)
    if billing not in domain.BILLINGS:
        raise InvalidPlan(f"billing must be one of {', '.join(domain.BILLINGS)}",
                          field="billing")
    for name_, value in (("fee", fee), ("trial_days", trial_days), ("grace_days", grace_days)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidPlan(f"{name_} must be a whole number >= 0", field=name_)
    plan = Plan(tenant_id=tenant_id, id=new_id("pln"), program_id=program_id, code=code,
                name=name, fee=fee, currency=(currency or program.base_currency).upper(),
                billing=billing, trial_days=trial_days, grace_days=grace_days,
                status="active", created_at=clock.now())
    _add_unique(session, plan, "plan")
    return plan


def get_plan(session: Session, tenant_id: str, plan_id: str) -> Plan:
    row = session.get(Plan, (tenant_id, plan_id))
    if row is None:
        raise PlanNotFound(f"plan {plan_id} not found", field="plan_id")
    return row


def plan_by_code(session: Session, tenant_id: str, program_id: str, code: str) -> Plan:
    row = session.scalar(select(Plan).where(Plan.tenant_id == tenant_id,
                                            Plan.program_id == program_id, Plan.code == code))
    if row is None:
        raise PlanNotFound(f"plan {code} not found in this program", field="plan")
    return row


def list_plans(session: Session, tenant_id: str, program_id: str) -> list[Plan]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(Plan).where(
        Plan.tenant_id == tenant_id, Plan.program_id == program_id).order_by(Plan.code)))


# --- subscriptions ---------------------------------------------------------------------------


def _terms(plan: Plan) -> domain.Terms:
    return domain.Terms(plan.billing, plan.trial_days, plan.grace_days)


def _dates(sub: Subscription) -> domain.Dates:
    return domain.Dates(sub.started_at, sub.trial_ends_at, sub.paid_until, sub.paid,
                        sub.anchor_day, sub.cancel_at, sub.cancelled_at)


def state(session: Session, sub: Subscription, now: datetime | None = None) -> domain.State:
    plan = get_plan(session, sub.tenant_id, sub.plan_id)
    return domain.state_at(_terms(plan), _dates(sub), now or clock.now())


def get_subscription(session: Session, tenant_id: str, subscription_id: str, *,
                     lock: bool = False) -> Subscription:
    row = session.get(Subscription, (tenant_id, subscription_id), with_for_update=lock)
    if row is None:
        raise SubscriptionNotFound(f"subscription {subscription_id} not found",
                                   field="subscription_id")
    return row


def subscriptions_of(session: Session, tenant_id: str, program_id: str,
                     account_id: str) -> list[Subscription]:
    return list(session.scalars(select(Subscription).where(
        Subscription.tenant_id == tenant_id, Subscription.program_id == program_id,
        Subscription.account_id == account_id).order_by(Subscription.started_at,
                                                        Subscription.id)))


def _sync(session: Session, sub: Subscription, now: datetime) -> str:
    """Write the status at ``now`` (and announce a change); returns it."""
    current = state(session, sub, now).status
    if current != sub.status:
        before, sub.status, sub.updated_at = sub.status, current, now
        outbox.emit(session, sub.tenant_id, "membership.status_changed", {
            "subscription_id": sub.id, "program_id": sub.program_id,
            "account_id": sub.account_id, "from": before, "to": current})
    return current


def _charge(session: Session, sub: Subscription, plan: Plan, start: datetime,
            end: datetime | None, external_ref: str, amount: int | None) -> Charge:
    now = clock.now()
    charge = Charge(tenant_id=sub.tenant_id, id=new_id("mch"), subscription_id=sub.id,
                    account_id=sub.account_id, amount=plan.fee if amount is None else amount,
                    currency=plan.currency, period_start=start, period_end=end,
                    external_ref=external_ref, recorded_at=now)
    session.add(charge)
    if sub.anchor_day is None:
        sub.anchor_day = start.day
    sub.paid, sub.paid_until, sub.fees = True, end, sub.fees + 1
    sub.updated_at = now
    session.flush()
    outbox.emit(session, sub.tenant_id, "membership.charged", {
        "subscription_id": sub.id, "program_id": sub.program_id, "account_id": sub.account_id,
        "plan": plan.code, "amount": charge.amount, "currency": charge.currency,
        "period_start": start.isoformat(), "period_end": end.isoformat() if end else None,
        "external_ref": external_ref})
    return charge


def subscribe(session: Session, tenant_id: str, program_id: str, account_id: str,
              plan_code: str, *, external_ref: str | None = None,
              actor: str) -> Subscription:
    """Start a subscription: a trial when the plan has one (the first time the account
    subscribes to it), else the first fee is recorded now. An account has at most one live subscription per program (change plans by
    cancelling first)."""
    plan = plan_by_code(session, tenant_id, program_id, plan_code)
    if plan.status != "active":
        raise InvalidPlan("the plan is retired", field="plan")
    session.execute(select(members.Account).where(
        members.Account.tenant_id == tenant_id, members.Account.id == account_id
    ).with_for_update())
    members.get_account(session, tenant_id, account_id)
    members.ensure_enrolled(session, tenant_id, program_id, account_id, actor)
    now = clock.now()
    earlier = subscriptions_of(session, tenant_id, program_id, account_id)
    for other in earlier:
        if _sync(session, other, now) in domain.LIVE:
            raise AlreadySubscribed("the account has a live subscription in this program",
                                    field="account_id", subscription_id=other.id)
    # a trial is for the first subscription to a plan only
    tried = any(other.plan_id == plan.id for other in earlier)
    trial_end = now + timedelta(days=plan.trial_days) if plan.trial_days and not tried \
        else None
    sub = Subscription(tenant_id=tenant_id, id=new_id("sub"), program_id=program_id,
                       plan_id=plan.id, account_id=account_id,
                       status="trial" if trial_end else "active", started_at=now,
                       trial_ends_at=trial_end, paid_until=None, paid=False, fees=0,
                       anchor_day=None,
                       cancel_at=None, cancelled_at=None, updated_at=now)
    session.add(sub)
    session.flush()
    if trial_end is None:
        _charge(session, sub, plan, now, domain.next_period_end(plan.billing, now),
                external_ref or f"subscribe:{sub.id}", None)
    audit.record(session, tenant_id, actor=actor, action="membership.subscribe",
                 object_type="account", object_id=account_id,
                 after={"subscription_id": sub.id, "plan": plan.code, "status": sub.status})
    outbox.emit(session, tenant_id, "membership.started", {
        "subscription_id": sub.id, "program_id": program_id, "account_id": account_id,
        "plan": plan.code, "status": sub.status})
    return sub


def record_payment(session: Session, tenant_id: str, subscription_id: str, *,
                   external_ref: str, amount: int | None = None, actor: str) -> Charge:
    """Record a fee paid (first fee after a trial, or a renewal): the subscription is paid
    for the next period. The same ``external_ref`` twice returns the charge already made."""
    sub = get_subscription(session, tenant_id, subscription_id, lock=True)
    done = session.scalar(select(Charge).where(
        Charge.tenant_id == tenant_id, Charge.subscription_id == sub.id,
        Charge.external_ref == external_ref))
    if done is not None:
        return done
    if amount is not None and (isinstance(amount, bool) or amount < 0):
        raise InvalidPlan("amount must be >= 0", field="amount")
    plan = get_plan(session, tenant_id, sub.plan_id)
    now = clock.now()
    try:
        start, end = domain.renewal_period(_terms(plan), _dates(sub), now)
    except ValueError as exc:
        raise NotRenewable(str(exc), field="subscription_id") from exc
    charge = _charge(session, sub, plan, start, end, external_ref, amount)
    _sync(session, sub, now)
    audit.record(session, tenant_id, actor=actor, action="membership.payment",
                 object_type="account", object_id=sub.account_id,
                 after={"subscription_id": sub.id, "charge_id": charge.id,
                        "amount": charge.amount, "paid_until": sub.paid_until.isoformat()
                        if sub.paid_until else None})
    return charge


def cancel(session: Session, tenant_id: str, subscription_id: str, *, at_period_end: bool,
           actor: str, reason: str | None = None) -> Subscription:
    """Cancel now, or at the end of what is paid (or of the trial); perks stay until then."""
    sub = get_subscription(session, tenant_id, subscription_id, lock=True)
    now = clock.now()
    current = state(session, sub, now)
    if current.status in ("cancelled", "lapsed"):
        raise NotRenewable(f"the subscription is already {current.status}",
                           field="subscription_id")
    ends = sub.paid_until if sub.paid else sub.trial_ends_at
    sub.cancel_at = ends if at_period_end and ends is not None and ends > now else now
    sub.cancelled_at, sub.updated_at = now, now
    _sync(session, sub, now)
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="membership.cancel",
                 object_type="account", object_id=sub.account_id,
                 after={"subscription_id": sub.id, "cancel_at": sub.cancel_at.isoformat(),
                        **({"reason": reason} if reason else {})})
    return sub


def end_with_enrolment(session: Session, tenant_id: str, program_id: str, account_id: str,
                       *, actor: str) -> list[Subscription]:
    """The account's enrolment in the program closed: every subscription of the program not
    yet cancelled or lapsed is cancelled at once (also one cancelled at its period's end),
    each audited (``membership.cancel``, reason ``enrolment closed``) and announced. Called by
    ``members`` in the closing transaction."""
    now = clock.now()
    ended = []
    for sub in subscriptions_of(session, tenant_id, program_id, account_id):
        if state(session, sub, now).status in ("cancelled", "lapsed"):
            continue
        ended.append(cancel(session, tenant_id, sub.id, at_period_end=False, actor=actor,
                            reason="enrolment closed"))
    return ended


def charges_of(session: Session, tenant_id: str, subscription_id: str) -> list[Charge]:
    return list(session.scalars(select(Charge).where(
        Charge.tenant_id == tenant_id, Charge.subscription_id == subscription_id
    ).order_by(Charge.period_start, Charge.id)))


def refresh(session: Session, *, limit: int = 1000, after: tuple[str, str] | None = None,
            now: datetime | None = None) -> tuple[int, tuple[str, str] | None]:
    """Write the status changes due at ``now`` (trial ended, grace began, lapsed, cancelled)
    for up to ``limit`` live subscriptions after the key ``after``; returns (changed, last
    key seen or None when done)."""
    at = now or clock.now()
    query = select(Subscription).where(Subscription.status.in_(domain.LIVE))
    if after is not None:
        query = query.where((Subscription.tenant_id > after[0]) | (
            (Subscription.tenant_id == after[0]) & (Subscription.id > after[1])))
    rows = list(session.scalars(query.order_by(Subscription.tenant_id, Subscription.id)
                                .limit(limit).with_for_update()))
    changed = 0
    for sub in rows:
        before = sub.status
        if _sync(session, sub, at) != before:
            changed += 1
    session.flush()
    last = (rows[-1].tenant_id, rows[-1].id) if len(rows) == limit else None
    return changed, last


# --- perks -----------------------------------------------------------------------------------


def create_perk(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                plans: list[str], tiers: list[str], description: str = "") -> Perk:
    tenants.get_program(session, tenant_id, program_id)
    for plan in plans:
        plan_by_code(session, tenant_id, program_id, plan)
    if not plans and not tiers:
        raise InvalidPlan("a perk is unlocked by at least one plan or tier level",
                          field="plans")
    perk = Perk(tenant_id=tenant_id, id=new_id("prk"), program_id=program_id, code=code,
                name=name, description=description, plans=sorted(set(plans)),
                tiers=sorted(set(tiers)), created_at=clock.now())
    _add_unique(session, perk, "perk")
    return perk


def list_perks(session: Session, tenant_id: str, program_id: str) -> list[Perk]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(Perk).where(
        Perk.tenant_id == tenant_id, Perk.program_id == program_id).order_by(Perk.code)))


NOT_ENROLLED = "enrolment not active"


@dataclass(frozen=True)
class PerkState:
    perk: Perk
    answer: domain.PerkAnswer


def perks_of(session: Session, tenant_id: str, program_id: str, account_id: str,
             code: str | None = None) -> list[PerkState]:
    """Every perk of the program (or the one ``code``) with whether the account may use it
    now, why, and until when. Perks need an active enrolment in the program: a suspended or
    closed member (or one not enrolled) gets none, with the reason ``enrolment not
    active``."""
    members.get_account(session, tenant_id, account_id)
    perks = list_perks(session, tenant_id, program_id)
    if code is not None:
        perks = [p for p in perks if p.code == code]
        if not perks:
            raise PerkNotFound(f"perk {code} not found in this program", field="perk")
    enrolled = members.list_enrolments(session, tenant_id, program_id=program_id,
                                       account_id=account_id, limit=1).items
    if not enrolled or enrolled[0].status != "active":
        return [PerkState(p, domain.PerkAnswer(p.code, False, NOT_ENROLLED, None))
                for p in perks]
    now = clock.now()
    live: list[tuple[str, datetime | None]] = []
    for sub in subscriptions_of(session, tenant_id, program_id, account_id):
        plan = get_plan(session, tenant_id, sub.plan_id)
        if domain.state_at(_terms(plan), _dates(sub), now).status in domain.LIVE:
            live.append((plan.code, domain.live_until(_terms(plan), _dates(sub))))
    levels: list[str] = []
    for placed in tiers.status(session, tenant_id, program_id, account_id):
        levels += [name for name in (placed.level, placed.level_name) if name is not None]
    return [PerkState(p, domain.perk_answer(
        domain.PerkRule(p.code, frozenset(p.plans), frozenset(p.tiers)), live, levels))
        for p in perks]
