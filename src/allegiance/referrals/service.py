"""Referrals and affiliates through the ledger.

A plan pays from the program account ``referral:<plan code>`` into members' wallets. Every
reward is a hold released at its lock date (pending → payable by the ledger's release job);
a refund of the new member's purchase gives back exactly the commission of the refunded part
(a smaller hold while pending, a partial reversal once payable), and a new member whose every
attributed purchase was refunded before anything became payable voids the referral. An erased
member gets no code, signs up nowhere, and its code pays it nothing: no sign-up through it
(``409 account_erased`` on ``code``), no commission on its referred members' purchases.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import audit, events, ledger, members, tenants
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique, is_unique_violation
from allegiance.kit.ids import new_id
from allegiance.referrals import domain
from allegiance.referrals.errors import (
    AlreadyReferred,
    CodeNotActive,
    CodeNotFound,
    DuplicatePlan,
    InvalidPlan,
    InvalidReferral,
    PlanNotFound,
    ReferralNotFound,
)
from allegiance.referrals.models import (
    Referral,
    ReferralAttributed,
    ReferralCode,
    ReferralIdentity,
    ReferralPlan,
    ReferralReward,
)

# --- plans and codes -------------------------------------------------------------------------


def _unit(session: Session, tenant_id: str, program_id: str, unit_id: str | None,
          field: str, *, money: bool) -> None:
    if unit_id is None:
        return
    unit = tenants.get_unit(session, tenant_id, unit_id)
    if unit.program_id != program_id:
        raise InvalidPlan("the unit belongs to another program", field=field)
    if money and unit.kind != "money":
        raise InvalidPlan("commissions are paid in a money unit", field=field)


def create_plan(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                window_days: int = 30, lock_days: int = 30,
                requires_application: bool = False, commission_unit_id: str | None = None,
                commission_rates: dict[str, str] | None = None,
                bounty_unit_id: str | None = None, bounty: int = 0, referee_reward: int = 0,
                link_base: str | None = None, attribution: str = "signup") -> ReferralPlan:
    tenants.get_program(session, tenant_id, program_id)
    rates = commission_rates or {}
    try:
        domain.Rates.parse(rates)
    except domain.PlanError as exc:
        raise InvalidPlan(str(exc), field=exc.field) from exc
    if rates and commission_unit_id is None:
        raise InvalidPlan("commission rates need a commission unit", field="commission_unit_id")
    if (bounty or referee_reward) and bounty_unit_id is None:
        raise InvalidPlan("bounties need a unit", field="bounty_unit_id")
    if attribution not in ("signup", "click"):
        raise InvalidPlan("attribution is signup or click", field="attribution")
    if window_days <= 0 or lock_days < 0 or bounty < 0 or referee_reward < 0:
        raise InvalidPlan("days and amounts must not be negative", field="window_days")
    _unit(session, tenant_id, program_id, commission_unit_id, "commission_unit_id", money=True)
    _unit(session, tenant_id, program_id, bounty_unit_id, "bounty_unit_id", money=False)
    plan = ReferralPlan(
        tenant_id=tenant_id, id=new_id("rfp"), program_id=program_id, code=code, name=name,
        requires_application=requires_application, window_days=window_days,
        lock_days=lock_days, commission_unit_id=commission_unit_id, commission_rates=rates,
        bounty_unit_id=bounty_unit_id, bounty=bounty, referee_reward=referee_reward,
        link_base=link_base, attribution=attribution, created_at=clock.now())
    add_unique(session, plan, DuplicatePlan(f"referral plan {code} exists", field="code"))
    return plan


def get_plan(session: Session, tenant_id: str, plan_id: str) -> ReferralPlan:
    plan = session.get(ReferralPlan, (tenant_id, plan_id))
    if plan is None:
        raise PlanNotFound(f"referral plan {plan_id} not found", field="plan_id")
    return plan


def issue_code(session: Session, tenant_id: str, plan_id: str, account_id: str, *,
               application: dict[str, Any] | None = None, actor: str) -> ReferralCode:
    """A member's code in a plan (the same one on every call); an affiliate plan records an
    application for review instead of an active code."""
    plan = get_plan(session, tenant_id, plan_id)
    members.refuse_erased(members.get_account(session, tenant_id, account_id), "account_id")
    existing = session.scalars(select(ReferralCode).where(
        ReferralCode.tenant_id == tenant_id, ReferralCode.plan_id == plan.id,
        ReferralCode.account_id == account_id)).first()
    if existing is not None:
        return existing
    for _ in range(10):
        row = ReferralCode(
            tenant_id=tenant_id, id=new_id("rfc"), plan_id=plan.id, account_id=account_id,
            code=domain.new_code(), status="applied" if plan.requires_application else "active",
            application=application or {}, reason=None, created_at=clock.now(),
            decided_by=None, decided_at=None)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            existing = session.scalars(select(ReferralCode).where(
                ReferralCode.tenant_id == tenant_id, ReferralCode.plan_id == plan.id,
                ReferralCode.account_id == account_id)).first()
            if existing is not None:
                return existing
            continue  # the random code was taken: draw another
        audit.record(session, tenant_id, actor=actor, action=f"referral_code.{row.status}",
                     object_type="referral_code", object_id=row.id,
                     after={"account_id": account_id, "plan_id": plan.id})
        return row
    raise InvalidReferral("could not draw a unique code", field="code")


def get_code(session: Session, tenant_id: str, code_id: str) -> ReferralCode:
    row = session.get(ReferralCode, (tenant_id, code_id))
    if row is None:
        raise CodeNotFound(f"referral code {code_id} not found", field="code_id")
    return row


def decide_application(session: Session, tenant_id: str, code_id: str, *, approve: bool,
                       actor: str, reason: str | None = None) -> ReferralCode:
    row = get_code(session, tenant_id, code_id)
    if row.status != "applied":
        raise CodeNotActive(f"the application is {row.status}", field="code_id")
    row.status = "active" if approve else "rejected"
    row.reason = reason
    row.decided_by = actor
    row.decided_at = clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action=f"referral_code.{row.status}",
                 object_type="referral_code", object_id=row.id, before={"status": "applied"},
                 after={"status": row.status, "reason": reason})
    return row


def link(plan: ReferralPlan, code: ReferralCode) -> str | None:
    if not plan.link_base:
        return None
    joiner = "&" if "?" in plan.link_base else "?"
    return f"{plan.link_base}{joiner}ref={code.code}"


# --- sign-ups --------------------------------------------------------------------------------


def _identity(account: members.Account, email: str | None = None,
              tax_id: str | None = None, device: str | None = None) -> domain.Identity:
    attributes = account.attributes or {}
    devices = {str(d) for d in attributes.get("device_hashes") or [] if d}
    if attributes.get("device_hash"):
        devices.add(str(attributes["device_hash"]))
    if device:
        devices.add(device)
    emails = {domain.email_key(e) for e in (account.email, email)}
    taxes = {domain.tax_key(t) for t in (account.tax_id, tax_id)}
    return domain.Identity(
        account_id=account.id, parent_id=account.parent_id,
        emails=frozenset(e for e in emails if e), taxes=frozenset(t for t in taxes if t),
        devices=frozenset(devices))


_LABELS = {"email": "e-mail", "tax": "tax id", "device": "device"}


def _keys(who: domain.Identity) -> list[tuple[str, str]]:
    return [("email", e) for e in sorted(who.emails)] + [("tax", t) for t in sorted(who.taxes)] \
        + [("device", d) for d in sorted(who.devices)]


def _duplicate(session: Session, tenant_id: str, plan_id: str,
               who: domain.Identity) -> str | None:
    """An earlier sign-up of the plan made with any one of the new member's identities."""
    for kind, value in _keys(who):
        first = session.scalar(select(ReferralIdentity.referral_id).where(
            ReferralIdentity.tenant_id == tenant_id, ReferralIdentity.plan_id == plan_id,
            ReferralIdentity.kind == kind, ReferralIdentity.key == value)
            .order_by(ReferralIdentity.referral_id).limit(1))
        if first is not None:
            return f"same {_LABELS[kind]} as referral {first}"
    return None


