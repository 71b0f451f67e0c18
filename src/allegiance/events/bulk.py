"""Bulk ingest of purchases and activities (file imports): the same rules, limits, budgets,
tiers and ledger as :func:`allegiance.events.ingest`, evaluated a chunk at a time with the
columnar evaluator (:func:`allegiance.rules.evaluate_frame`) and written with set-based
statements.

An event takes the bulk path when nothing it touches needs the per-event machinery; every
other event goes through :func:`allegiance.events.ingest` itself, *in its place in the
chunk's order*, so the result is the one-by-one result. The chunk is cut into runs of bulk
events ("segments") around the per-event ones; each segment reads the state it needs (tiers,
limit usage, budgets) after everything before it was written.

Per-event (never bulk):
- the program side: a definition version changing inside the chunk, campaigns active in its
  time span, member counters, pending earnings still pending, active challenges, segments or
  a computed RFM model, tier ladders with roll-up or required metrics;
- the event: an invalid one (the service gives the error), one matched by external id or a
  user, a reseller report, another currency, an account not found, merged, erased (the
  service refuses it: an error of that row) or without an active enrolment, an activity of
  the academy (``course`` attribute), an external id seen earlier in the chunk;
- the member: one whose tier could move inside the segment (its ladder value — every stored
  month plus the segment's credits — reaches a higher level, or an order reaches a direct
  placement level): all its remaining events of the chunk.

Events already stored (same program, source and external id) are replays and add nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import exists, func, select, tuple_
from sqlalchemy.orm import Session

from allegiance import campaigns, definitions, engagement, members, rules, tenants, tiers
from allegiance.events import bulk_writes as writes
from allegiance.events import domain
from allegiance.events import service as per_event
from allegiance.events.inputs import EventData, member_fields, unit_ids
from allegiance.events.models import Event
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError
from allegiance.kit.money import MAX_AMOUNT

T = TypeVar("T")
ACADEMY_ATTRIBUTE = "course"
_IN_LIMIT = 5000  # values per IN list


@dataclass
class Result:
    """What happened to one event: ``created`` (new), else a replay; ``bulk`` when it took
    the bulk path; ``error`` when the service refused it (nothing written)."""

    created: bool = False
    unmatched: bool = False
    bulk: bool = False
    error: AllegianceError | None = None


@dataclass
class Stats:
    bulk: int = 0
    per_event: int = 0
    segments: int = 0


@dataclass
class _Item:
    index: int
    data: EventData
    source: str
    at: datetime
    account_id: str | None = None
    bulk: bool = False


@dataclass
class _Context:
    """What a chunk reads once: the program, its definition, the accounts it matched."""

    program: tenants.Program
    version: definitions.Version
    compiled: rules.CompiledProgram
    units: dict[str, str]
    ladders: list[tuple[str, tiers.Ladder]]
    accounts: dict[str, members.Account] = field(default_factory=dict)


def _chunks(values: Sequence[T]) -> list[Sequence[T]]:
    return [values[i:i + _IN_LIMIT] for i in range(0, len(values), _IN_LIMIT)]


def ingest_many(session: Session, tenant_id: str, program_id: str,
                items: Sequence[EventData], *, actor: str,
                stats: Stats | None = None) -> list[Result]:
    """Ingest ``items`` in order in the caller's transaction; one :class:`Result` each."""
    stats = stats if stats is not None else Stats()
    if not items:
        return []
    program = tenants.get_program(session, tenant_id, program_id)
    out = [Result() for _ in items]
    work = [_Item(i, data, per_event.source_of(data), data.occurred_at or clock.now())
            for i, data in enumerate(items)]
    context = _context(session, tenant_id, program, work)
    if context is not None:
        _mark_bulk(session, tenant_id, context, work, out, actor)
    pos = 0
    while pos < len(work):
        if not work[pos].bulk:
            _one(session, tenant_id, program_id, work[pos], out, actor)
            stats.per_event += 1
            pos += 1
            continue
        end = pos
        while end < len(work) and work[end].bulk:
            end += 1
        assert context is not None
        segment = work[pos:end]
        moving = _segment(session, tenant_id, context, segment, out, actor)
        if moving:
            for item in work[pos:]:  # their remaining events go one by one
                if item.account_id in moving:
                    item.bulk = False
            continue
        stats.bulk += len(segment)
        stats.segments += 1
        pos = end
    return out


