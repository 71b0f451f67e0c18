"""Tier use cases: ladders, qualifying credits and reports, placements, status, recalculation.

Services flush; the caller commits. Per-event work (``add_credit``) touches one account and
its ancestors; the recalculation of a program is set-based (see ``repository``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.kit import clock, outbox
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.ids import new_id
from allegiance.tiers import domain, recalculation, repository
from allegiance.tiers.errors import (
    AccountNotFound,
    DuplicateLadder,
    InvalidLadder,
    LadderNotFound,
    LevelInUse,
)
from allegiance.tiers.models import TierChange, TierLadder, TierStatus

SYSTEM = "system"


@dataclass(frozen=True)
class Move:
    """One change of an account's level on a ladder."""

    ladder_code: str
    account_id: str
    from_level: str | None
    to_level: str | None
    reason: str


@dataclass(frozen=True)
class TierState:
    """An account's place on one ladder, with its progress to the next level."""

    ladder_id: str
    ladder_code: str
    metric: str
    level: str | None
    level_name: str | None
    since: datetime | None
    locked: bool
    lock_reason: str | None
    value: int
    period_key: str
    window_start: datetime
    window_end: datetime
    next_level: str | None
    needed: int
    ratio: Decimal
    benefits: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recalculation:
    evaluated: int
    upgraded: int
    downgraded: int
    ladders: dict[str, dict[str, int]]


def ladder_of(row: TierLadder) -> domain.Ladder:
    return domain.from_dict(row.definition)


def _parse(definition: dict[str, Any]) -> domain.Ladder:
    try:
        ladder = domain.from_dict(definition)
    except ValueError as exc:
        message = str(exc)
        path = message.split(" ", 1)[0]
        raise InvalidLadder(message, field=path) from exc
    if ladder.period.kind == "anniversary":
        for metric in ladder.required_metrics:
            if domain.is_accumulated(metric):
                raise InvalidLadder("an anniversary ladder may only require reported metrics",
                                    field="levels")
    return ladder


def _now(at: datetime | None) -> datetime:
    if at is None:
        return clock.now()
    if at.tzinfo is None:
        raise ValidationFailed("at must carry a time zone", field="at")
    return at


# ---------------------------------------------------------------------------------------------
# Ladders


def _check_unique(session: Session, tenant_id: str, program_id: str, ladder: domain.Ladder,
                  own_id: str | None) -> None:
    for row in repository.ladders_of(session, tenant_id, program_id):
        if row.id == own_id:
            continue
        if row.code == ladder.code:
            raise DuplicateLadder(f"the program already has a ladder {ladder.code!r}",
                                  field="code")
        if ladder.primary and row.is_primary:
            raise DuplicateLadder(f"ladder {row.code!r} is already the primary ladder",
                                  field="primary")