def signup(session: Session, tenant_id: str, program_id: str, *, code: str,
           account_id: str, email: str | None = None, tax_id: str | None = None,
           device_hash: str | None = None, actor: str) -> Referral:
    """Attribute a new member to a code. Self-referrals (same account or hierarchy, e-mail
    after removing +tags and dots, tax id, device) and duplicates of an earlier referral are
    stored as ``rejected`` and earn nothing."""
    value = domain.normalise_code(code)
    row = session.scalars(select(ReferralCode).where(
        ReferralCode.tenant_id == tenant_id, ReferralCode.code == value)).first()
    if row is None:
        raise CodeNotFound("no such referral code", field="code")
    plan = get_plan(session, tenant_id, row.plan_id)
    if plan.program_id != program_id:
        raise CodeNotFound("no such referral code", field="code")
    if row.status != "active":
        raise CodeNotActive(f"the code is {row.status}", field="code")
    referrer = members.get_account(session, tenant_id, row.account_id)
    # an erased member's code pays its owner nothing, and an erased member signs up nowhere
    members.refuse_erased(referrer, "code")
    referred = members.get_account(session, tenant_id, account_id)
    members.refuse_erased(referred, "account_id")
    who = _identity(referred, email, tax_id, device_hash)
    reason = domain.self_referral(_identity(referrer), who) \
        or _duplicate(session, tenant_id, plan.id, who)
    now = clock.now()
    referral = Referral(
        tenant_id=tenant_id, id=new_id("ref"), plan_id=plan.id, code_id=row.id,
        referrer_account_id=referrer.id, referred_account_id=referred.id,
        email_key=domain.email_key(email) or domain.email_key(referred.email),
        tax_key=domain.tax_key(tax_id) or domain.tax_key(referred.tax_id),
        device_hash=device_hash or min(who.devices, default=None),
        status="rejected" if reason else "qualified",
        reason=reason, signed_up_at=now, window_ends_at=now + timedelta(days=plan.window_days),
        created_at=now)
    add_unique(session, referral, AlreadyReferred("this member was already referred in the plan", field="account_id"))
    session.add_all(ReferralIdentity(tenant_id=tenant_id, plan_id=plan.id, kind=kind, key=value,
                                     referral_id=referral.id) for kind, value in _keys(who))
    session.flush()
    if referral.status == "qualified" and plan.bounty_unit_id is not None:
        lock_at = now + timedelta(days=plan.lock_days)
        if plan.bounty:
            _reward(session, plan, referral, "bounty", referrer.id, plan.bounty_unit_id,
                    plan.bounty, 0, lock_at, actor=actor)
        if plan.referee_reward:
            _reward(session, plan, referral, "referee", referred.id, plan.bounty_unit_id,
                    plan.referee_reward, 0, lock_at, actor=actor)
    payload = {"referral_id": referral.id, "plan_id": plan.id, "status": referral.status,
               "referrer_account_id": referrer.id, "referred_account_id": referred.id,
               "reason": reason}
    audit.record(session, tenant_id, actor=actor, action=f"referral.{referral.status}",
                 object_type="referral", object_id=referral.id, after=payload)
    outbox.emit(session, tenant_id, f"referral.{referral.status}", payload)
    return referral