def _one(session: Session, tenant_id: str, program_id: str, item: _Item, out: list[Result],
         actor: str) -> None:
    try:
        with session.begin_nested():
            outcome = per_event.ingest(session, tenant_id, program_id, item.data, actor=actor)
    except AllegianceError as exc:
        out[item.index] = Result(error=exc)
        return
    out[item.index] = Result(created=outcome.created,
                             unmatched=outcome.created and outcome.event.status == "unmatched")


# ---------------------------------------------------------------------------------------------
# Which events can take the bulk path


def _context(session: Session, tenant_id: str, program: tenants.Program,
             work: list[_Item]) -> _Context | None:
    """The chunk's shared state, or None when the whole chunk goes event by event."""
    if not work:
        return None
    first, last = min(i.at for i in work), max(i.at for i in work)
    early = definitions.version_at(session, tenant_id, program.id, first)
    late = definitions.version_at(session, tenant_id, program.id, last)
    if early is None or late is None or early.number != late.number:
        return None
    compiled = early.compiled
    if compiled.counters:
        return None
    pending = max((r.pending_days for r in compiled.rules), default=0)
    if pending > 0 and last + timedelta(days=pending) > clock.now():
        return None
    if _campaigns_between(session, tenant_id, program.id, first, last):
        return None
    if engagement.list_challenges(session, tenant_id, program.id, active_only=True):
        return None
    if campaigns.list_segments(session, tenant_id, program.id):
        return None
    model = campaigns.rfm_model(session, tenant_id, program.id)
    if model is not None and model.computed_at is not None:
        return None
    if session.scalar(select(exists().where(engagement.RfmWindow.tenant_id == tenant_id,
                                            engagement.RfmWindow.program_id == program.id))):
        return None
    ladders = []
    for row in tiers.list_ladders(session, tenant_id, program.id):
        ladder = tiers.ladder_of(row)
        if ladder.rollup or ladder.required_metrics:
            return None
        ladders.append((row.id, ladder))
    units = unit_ids(session, tenant_id, program.id, compiled)
    return _Context(program, early, compiled, units, ladders)


def _campaigns_between(session: Session, tenant_id: str, program_id: str, first: datetime,
                       last: datetime) -> bool:
    """An active campaign runs at some time of [first, last]."""
    return bool(session.scalar(select(exists().where(
        campaigns.Campaign.tenant_id == tenant_id, campaigns.Campaign.program_id == program_id,
        campaigns.Campaign.status == "active", campaigns.Campaign.starts_at <= last,
        campaigns.Campaign.ends_at > first))))


def _plain(data: EventData, compiled: rules.CompiledProgram, base_currency: str) -> bool:
    """The event itself fits the bulk path (checked like the service checks it)."""
    try:
        per_event.check(data)
    except AllegianceError:
        return False
    if data.user_id or data.reporter_account_id or data.reported_by == "third_party":
        return False
    if data.account_id is None and (data.member_number is None
                                    or data.account_external_id is not None):
        return False  # matched by external id (or by a user): the service matches it
    if data.currency is not None and data.currency != base_currency:
        return False
    if data.kind == "activity":
        schema = compiled.activity_types.get(data.activity_type or "")
        if schema is None or domain.check_attributes(schema, dict(data.attributes)) is not None:
            return False
        if data.attributes.get(ACADEMY_ATTRIBUTE):
            return False
    amount = data.amount if data.amount is not None else sum(
        domain.line_amount(line) for line in data.lines)
    return amount <= MAX_AMOUNT