def create_ladder(session: Session, tenant_id: str, program_id: str,
                  definition: dict[str, Any]) -> TierLadder:
    tenants.get_program(session, tenant_id, program_id)
    ladder = _parse(definition)
    _check_unique(session, tenant_id, program_id, ladder, None)
    now = clock.now()
    row = TierLadder(
        tenant_id=tenant_id, id=new_id("tld"), program_id=program_id, code=ladder.code,
        name=ladder.name, metric=ladder.metric, is_primary=ladder.primary,
        definition=ladder.to_dict(), settled_through=None, created_at=now, updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_ladder(session: Session, tenant_id: str, ladder_id: str) -> TierLadder:
    row = repository.get_ladder(session, tenant_id, ladder_id)
    if row is None:
        raise LadderNotFound(f"tier ladder {ladder_id} not found", field="ladder_id")
    return row


def list_ladders(session: Session, tenant_id: str, program_id: str) -> list[TierLadder]:
    tenants.get_program(session, tenant_id, program_id)
    return repository.ladders_of(session, tenant_id, program_id)


def update_ladder(session: Session, tenant_id: str, ladder_id: str,
                  definition: dict[str, Any]) -> TierLadder:
    """Replace a ladder's definition; levels that members hold may not disappear."""
    row = get_ladder(session, tenant_id, ladder_id)
    repository.lock_ladder(session, tenant_id, ladder_id)
    ladder = _parse(definition)
    _check_unique(session, tenant_id, row.program_id, ladder, row.id)
    kept = {level.code for level in ladder.levels}
    missing = sorted(repository.codes_in_use(session, tenant_id, ladder_id) - kept)
    if missing:
        raise LevelInUse(f"members hold level {missing[0]!r}; place them elsewhere first",
                         field="levels")
    repository.remap_ranks(session, tenant_id, row, ladder)
    row.code, row.name, row.metric = ladder.code, ladder.name, ladder.metric
    row.is_primary = ladder.primary
    row.definition = ladder.to_dict()
    row.updated_at = clock.now()
    session.flush()
    return row


def _ladder_by_code(session: Session, tenant_id: str, program_id: str,
                    code: str | None) -> TierLadder:
    rows = repository.ladders_of(session, tenant_id, program_id)
    if code is None:
        if len(rows) == 1:
            return rows[0]
        raise ValidationFailed("name the ladder: the program has several or none",
                               field="ladder")
    for row in rows:
        if row.code == code:
            return row
    raise LadderNotFound(f"the program has no ladder {code!r}", field="ladder")


# ---------------------------------------------------------------------------------------------
# Evaluation of one account


def _check_account(session: Session, tenant_id: str, account_id: str) -> None:
    if not repository.account_exists(session, tenant_id, account_id):
        raise AccountNotFound(f"account {account_id} not found", field="account_id")


def _value(session: Session, tenant_id: str, program_id: str, metric: str,
           accounts: list[str], bounds: tuple[int, int], ref: int) -> int:
    last = bounds[1] if domain.is_accumulated(metric) else ref
    return repository.metric_value(session, tenant_id, program_id, metric, accounts,
                                   bounds[0], last)


def _account_value(session: Session, tenant_id: str, program_id: str, ladder: domain.Ladder,
                   account_id: str, ref: int, anchor: int | None) -> int:
    accounts = (repository.descendants_or_self(session, tenant_id, account_id)
                if ladder.rollup else [account_id])
    return _value(session, tenant_id, program_id, ladder.metric, accounts,
                  ladder.period.bounds(ref, anchor), ref)


def _others(session: Session, tenant_id: str, program_id: str, ladder: domain.Ladder,
            account_id: str, ref: int) -> dict[str, int]:
    bounds = ladder.period.bounds(ref)
    return {metric: _value(session, tenant_id, program_id, metric, [account_id], bounds, ref)
            for metric in ladder.required_metrics}


def _apply(session: Session, program: tenants.Program, row: TierLadder, ladder: domain.Ladder,
           status: TierStatus, target: int, *, reason: str, actor: str, note: str | None,
           value: int | None, at: datetime) -> Move:
    before = status.level_code
    change = repository.add_change(session, status, to_rank=target,
                                   to_code=ladder.code_of(target), reason=reason, actor=actor,
                                   note=note, value=value, at=at)
    if ladder.primary:
        repository.set_enrolment_tier(session, program.tenant_id, program.id,
                                      status.account_id, change.to_level, at)
    outbox.emit(session, program.tenant_id, "tier.changed", {
        "program_id": program.id, "ladder": ladder.code, "account_id": status.account_id,
        "from": before, "to": change.to_level, "reason": reason, "at": at.isoformat(),
    })
    return Move(ladder.code, status.account_id, before, change.to_level, reason)


def _evaluate(session: Session, program: tenants.Program, row: TierLadder,
              ladder: domain.Ladder, account_id: str, at: datetime, *, period_end: bool = False,
              direct: int = domain.NO_LEVEL, reason: str | None = None,
              actor: str = SYSTEM) -> Move | None:
    if ladder.audience and not ladder.admits(
            repository.account_attributes(session, program.tenant_id, account_id)):
        return None
    ref = domain.month_index(at, program.time_zone)
    status = repository.status_for_update(session, program.tenant_id, program.id, row.id,
                                          account_id, ref, at)
    value = _account_value(session, program.tenant_id, program.id, ladder, account_id, ref,
                           status.anchor_month)
    others = _others(session, program.tenant_id, program.id, ladder, account_id, ref)
    qualified = domain.qualify_rank(ladder, value, others)
    target = domain.decide_rank(ladder, status.level_rank, qualified, period_end=period_end,
                                locked=status.locked)
    why = reason or ("upgrade" if target > status.level_rank else "downgrade")
    if not status.locked and direct > target:
        target, why = direct, "direct_placement"
    if target == status.level_rank:
        return None
    return _apply(session, program, row, ladder, status, target, reason=why, actor=actor,
                  note=None, value=value, at=at)


def _touching(session: Session, tenant_id: str, program_id: str,
              metric: str) -> list[tuple[TierLadder, domain.Ladder]]:
    return [(row, ladder) for row in repository.ladders_of(session, tenant_id, program_id)
            if metric in (ladder := ladder_of(row)).metrics]


# ---------------------------------------------------------------------------------------------
# Qualifying credits, reports and certifications


def add_credit(session: Session, tenant_id: str, program_id: str, account_id: str, metric: str,
               amount: int, at: datetime | None = None, *, order_amount: int | None = None,
               actor: str = SYSTEM) -> list[Move]:
    """Credit an accumulated metric (``points_earned``, ``spend`` in minor units, ``count``) and
    move the account (and, on roll-up ladders, its parents) up at once where it now qualifies.

    ``order_amount`` is the amount of the single order behind the credit; a ladder with direct
    placement places the account in its level when the order is big enough. Negative amounts
    (returns) lower the metric; a lower metric only counts when the period ends.
    """
    if not domain.is_accumulated(metric):
        raise ValidationFailed(f"metric must be one of {', '.join(domain.ACCUMULATED_METRICS)}",
                               field="metric")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationFailed("amount must be an integer", field="amount")
    at = _now(at)
    program = tenants.get_program(session, tenant_id, program_id)
    _check_account(session, tenant_id, account_id)
    ref = domain.month_index(at, program.time_zone)
    if amount:
        repository.add_metric(session, tenant_id, program_id, metric, account_id, ref, amount, at)
    moves: list[Move] = []
    for row in repository.ladders_of(session, tenant_id, program_id):
        ladder = ladder_of(row)
        direct = domain.direct_placement_rank(ladder, order_amount)
        if direct == domain.NO_LEVEL and (amount <= 0 or metric not in ladder.metrics):
            continue  # nothing that could move the account up
        owners = (repository.ancestors_or_self(session, tenant_id, account_id)
                  if ladder.rollup and metric == ladder.metric else [account_id])
        for owner in owners:
            move = _evaluate(session, program, row, ladder, owner, at,
                             direct=direct if owner == account_id else domain.NO_LEVEL,
                             actor=actor)
            if move is not None:
                moves.append(move)
    session.flush()
    return moves


def report_metric(session: Session, tenant_id: str, program_id: str, account_id: str,
                  metric: str, value: int, at: datetime | None = None, *,
                  actor: str = SYSTEM) -> list[Move]:
    """Store a metric reported from outside (a combined balance, a rating); it replaces the
    month's previous report. Upgrades happen at once, downgrades when the period ends."""
    if domain.is_accumulated(metric) or not domain.valid_metric(metric):
        raise ValidationFailed("metric must be the name of a reported metric (not points_earned, "
                               "spend or count)", field="metric")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed("value must be an integer", field="value")
    return _report(session, tenant_id, program_id, account_id, metric, value, _now(at),
                   actor=actor, period_end=False, reason=None)


def certify(session: Session, tenant_id: str, program_id: str, account_id: str,
            certification: str, granted: bool, at: datetime | None = None, *,
            actor: str = SYSTEM) -> list[Move]:
    """Grant or revoke a certification (the metric ``certification:<name>`` becomes 1 or 0).

    Ladders on it move at once both ways: a revoked certification is no certification.
    """
    metric = domain.certification_metric(certification)
    if not domain.valid_metric(metric):
        raise ValidationFailed("certification: lower-case letters, digits, '-' and '_'",
                               field="certification")
    return _report(session, tenant_id, program_id, account_id, metric, 1 if granted else 0,
                   _now(at), actor=actor, period_end=not granted, reason="certification")


def _report(session: Session, tenant_id: str, program_id: str, account_id: str, metric: str,
            value: int, at: datetime, *, actor: str, period_end: bool,
            reason: str | None) -> list[Move]:
    program = tenants.get_program(session, tenant_id, program_id)
    _check_account(session, tenant_id, account_id)
    ref = domain.month_index(at, program.time_zone)
    repository.set_metric(session, tenant_id, program_id, metric, account_id, ref, value, at)
    moves: list[Move] = []
    for row, ladder in _touching(session, tenant_id, program_id, metric):
        owners = (repository.ancestors_or_self(session, tenant_id, account_id)
                  if ladder.rollup and metric == ladder.metric else [account_id])
        for owner in owners:
            move = _evaluate(session, program, row, ladder, owner, at, period_end=period_end,
                             reason=reason, actor=actor)
            if move is not None:
                moves.append(move)
    session.flush()
    return moves


# ---------------------------------------------------------------------------------------------
# Manual placement


def place(session: Session, tenant_id: str, program_id: str, account_id: str, *,
          level: str | None, reason: str, actor: str, ladder_code: str | None = None,
          lock: bool = False, at: datetime | None = None) -> Move:
    """Put an account on a level by hand (``None`` removes its level), with a reason; a lock
    keeps it there through credits and recalculations until the next placement."""
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("a placement needs a reason", field="reason")
    at = _now(at)
    program = tenants.get_program(session, tenant_id, program_id)
    _check_account(session, tenant_id, account_id)
    row = _ladder_by_code(session, tenant_id, program_id, ladder_code)
    ladder = ladder_of(row)
    if ladder.audience and not ladder.admits(
            repository.account_attributes(session, tenant_id, account_id)):
        raise ValidationFailed(f"ladder {ladder.code!r} is not for this account",
                               field="ladder")
    try:
        target = ladder.rank_of(level)
    except ValueError as exc:
        raise ValidationFailed(f"ladder {ladder.code!r} has no level {level!r}",
                               field="level") from exc
    status = repository.status_for_update(session, tenant_id, program_id, row.id, account_id,
                                          domain.month_index(at, program.time_zone), at)
    status.locked = lock
    status.lock_reason = reason if lock else None
    return _apply(session, program, row, ladder, status, target, reason="manual", actor=actor,
                  note=reason, value=None, at=at)


# ---------------------------------------------------------------------------------------------
# Reading


def status(session: Session, tenant_id: str, program_id: str, account_id: str,
           at: datetime | None = None) -> list[TierState]:
    """The account's level on every ladder of the program and its progress to the next."""
    at = _now(at)
    program = tenants.get_program(session, tenant_id, program_id)
    _check_account(session, tenant_id, account_id)
    held = {s.ladder_id: s for s in repository.statuses_of(session, tenant_id, program_id,
                                                           account_id)}
    ref = domain.month_index(at, program.time_zone)
    attributes = repository.account_attributes(session, tenant_id, account_id)
    states = []
    for row in repository.ladders_of(session, tenant_id, program_id):
        ladder = ladder_of(row)
        if not ladder.admits(attributes):
            continue
        st = held.get(row.id)
        anchor = st.anchor_month if st is not None else None
        code = st.level_code if st is not None else None
        value = _account_value(session, tenant_id, program_id, ladder, account_id, ref, anchor)
        progress = domain.next_tier_progress(ladder, code, value)
        start, end = ladder.period.window(at, program.time_zone, anchor)
        level = ladder.level(code) if code is not None else None
        states.append(TierState(
            ladder_id=row.id, ladder_code=row.code, metric=ladder.metric, level=code,
            level_name=level.name if level else None, since=st.since if st else None,
            locked=bool(st and st.locked), lock_reason=st.lock_reason if st else None,
            value=value, period_key=ladder.period.period_key(at, program.time_zone, anchor),
            window_start=start, window_end=end, next_level=progress.next_level,
            needed=progress.needed, ratio=progress.ratio,
            benefits=dict(level.benefits) if level else {},
        ))
    return states


def history(session: Session, tenant_id: str, program_id: str, account_id: str, *,
            limit: int = 50, before: tuple[datetime, str, int] | None = None) -> list[TierChange]:
    tenants.get_program(session, tenant_id, program_id)
    _check_account(session, tenant_id, account_id)
    return repository.history(session, tenant_id, program_id, account_id, limit, before)


def multiplier(session: Session, tenant_id: str, program_id: str, account_id: str) -> Decimal:
    """The earning multiplier the account's current levels give (the highest; 1 without)."""
    best = Decimal(1)
    held = [s for s in repository.statuses_of(session, tenant_id, program_id, account_id)
            if s.level_code is not None]
    if not held:
        return best
    ladders = {row.id: row for row in repository.ladders_of(session, tenant_id, program_id)}
    found: list[Decimal] = []
    for st in held:
        row = ladders.get(st.ladder_id)
        if row is not None and st.level_code is not None:
            found.append(ladder_of(row).level(st.level_code).earn_multiplier)
    return max(found) if found else best


# ---------------------------------------------------------------------------------------------
# Recalculation


def recalculate(session: Session, tenant_id: str, program_id: str, *,
                at: datetime | None = None, period_end: bool = False,
                actor: str = SYSTEM) -> Recalculation:
    """Evaluate every account of every ladder of the program, set-based.

    Without ``period_end`` the windows containing ``at`` are evaluated and accounts only move
    up. With it, the month before ``at``'s month is settled: the windows ending with that month
    are closed and their accounts may move down (once: settling the same month again moves
    nobody down twice).
    """
    at = _now(at)
    program = tenants.get_program(session, tenant_id, program_id)
    month = domain.month_index(at, program.time_zone)
    ref = month - 1 if period_end else month
    per_ladder: dict[str, dict[str, int]] = {}
    for row in repository.ladders_of(session, tenant_id, program_id):
        repository.lock_ladder(session, tenant_id, row.id)
        settle = period_end and (row.settled_through is None or row.settled_through < ref)
        per_ladder[row.code] = recalculation.recalculate_ladder(
            session, tenant_id, program_id, row.id, ladder_of(row), ref=ref, period_end=settle,
            at=at, actor=actor,
        )
        if settle:
            row.settled_through = ref
    totals = {k: sum(c[k] for c in per_ladder.values())
              for k in ("evaluated", "upgraded", "downgraded")}
    outbox.emit(session, tenant_id, "tiers.recalculated", {
        "program_id": program_id, "at": at.isoformat(), "period_end": period_end, **totals,
    })
    session.flush()
    return Recalculation(ladders=per_ladder, **totals)