def get_referral(session: Session, tenant_id: str, referral_id: str) -> Referral:
    row = session.get(Referral, (tenant_id, referral_id))
    if row is None:
        raise ReferralNotFound(f"referral {referral_id} not found", field="referral_id")
    return row


# --- rewards ---------------------------------------------------------------------------------


def _reward(session: Session, plan: ReferralPlan, referral: Referral, kind: str,
            owner_id: str, unit_id: str, amount: int, base: int, lock_at: datetime, *,
            event_id: str = "", line_no: int = 0, actor: str) -> ReferralReward:
    tenant_id = plan.tenant_id
    row = ReferralReward(
        tenant_id=tenant_id, id=new_id("rfr"), referral_id=referral.id, kind=kind,
        event_id=event_id, line_no=line_no, owner_account_id=owner_id, unit_id=unit_id,
        base_amount=base, amount=amount, reversed_amount=0, hold_id=None, lock_at=lock_at,
        created_at=clock.now())
    session.add(row)
    session.flush()
    row.hold_id = _hold(session, plan, row, amount, "0", actor)
    session.flush()
    return row


def _hold(session: Session, plan: ReferralPlan, row: ReferralReward, amount: int, step: str,
          actor: str) -> str:
    source = ledger.program_account(session, plan.tenant_id, plan.program_id, row.unit_id,
                                    f"referral:{plan.code}").id
    wallet = ledger.wallet(session, plan.tenant_id, plan.program_id, row.unit_id, "account",
                           row.owner_account_id)
    now = clock.now()
    hold, _ = ledger.create_hold(session, plan.tenant_id, ledger.HoldRequest(
        program_id=plan.program_id, debit_account_id=source, credit_account_id=wallet.id,
        unit_id=row.unit_id, amount=amount, kind=f"referral_{row.kind}",
        source_type="referral", source_id=row.referral_id,
        hold_key=f"referral-reward:{row.id}:{step}",
        memo=f"{plan.code}: {row.kind}", release_at=row.lock_at if row.lock_at > now else None))
    if row.lock_at <= now:
        ledger.post_hold(session, plan.tenant_id, hold.id, actor=actor)
    return hold.id


