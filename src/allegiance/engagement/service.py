"""Challenges: definitions, progress from ingested events (called by the earning path in the
event's transaction), completion effects through the ledger, badges and tier credit, and the
progress a member sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import audit, definitions, ledger, members, rewards, rules, tenants, tiers
from allegiance.engagement import academy, badges, domain
from allegiance.engagement import repository as repo
from allegiance.engagement.errors import ChallengeNotFound, DuplicateCode, InvalidChallenge
from allegiance.engagement.models import (
    Challenge,
    ChallengeCompletion,
    ChallengeContribution,
    ChallengeProgress,
    ChallengeTotal,
)
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique, is_unique_violation
from allegiance.kit.ids import new_id

EFFECT_TYPES = ("points", "badge", "tier_credit", "coupon")
TIER_METRICS = ("points_earned", "spend", "count")
UPDATABLE = frozenset({"name", "description", "ends_at", "max_completions", "status"})


# --- definitions -----------------------------------------------------------------------------


def _check_effects(session: Session, tenant_id: str, program_id: str,
                   effects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, effect in enumerate(effects):
        path = f"effects[{index}]"
        kind = effect.get("type")
        if kind not in EFFECT_TYPES:
            raise InvalidChallenge(f"type must be one of {', '.join(EFFECT_TYPES)}",
                                   field=f"{path}.type")
        amount = effect.get("amount")
        if kind in ("points", "tier_credit") and (
                isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
            raise InvalidChallenge("amount must be a positive integer", field=f"{path}.amount")
        if kind == "points":
            unit = tenants.unit_by_code(session, tenant_id, program_id, str(effect.get("unit")))
            out.append({"type": "points", "unit": unit.code, "amount": amount})
        elif kind == "badge":
            badge = badges.badge_by_code(session, tenant_id, program_id, str(effect.get("badge")))
            level = effect.get("level")
            if level is not None and (isinstance(level, bool) or not isinstance(level, int)
                                      or not 1 <= level <= len(badge.levels)):
                raise InvalidChallenge(f"level must be 1 to {len(badge.levels)}",
                                       field=f"{path}.level")
            out.append({"type": "badge", "badge": badge.code, "level": level})
        elif kind == "coupon":
            code = effect.get("reward")
            if not isinstance(code, str) or rewards.coupon_reward(
                    session, tenant_id, program_id, code) is None:
                raise InvalidChallenge(f"no active coupon reward {code!r} in the catalogue",
                                       field=f"{path}.reward")
            out.append({"type": "coupon", "reward": code})
        else:
            if effect.get("metric") not in TIER_METRICS:
                raise InvalidChallenge(f"metric must be one of {', '.join(TIER_METRICS)}",
                                       field=f"{path}.metric")
            out.append({"type": "tier_credit", "metric": effect["metric"], "amount": amount})
    if sum(1 for e in out if e["type"] == "points") > 1:
        raise InvalidChallenge("at most one points effect", field="effects")
    return out


def _check(values: Mapping[str, Any]) -> None:
    trigger = str(values["trigger"])
    if not (trigger in ("purchase", "activity") or trigger.startswith("activity:")):
        raise InvalidChallenge("trigger is purchase, activity or activity:<type>",
                               field="trigger")
    if values["metric"] not in domain.METRICS:
        raise InvalidChallenge(f"metric must be one of {', '.join(domain.METRICS)}",
                               field="metric")
    if values["period"] not in domain.PERIODS:
        raise InvalidChallenge(f"period must be one of {', '.join(domain.PERIODS)}",
                               field="period")
    for name in ("target", "streak"):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidChallenge(f"{name} must be a positive integer", field=name)
    if values["period"] == "all" and values["streak"] != 1:
        raise InvalidChallenge("a streak needs a period (day, week, month…)", field="streak")
    if (values.get("product_list") or values.get("category")) and trigger != "purchase":
        raise InvalidChallenge("product lists and categories filter purchases",
                               field="product_list")
    if values.get("starts_at") and values.get("ends_at") and \
            values["starts_at"] >= values["ends_at"]:
        raise InvalidChallenge("starts_at must be before ends_at", field="ends_at")
    if values.get("status", "active") not in ("active", "retired"):
        raise InvalidChallenge("status must be active or retired", field="status")
    for name in ("max_completions", "budget"):
        value = values.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value <= 0):
            raise InvalidChallenge(f"{name} must be a positive integer", field=name)


def _budget_account(session: Session, tenant_id: str, challenge: Challenge,
                    unit_id: str) -> ledger.LedgerAccount:
    return rules.budget_account(session, tenant_id, challenge.program_id, unit_id,
                                f"challenge:{challenge.code}")


def create_challenge(session: Session, tenant_id: str, program_id: str, *, code: str,
                     name: str, trigger: str, metric: str = "count", target: int,
                     period: str = "all", streak: int = 1, effects: list[dict[str, Any]],
                     actor: str, **options: Any) -> Challenge:
    """Define a challenge. With a ``budget`` (in the unit of its points effect) the budget is
    moved from the unit's issued account to the challenge's budget account, which completions
    pay from and which is never overdrawn."""
    tenants.get_program(session, tenant_id, program_id)
    now = clock.now()
    values: dict[str, Any] = {
        "description": "", "product_list": None, "category": None, "starts_at": None,
        "ends_at": None, "max_completions": None, "budget": None, "status": "active"}
    unknown = set(options) - set(values)
    if unknown:
        raise InvalidChallenge(f"unknown option {sorted(unknown)[0]}", field=sorted(unknown)[0])
    values.update({k: v for k, v in options.items() if v is not None})
    values.update(trigger=trigger, metric=metric, target=target, period=period, streak=streak)
    _check(values)
    if values["product_list"] is not None:
        version = definitions.version_at(session, tenant_id, program_id, now)
        if version is None or values["product_list"] not in version.compiled.lists:
            raise InvalidChallenge("not a product list of the program's definition",
                                   field="product_list")
    checked = _check_effects(session, tenant_id, program_id, effects)
    if not checked:
        raise InvalidChallenge("a challenge needs at least one effect", field="effects")
    points = next((e for e in checked if e["type"] == "points"), None)
    if values["budget"] is not None and points is None:
        raise InvalidChallenge("a budget needs a points effect", field="budget")
    challenge = Challenge(tenant_id=tenant_id, id=new_id("chl"), program_id=program_id,
                          code=code, name=name, effects=checked, created_at=now,
                          updated_at=now, **values)
    add_unique(session, challenge, DuplicateCode(f"challenge {code} exists in this program", field="code"))
    if points is not None and challenge.budget is not None:
        unit = tenants.unit_by_code(session, tenant_id, program_id, points["unit"])
        issued = ledger.program_account(session, tenant_id, program_id, unit.id, "issued")
        budget = _budget_account(session, tenant_id, challenge, unit.id)
        ledger.post_entry(session, tenant_id, ledger.EntryRequest(
            program_id=program_id, kind="budget", source_type="challenge",
            source_id=challenge.id, entry_key=f"budget:challenge:{challenge.id}",
            memo=f"budget of challenge {code}", actor=actor,
            lines=(ledger.Line(issued.id, unit.id, ledger.Side.DEBIT, challenge.budget),
                   ledger.Line(budget.id, unit.id, ledger.Side.CREDIT, challenge.budget))))
    return challenge


def get_challenge(session: Session, tenant_id: str, challenge_id: str) -> Challenge:
    row = session.get(Challenge, (tenant_id, challenge_id))
    if row is None:
        raise ChallengeNotFound(f"challenge {challenge_id} not found", field="challenge_id")
    return row


def update_challenge(session: Session, tenant_id: str, challenge_id: str,
                     changes: Mapping[str, Any]) -> Challenge:
    """Rename, describe, end, cap or retire a challenge (what it counts never changes: that
    would rewrite every member's progress)."""
    row = get_challenge(session, tenant_id, challenge_id)
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise InvalidChallenge(f"{sorted(unknown)[0]} cannot be changed",
                               field=sorted(unknown)[0])
    values = {c.name: getattr(row, c.name) for c in Challenge.__table__.columns}
    values.update(changes)
    _check(values)
    for name, value in changes.items():
        if name in ("name", "status") and value is None:
            raise InvalidChallenge(f"{name} cannot be empty", field=name)
        setattr(row, name, value)
    row.updated_at = clock.now()
    session.flush()
    return row


def list_challenges(session: Session, tenant_id: str, program_id: str,
                    active_only: bool = False) -> list[Challenge]:
    tenants.get_program(session, tenant_id, program_id)
    query = select(Challenge).where(Challenge.tenant_id == tenant_id,
                                    Challenge.program_id == program_id)
    if active_only:
        query = query.where(Challenge.status == "active")
    return list(session.scalars(query.order_by(Challenge.code)))


def spec_of(row: Challenge) -> domain.ChallengeSpec:
    return domain.ChallengeSpec(
        trigger=row.trigger, metric=row.metric, target=row.target, period=row.period,
        streak=row.streak, product_list=row.product_list, category=row.category,
        starts_at=row.starts_at, ends_at=row.ends_at)


# --- the earning-path hook -------------------------------------------------------------------


def on_event(session: Session, tenant_id: str, program: tenants.Program,
             event: domain.Occurrence, *, actor: str) -> list[ChallengeCompletion]:
    """Count a processed purchase or activity toward the program's active challenges and the
    leaderboard tallies; complete what it completes. Runs in the event's transaction."""
    tz = program.time_zone
    if event.kind == "purchase":
        repo.add_tally(session, tenant_id, program.id, event.account_id, event.occurred_at, tz,
                       sales=event.amount, purchases=1, points=event.points)
    else:
        repo.add_tally(session, tenant_id, program.id, event.account_id, event.occurred_at, tz,
                       activities=1, points=event.points)
    for code in event.badges:
        if badges.find_badge(session, tenant_id, program.id, code) is not None:
            badges.award_badge(session, tenant_id, program.id, event.account_id, code,
                               source=f"event:{event.event_id}", actor=actor)
    if event.kind == "activity" and event.attributes.get(academy.COURSE_ATTRIBUTE):
        academy.on_activity(session, tenant_id, program, event, actor=actor)
    done: list[ChallengeCompletion] = []
    for challenge in list_challenges(session, tenant_id, program.id, active_only=True):
        value = domain.contribution(spec_of(challenge), event)
        if value <= 0:
            continue
        done.extend(_progress(session, tenant_id, program, challenge, event, value,
                              actor=actor))
    return done


def lock_progress(session: Session, tenant_id: str, challenge_id: str,
                   account_id: str) -> ChallengeProgress:
    key = (tenant_id, challenge_id, account_id)
    row = session.get(ChallengeProgress, key, with_for_update=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(ChallengeProgress(tenant_id=tenant_id, challenge_id=challenge_id,
                                          account_id=account_id, completions=0,
                                          last_event_at=None, updated_at=clock.now()))
            session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
    row = session.get(ChallengeProgress, key, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


def totals_of(session: Session, tenant_id: str, challenge_id: str,
              account_id: str) -> dict[int, int]:
    rows = session.execute(select(ChallengeTotal.period_index, ChallengeTotal.value).where(
        ChallengeTotal.tenant_id == tenant_id, ChallengeTotal.challenge_id == challenge_id,
        ChallengeTotal.account_id == account_id))
    return {int(index): int(value) for index, value in rows}


def _next_number(session: Session, tenant_id: str, challenge_id: str, account_id: str) -> int:
    """Completion numbers never repeat, also after a return undid one."""
    top = session.scalar(select(func.max(ChallengeCompletion.number)).where(
        ChallengeCompletion.tenant_id == tenant_id,
        ChallengeCompletion.challenge_id == challenge_id,
        ChallengeCompletion.account_id == account_id))
    return int(top or 0) + 1


def _progress(session: Session, tenant_id: str, program: tenants.Program, challenge: Challenge,
              event: domain.Occurrence, value: int, *,
              actor: str) -> list[ChallengeCompletion]:
    progress = lock_progress(session, tenant_id, challenge.id, event.account_id)
    index = domain.period_index(challenge.period, event.occurred_at, program.time_zone)
    repo.bump(session, {"tenant_id": tenant_id, "challenge_id": challenge.id,
                        "account_id": event.account_id, "period_index": index}, value)
    if event.event_id:
        session.add(ChallengeContribution(
            tenant_id=tenant_id, challenge_id=challenge.id, event_id=event.event_id,
            account_id=event.account_id, period_index=index, value=value))
    now = clock.now()
    if progress.last_event_at is None or event.occurred_at > progress.last_event_at:
        progress.last_event_at = event.occurred_at
    progress.updated_at = now
    add, _ = domain.settle(progress.completions,
                           totals_of(session, tenant_id, challenge.id, event.account_id),
                           challenge.target, challenge.streak, challenge.max_completions)
    out: list[ChallengeCompletion] = []
    for period_index in add:
        progress.completions += 1
        number = _next_number(session, tenant_id, challenge.id, event.account_id)
        out.append(_complete(session, tenant_id, program, challenge, event, number,
                             period_index, actor=actor))
    session.flush()
    return out


def _complete(session: Session, tenant_id: str, program: tenants.Program, challenge: Challenge,
              event: domain.Occurrence, number: int, period_index: int, *,
              actor: str) -> ChallengeCompletion:
    account_id = event.account_id
    given: list[dict[str, Any]] = []
    entry_id: str | None = None
    completion_id = new_id("chc")
    for effect in challenge.effects:
        if effect["type"] == "points":
            entry_id, note = _pay(session, tenant_id, program, challenge, account_id,
                                  int(effect["amount"]), completion_id, actor=actor)
            given.append({**effect, "paid": entry_id is not None, **note})
            if entry_id is not None:
                repo.add_tally(session, tenant_id, program.id, account_id, event.occurred_at,
                               program.time_zone, points=int(effect["amount"]))
        elif effect["type"] == "badge":
            held = badges.award_badge(session, tenant_id, program.id, account_id,
                                      effect["badge"], level=effect.get("level"),
                                      source=f"challenge:{challenge.code}", actor=actor)
            given.append({**effect, "level": held.level})
        elif effect["type"] == "coupon":
            coupon = rewards.issue_coupon(
                session, tenant_id, program.id, effect["reward"], account_id,
                source="challenge completion", source_id=completion_id, actor=actor)
            given.append({**effect, "redemption_id": coupon.id, "code": coupon.code,
                          "expires_at": coupon.code_expires_at.isoformat()
                          if coupon.code_expires_at is not None else None})
        else:
            tiers.add_credit(session, tenant_id, program.id, account_id, effect["metric"],
                             int(effect["amount"]), event.occurred_at, actor=actor)
            given.append(dict(effect))
    repo.add_tally(session, tenant_id, program.id, account_id, event.occurred_at,
                   program.time_zone, challenges=1)
    row = ChallengeCompletion(
        tenant_id=tenant_id, id=completion_id, challenge_id=challenge.id,
        account_id=account_id, number=number, period_index=period_index,
        event_id=event.event_id or None, entry_id=entry_id, effects=given,
        completed_at=clock.now(),
        tally_day=domain.period_index("day", event.occurred_at, program.time_zone),
        reversed_at=None, reversal_entry_id=None, reversed_by_event_id=None)
    session.add(row)
    session.flush()
    outbox.emit(session, tenant_id, "challenge.completed", {
        "program_id": program.id, "challenge": challenge.code, "account_id": account_id,
        "number": number, "period": domain.period_label(challenge.period, period_index),
        "effects": given, "event_id": event.event_id or None})
    audit.record(session, tenant_id, actor=actor, action="challenge.complete",
                 object_type="account", object_id=account_id,
                 after={"challenge": challenge.code, "number": number, "effects": given})
    return row


def _pay(session: Session, tenant_id: str, program: tenants.Program, challenge: Challenge,
         account_id: str, amount: int, completion_id: str, *,
         actor: str) -> tuple[str | None, dict[str, Any]]:
    unit_code = next(e["unit"] for e in challenge.effects if e["type"] == "points")
    unit = tenants.unit_by_code(session, tenant_id, program.id, unit_code)
    if challenge.budget is not None:
        source = _budget_account(session, tenant_id, challenge, unit.id)
        repo.lock_ledger_account(session, tenant_id, source.id)
        left = ledger.balance_of(ledger.get_account(session, tenant_id, source.id)).available
        if left < amount:
            return None, {"note": "the challenge's budget is used up"}
    else:
        source = ledger.program_account(session, tenant_id, program.id, unit.id, "issued")
    wallet = ledger.wallet(session, tenant_id, program.id, unit.id, "account", account_id)
    result = ledger.post_entry(session, tenant_id, ledger.EntryRequest(
        program_id=program.id, kind="earn", source_type="challenge",
        source_id=completion_id, entry_key=f"challenge:{completion_id}",
        memo=f"challenge {challenge.code} completed", actor=actor,
        lines=(ledger.Line(source.id, unit.id, ledger.Side.DEBIT, amount),
               ledger.Line(wallet.id, unit.id, ledger.Side.CREDIT, amount))))
    return result.entry_id, {}


# --- what the member sees --------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    challenge: Challenge
    period: str
    period_value: int
    period_starts_at: datetime | None
    period_ends_at: datetime | None
    streak: int
    completions: int
    remaining: int | None
    last_event_at: datetime | None
    history: list[ChallengeCompletion]


def progress_of(session: Session, tenant_id: str, program_id: str,
                account_id: str) -> list[Progress]:
    """Every challenge of the program (active, or already started by the account) with the
    account's standing in the current period of the program's time zone."""
    program = tenants.get_program(session, tenant_id, program_id)
    members.get_account(session, tenant_id, account_id)
    now = clock.now()
    out: list[Progress] = []
    for challenge in list_challenges(session, tenant_id, program_id):
        row = session.get(ChallengeProgress, (tenant_id, challenge.id, account_id))
        if challenge.status != "active" and row is None:
            continue
        totals = totals_of(session, tenant_id, challenge.id, account_id)
        index = domain.period_index(challenge.period, now, program.time_zone)
        bounds = domain.period_bounds(challenge.period, index, program.time_zone)
        history = list(session.scalars(select(ChallengeCompletion).where(
            ChallengeCompletion.tenant_id == tenant_id,
            ChallengeCompletion.challenge_id == challenge.id,
            ChallengeCompletion.account_id == account_id).order_by(ChallengeCompletion.number)))
        done = row.completions if row else 0
        out.append(Progress(
            challenge=challenge, period=domain.period_label(challenge.period, index),
            period_value=totals.get(index, 0),
            period_starts_at=bounds[0] if bounds else challenge.starts_at,
            period_ends_at=bounds[1] if bounds else challenge.ends_at,
            streak=domain.current_streak(totals, challenge.target, challenge.streak, index),
            completions=done,
            remaining=None if challenge.max_completions is None
            else max(challenge.max_completions - done, 0),
            last_event_at=row.last_event_at if row else None, history=history))
    return out