def _mark_bulk(session: Session, tenant_id: str, context: _Context, work: list[_Item],
               out: list[Result], actor: str) -> None:
    """Match accounts and enrolments, find replays; flag the events that take the bulk path."""
    program, compiled = context.program, context.compiled
    candidates = [i for i in work if _plain(i.data, compiled, program.base_currency)]
    numbers = sorted({i.data.member_number for i in candidates
                      if i.data.account_id is None and i.data.member_number is not None})
    ids = sorted({i.data.account_id for i in candidates if i.data.account_id is not None})
    by_number: dict[str, members.Account] = {}
    by_id: dict[str, members.Account] = {}
    for part in _chunks(numbers):
        for row in session.scalars(select(members.Account).where(
                members.Account.tenant_id == tenant_id,
                members.Account.member_number.in_(part))):
            by_number.setdefault(row.member_number, row)
    for part in _chunks(ids):
        for row in session.scalars(select(members.Account).where(
                members.Account.tenant_id == tenant_id, members.Account.id.in_(part))):
            by_id[row.id] = row
    # merged and erased accounts stay on the per-event path (which redirects or refuses them)
    matched = {a.id: a for a in [*by_number.values(), *by_id.values()]
               if not a.merged_into_id and a.status != "erased"}
    active: set[str] = set()
    for part in _chunks(sorted(matched)):
        active.update(session.scalars(select(members.Enrolment.account_id).where(
            members.Enrolment.tenant_id == tenant_id,
            members.Enrolment.program_id == program.id,
            members.Enrolment.account_id.in_(part), members.Enrolment.status == "active")))
    stored = _stored(session, tenant_id, program.id, work)
    wanted = {a.id for i in candidates
              if (i.source, i.data.external_id) not in stored
              and (a := _account_of(i.data, by_id, by_number)) is not None}
    for account_id in sorted(wanted - active):
        # the account's first valid event would enrol it (a program that enrols on the
        # first event); one that cannot be enrolled stays on the per-event path
        if matched.get(account_id) is None:
            continue
        try:
            with session.begin_nested():
                members.ensure_enrolled(session, tenant_id, program.id, account_id, actor)
        except AllegianceError:
            continue
        active.add(account_id)
    seen: set[tuple[str, str]] = set()
    plain = {id(i) for i in candidates}
    kept = []
    for item in work:
        key = (item.source, item.data.external_id)
        if key in stored:
            out[item.index] = Result(created=False, bulk=True)  # a replay: adds nothing
            continue
        kept.append(item)
        duplicate = key in seen
        seen.add(key)
        if duplicate or id(item) not in plain:
            continue
        data = item.data
        account = _account_of(data, by_id, by_number)
        if account is None or account.id not in matched or account.id not in active:
            continue
        item.account_id = account.id
        item.bulk = True
        context.accounts[account.id] = account
    work[:] = kept


def _account_of(data: EventData, by_id: Mapping[str, members.Account],
                by_number: Mapping[str, members.Account]) -> members.Account | None:
    if data.account_id is not None:
        return by_id.get(data.account_id)
    return by_number.get(data.member_number or "")


def _stored(session: Session, tenant_id: str, program_id: str,
            work: list[_Item]) -> set[tuple[str, str]]:
    keys = sorted({(i.source, i.data.external_id) for i in work if i.data.external_id})
    found: set[tuple[str, str]] = set()
    for part in _chunks(keys):
        found.update((s, e) for s, e in session.execute(select(Event.source, Event.external_id)
                     .where(Event.tenant_id == tenant_id, Event.program_id == program_id,
                            tuple_(Event.source, Event.external_id).in_(part))))
    return found


# ---------------------------------------------------------------------------------------------
# One segment


def _segment(session: Session, tenant_id: str, context: _Context, segment: list[_Item],
             out: list[Result], actor: str) -> set[str]:
    """Evaluate and write a run of bulk events; returns the members whose tier could move
    (then nothing was written)."""
    program, compiled = context.program, context.compiled
    tz = program.time_zone
    account_ids = sorted({i.account_id for i in segment if i.account_id is not None})
    now = clock.now()
    prepared = [writes.prepare(tenant_id, program, context.version.number, item.data,
                               item.source, item.at, item.account_id or "", now)
                for item in segment]
    # Locks in the per-event path's order (limit usage, then tier statuses) before the member
    # state the rules read: a concurrent event cannot move these members' tiers meanwhile.
    usage = writes.lock_usage(session, tenant_id, program.id, tz, compiled, prepared)
    if context.ladders:
        _lock_statuses(session, tenant_id, account_ids)
    enrolments = _enrolments(session, tenant_id, program.id, account_ids)
    pairs = []
    for item, event in zip(segment, prepared, strict=True):
        account = context.accounts[item.account_id or ""]
        fields = member_fields(compiled, account, enrolments[account.id], None, {}, item.at)
        fields["member.segments"] = []
        pairs.append((account.id, writes.event_input(event, tz, fields)))
    frame = rules.lines_frame(pairs, compiled.types)
    fitting_budgeted = [r for r in compiled.rules if r.budget is not None and any(
        r.triggered_by(e.event["kind"], e.event["activity_type"]) for e in prepared)]
    budget = rules.budgets_left(session, tenant_id, program.id, context.units,
                                fitting_budgeted) if fitting_budgeted else {}
    awards = rules.evaluate_frame(compiled.rules, frame, time_zone=tz, usage=usage,
                                  budget_left=budget)
    by_event = writes.awards_by_event(compiled, awards)
    by_code = {r.code: r for r in compiled.rules}
    for number, event in enumerate(prepared):
        writes.build_awards(compiled, event, by_event.get(number, []), by_code)
    moving = _tier_moves(session, tenant_id, context, prepared)
    if moving:
        return moving
    writes.write_segment(session, tenant_id, program, compiled, context.units,
                         context.ladders, prepared, actor=actor)
    for item in segment:
        out[item.index] = Result(created=True, bulk=True)
    return set()