def reward_state(session: Session, tenant_id: str, row: ReferralReward) -> str:
    """pending (held until the lock date), payable (posted), or void."""
    if row.hold_id is None or row.amount == row.reversed_amount:
        return "void"
    hold = ledger.get_hold(session, tenant_id, row.hold_id)
    return {"pending": "pending", "posted": "payable"}.get(hold.state, "void")


def attribute(session: Session, tenant_id: str, event_id: str, *,
              actor: str = "system") -> list[ReferralReward]:
    """Commission on a processed purchase of a referred member inside the window: one
    reward per line, at the rate of its category. Idempotent."""
    event = events.get_event(session, tenant_id, event_id)
    if event.kind != "purchase" or event.status != "processed" or event.account_id is None:
        return []
    out: list[ReferralReward] = []
    by_plan: dict[str, list[Referral]] = {}
    for row in session.scalars(select(Referral).where(
            Referral.tenant_id == tenant_id, Referral.referred_account_id == event.account_id,
            Referral.status == "qualified", Referral.signed_up_at <= event.occurred_at,
            Referral.window_ends_at > event.occurred_at)):
        by_plan.setdefault(row.plan_id, []).append(row)
    for plan_id, rows in sorted(by_plan.items()):
        plan = get_plan(session, tenant_id, plan_id)
        # sign-up plans: the member's one sign-up; click plans: the latest click whose
        # window covers the purchase (a new click opens a new window)
        rows = [r for r in rows if r.kind == plan.attribution]
        if not rows:
            continue
        referral = max(rows, key=lambda r: (r.signed_up_at, r.id))
        if _erased(session, tenant_id, referral.referrer_account_id) \
                or plan.program_id != event.program_id or plan.commission_unit_id is None:
            continue
        # once per purchase line and plan, whichever window it was attributed through
        done = set(session.scalars(select(ReferralReward.line_no).join(
            Referral, (Referral.tenant_id == ReferralReward.tenant_id)
            & (Referral.id == ReferralReward.referral_id)).where(
            ReferralReward.tenant_id == tenant_id, Referral.plan_id == plan.id,
            ReferralReward.kind == "commission", ReferralReward.event_id == event.id)))
        rates = domain.Rates.parse(plan.commission_rates)
        lines = event_lines(session, tenant_id, event)
        lock_at = event.occurred_at + timedelta(days=plan.lock_days)
        for line_no, category, amount, _returned in lines:
            commission = rates.commission(category, amount)
            if line_no in done or commission <= 0:
                continue
            out.append(_reward(session, plan, referral, "commission",
                               referral.referrer_account_id, plan.commission_unit_id,
                               commission, amount, lock_at, event_id=event.id, line_no=line_no,
                               actor=actor))
    reconcile(session, tenant_id, event.id, actor=actor)
    return out


