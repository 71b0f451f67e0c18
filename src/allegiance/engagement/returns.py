"""Returns undo engagement: the returned share of a purchase leaves the leaderboard tallies,
and the challenge progress the purchase made is taken back exactly (each event's contribution
is stored). When a challenge's totals no longer hold a completion, the latest completion is
undone: its points are reversed through the ledger (a wallet that spent them goes to its
floor and the rest becomes a receivable, never a silent loss), its tier credit is taken back
and it is marked reversed. Badges stay: levels only go up."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit, ledger, rewards, tenants, tiers
from allegiance.engagement import domain
from allegiance.engagement import repository as repo
from allegiance.engagement.models import (
    Challenge,
    ChallengeCompletion,
    ChallengeContribution,
)
from allegiance.engagement.service import lock_progress, spec_of, totals_of
from allegiance.kit import clock, outbox


def on_return(session: Session, tenant_id: str, program: tenants.Program,
              before: domain.Occurrence, after: domain.Occurrence, *, return_event_id: str,
              points_back: int, actor: str) -> list[ChallengeCompletion]:
    """Take back what a return removes from a purchase (``before`` and ``after`` are the
    purchase net of the returns before and after this one); returns the completions undone.
    Runs in the return's transaction."""
    fully = after.returned and not before.returned
    repo.add_tally(session, tenant_id, program.id, before.account_id, before.occurred_at,
                   program.time_zone, sales=-(before.amount - after.amount),
                   purchases=-1 if fully else 0, points=-points_back)
    counted = list(session.scalars(select(ChallengeContribution).where(
        ChallengeContribution.tenant_id == tenant_id,
        ChallengeContribution.event_id == before.event_id).order_by(
        ChallengeContribution.challenge_id)))
    undone: list[ChallengeCompletion] = []
    for part in counted:
        challenge = session.get(Challenge, (tenant_id, part.challenge_id))
        assert challenge is not None
        left = domain.contribution(spec_of(challenge), after)
        if left >= part.value:
            continue
        progress = lock_progress(session, tenant_id, challenge.id, part.account_id)
        repo.bump(session, {"tenant_id": tenant_id, "challenge_id": challenge.id,
                            "account_id": part.account_id,
                            "period_index": part.period_index}, left - part.value)
        part.value = left
        progress.updated_at = clock.now()
        _, extra = domain.settle(progress.completions,
                                 totals_of(session, tenant_id, challenge.id, part.account_id),
                                 challenge.target, challenge.streak, challenge.max_completions)
        if extra:
            latest = list(session.scalars(select(ChallengeCompletion).where(
                ChallengeCompletion.tenant_id == tenant_id,
                ChallengeCompletion.challenge_id == challenge.id,
                ChallengeCompletion.account_id == part.account_id,
                ChallengeCompletion.reversed_at.is_(None)).order_by(
                ChallengeCompletion.number.desc()).limit(extra)))
            for completion in latest:
                _undo(session, tenant_id, program, challenge, completion, return_event_id,
                      actor=actor)
                progress.completions -= 1
                undone.append(completion)
    session.flush()
    return undone


def _day_of(program: tenants.Program, completion: ChallengeCompletion) -> datetime:
    """A moment of the local day the completion counted on (its period for tier credit)."""
    if completion.tally_day is None:
        return completion.completed_at
    return datetime.combine(date.fromordinal(completion.tally_day), time(12),
                            ZoneInfo(program.time_zone))


def _undo(session: Session, tenant_id: str, program: tenants.Program, challenge: Challenge,
          completion: ChallengeCompletion, return_event_id: str, *, actor: str) -> None:
    when = _day_of(program, completion)
    taken: list[dict[str, Any]] = []
    if completion.entry_id is not None:
        result = ledger.reverse_entry(
            session, tenant_id, completion.entry_id,
            entry_key=f"challenge-return:{completion.id}", actor=actor, kind="reversal",
            memo=f"challenge {challenge.code} completion {completion.number} undone by a return",
            source_type="challenge", source_id=completion.id)
        completion.reversal_entry_id = result.entry_id
        paid = next((e for e in completion.effects if e.get("type") == "points"), None)
        if paid is not None:
            repo.add_tally(session, tenant_id, program.id, completion.account_id, when,
                           program.time_zone, points=-int(paid["amount"]))
            taken.append({"type": "points", "unit": paid["unit"], "amount": paid["amount"]})
    for effect in completion.effects:
        if effect.get("type") == "tier_credit":
            tiers.add_credit(session, tenant_id, program.id, completion.account_id,
                             str(effect["metric"]), -int(effect["amount"]), when, actor=actor)
            taken.append(dict(effect))
        elif effect.get("type") == "coupon" and effect.get("redemption_id") and \
                rewards.void_coupon(session, tenant_id, str(effect["redemption_id"]),
                                    actor=actor):
            taken.append({"type": "coupon", "reward": effect["reward"],
                          "redemption_id": effect["redemption_id"]})
    repo.add_tally(session, tenant_id, program.id, completion.account_id, when,
                   program.time_zone, challenges=-1)
    completion.reversed_at = clock.now()
    completion.reversed_by_event_id = return_event_id
    session.flush()
    outbox.emit(session, tenant_id, "challenge.reversed", {
        "program_id": program.id, "challenge": challenge.code,
        "account_id": completion.account_id, "number": completion.number,
        "return_event_id": return_event_id, "taken_back": taken,
        "reversal_entry_id": completion.reversal_entry_id})
    audit.record(session, tenant_id, actor=actor, action="challenge.reverse",
                 object_type="account", object_id=completion.account_id,
                 after={"challenge": challenge.code, "number": completion.number,
                        "taken_back": taken, "return_event_id": return_event_id})