def _enrolments(session: Session, tenant_id: str, program_id: str,
                account_ids: list[str]) -> dict[str, members.Enrolment]:
    found: dict[str, members.Enrolment] = {}
    for part in _chunks(account_ids):
        for row in session.scalars(select(members.Enrolment).where(
                members.Enrolment.tenant_id == tenant_id,
                members.Enrolment.program_id == program_id,
                members.Enrolment.account_id.in_(part),
                members.Enrolment.status == "active").execution_options(
                    populate_existing=True)):
            found[row.account_id] = row
    return found


def _lock_statuses(session: Session, tenant_id: str, account_ids: list[str]) -> None:
    """PostgreSQL: lock the members' tier statuses, in key order (SQLite has one writer)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    status = tiers.TierStatus
    for part in _chunks(account_ids):
        session.execute(select(status.account_id).where(
            status.tenant_id == tenant_id, status.account_id.in_(part))
            .order_by(status.account_id, status.ladder_id).with_for_update())


def _tier_moves(session: Session, tenant_id: str, context: _Context,
                prepared: list[writes.Prepared]) -> set[str]:
    """Members whose tier on some ladder could move with the segment's credits: their value
    bound (every stored month, positive ones, plus the segment's credits) qualifies for a
    higher level than they hold, or one of their orders reaches a direct placement."""
    if not context.ladders:
        return set()
    program_id = context.program.id
    credits: dict[tuple[str, str], int] = {}
    orders: dict[str, int] = {}
    for event in prepared:
        for metric, amount, order_amount in event.tier_credits:
            key = (event.account_id, metric)
            credits[key] = credits.get(key, 0) + amount
            if order_amount is not None:
                orders[event.account_id] = max(orders.get(event.account_id, 0), order_amount)
    accounts = sorted({a for a, _ in credits} | set(orders))
    stored: dict[tuple[str, str], int] = {}
    status: dict[tuple[str, str], tuple[int, bool]] = {}
    positive = func.sum(tiers.TierMetric.value)  # of the positive months
    for part in _chunks(accounts):
        for account, metric, total in session.execute(
                select(tiers.TierMetric.account_id, tiers.TierMetric.metric, positive)
                .where(tiers.TierMetric.tenant_id == tenant_id,
                       tiers.TierMetric.program_id == program_id,
                       tiers.TierMetric.account_id.in_(part), tiers.TierMetric.value > 0)
                .group_by(tiers.TierMetric.account_id, tiers.TierMetric.metric)):
            stored[(account, metric)] = int(total or 0)
        for account, ladder_id, rank, locked in session.execute(
                select(tiers.TierStatus.account_id, tiers.TierStatus.ladder_id,
                       tiers.TierStatus.level_rank, tiers.TierStatus.locked)
                .where(tiers.TierStatus.tenant_id == tenant_id,
                       tiers.TierStatus.account_id.in_(part))):
            status[(account, ladder_id)] = (int(rank), bool(locked))
    moving: set[str] = set()
    for account in accounts:
        for ladder_id, ladder in context.ladders:
            rank, locked = status.get((account, ladder_id), (tiers.NO_LEVEL, False))
            if locked:
                continue
            value = stored.get((account, ladder.metric), 0) + credits.get(
                (account, ladder.metric), 0)
            if tiers.qualify_rank(ladder, value) > rank or tiers.direct_placement_rank(
                    ladder, orders.get(account)) > rank:
                moving.add(account)
    return moving