def _erased(session: Session, tenant_id: str, account_id: str) -> bool:
    """An erased referrer earns no commission (its pending rewards stay as they are)."""
    return members.get_account(session, tenant_id, account_id).status == "erased"


def event_lines(session: Session, tenant_id: str,
                event: events.Event) -> list[tuple[int, str | None, int, int]]:
    """(line_no, category, amount, returned) of a purchase; line 0 for one without lines."""
    rows = session.scalars(select(events.EventLine).where(
        events.EventLine.tenant_id == tenant_id, events.EventLine.event_id == event.id)
        .order_by(events.EventLine.line_no)).all()
    if not rows:
        return [(0, None, event.amount, event.returned_amount)]
    return [(r.line_no, r.category, r.amount, r.returned_amount) for r in rows]


def reconcile(session: Session, tenant_id: str, event_id: str, *,
              actor: str = "system") -> int:
    """Give back the commission of what was refunded of a purchase; void referrals whose
    attributed purchases were all refunded before anything became payable. Returns the
    amount given back by this call."""
    event = events.get_event(session, tenant_id, event_id)
    returned = {line_no: (amount, back) for line_no, _c, amount, back
                in event_lines(session, tenant_id, event)}
    rows = list(session.scalars(select(ReferralReward).where(
        ReferralReward.tenant_id == tenant_id, ReferralReward.event_id == event.id,
        ReferralReward.kind == "commission").order_by(ReferralReward.id)))
    given = 0
    touched: set[str] = set()
    for row in rows:
        amount, back = returned.get(row.line_no, (row.base_amount, 0))
        target = row.amount - domain.commission_after_return(row.amount, amount, back)
        delta = target - row.reversed_amount
        if delta <= 0 or row.hold_id is None:
            continue
        plan = get_plan(session, tenant_id, get_referral(session, tenant_id,
                                                         row.referral_id).plan_id)
        hold = ledger.get_hold(session, tenant_id, row.hold_id)
        if hold.state == "pending":
            ledger.void_hold(session, tenant_id, hold.id, actor=actor)
            if row.amount - target > 0:
                row.hold_id = _hold(session, plan, row, row.amount - target, str(target), actor)
        elif hold.state == "posted" and hold.resolved_entry_id is not None:
            ledger.reverse_entry(session, tenant_id, hold.resolved_entry_id,
                                 lines={1: delta, 2: delta},
                                 entry_key=f"referral-refund:{row.id}:{target}", actor=actor,
                                 memo=f"refund of {event.external_id}")
        row.reversed_amount = target
        given += delta
        touched.add(row.referral_id)
    session.flush()
    for referral_id in sorted(touched):
        _maybe_void(session, tenant_id, referral_id, actor)
    return given


def _maybe_void(session: Session, tenant_id: str, referral_id: str, actor: str) -> None:
    referral = get_referral(session, tenant_id, referral_id)
    rows = list(session.scalars(select(ReferralReward).where(
        ReferralReward.tenant_id == tenant_id, ReferralReward.referral_id == referral_id)))
    commissions = [r for r in rows if r.kind == "commission"]
    if referral.status != "qualified" or not commissions \
            or any(r.reversed_amount < r.amount for r in commissions) \
            or any(reward_state(session, tenant_id, r) == "payable" for r in rows):
        return
    for row in rows:
        if row.hold_id is not None and reward_state(session, tenant_id, row) == "pending":
            ledger.void_hold(session, tenant_id, row.hold_id, actor=actor)
            row.reversed_amount = row.amount
    referral.status = "void"
    referral.reason = "the referred member's purchases were refunded"
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="referral.void",
                 object_type="referral", object_id=referral.id,
                 before={"status": "qualified"}, after={"status": "void"})
    outbox.emit(session, tenant_id, "referral.void", {"referral_id": referral.id})


def sync_batch(session: Session, tenant_id: str, plan_id: str, *,
               actor: str = "job:referrals", batch: int = 500) -> int:
    """Attribute (or reconcile the refunds of) at most ``batch`` purchases of the plan that
    ``sync`` has not looked at yet, or that were refunded since it did; records each in
    ``referral_attributed``. Returns how many it looked at (fewer than ``batch``: done)."""
    plan = get_plan(session, tenant_id, plan_id)
    ev, seen = events.Event, ReferralAttributed
    rows = session.execute(
        select(ev.id, ev.returned_amount)
        .join(Referral, (Referral.tenant_id == ev.tenant_id)
              & (Referral.referred_account_id == ev.account_id))
        .outerjoin(seen, (seen.tenant_id == ev.tenant_id) & (seen.plan_id == plan.id)
                   & (seen.event_id == ev.id))
        .where(ev.tenant_id == tenant_id, ev.program_id == plan.program_id,
               ev.kind == "purchase", ev.status == "processed",
               Referral.plan_id == plan.id, Referral.status == "qualified",
               Referral.kind == plan.attribution, ev.occurred_at >= Referral.signed_up_at,
               ev.occurred_at < Referral.window_ends_at,
               or_(seen.event_id.is_(None), seen.returned_amount != ev.returned_amount))
        .group_by(ev.id, ev.returned_amount).order_by(ev.id).limit(batch)).all()
    now = clock.now()
    for event_id, returned in rows:
        attribute(session, tenant_id, event_id, actor=actor)
        mark = session.get(seen, (tenant_id, plan.id, event_id))
        if mark is None:
            session.add(seen(tenant_id=tenant_id, plan_id=plan.id, event_id=event_id,
                             returned_amount=returned, at=now))
        else:
            mark.returned_amount, mark.at = returned, now
        session.flush()
    return len(rows)


def sync(session: Session, tenant_id: str, plan_id: str, *, actor: str = "job:referrals",
         batch: int = 500, max_batches: int | None = None) -> tuple[int, bool]:
    """Attribute and reconcile the plan's purchases not yet looked at (or refunded since), in
    batches of ``batch``, until none is left or ``max_batches`` ran; idempotent (a re-run
    looks at nothing). Returns (purchases looked at, done)."""
    total, runs = 0, 0
    while max_batches is None or runs < max_batches:
        count = sync_batch(session, tenant_id, plan_id, actor=actor, batch=batch)
        total, runs = total + count, runs + 1
        if count < batch:
            return total, True
    return total, False


def statement(session: Session, tenant_id: str, plan_id: str,
              account_id: str) -> list[tuple[ReferralReward, str]]:
    """A member's rewards in a plan with their state (pending, payable, void)."""
    get_plan(session, tenant_id, plan_id)
    rows = session.scalars(select(ReferralReward).join(
        Referral, (Referral.tenant_id == ReferralReward.tenant_id)
        & (Referral.id == ReferralReward.referral_id))
        .where(ReferralReward.tenant_id == tenant_id, Referral.plan_id == plan_id,
               ReferralReward.owner_account_id == account_id)
        .order_by(ReferralReward.id))
    return [(row, reward_state(session, tenant_id, row)) for row in rows]
