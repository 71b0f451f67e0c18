"""What a rule sees of an event: the program's compiled definition at the event's time, the
member fields, counters, and the :class:`rules.EventInput`; and the read side of an event
(lines, awards, the balances it touched)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from allegiance import definitions, ledger, members, rules, tenants
from allegiance.events import domain
from allegiance.events import repository as repo
from allegiance.events.errors import EventNotFound, NoDefinition
from allegiance.events.models import Event, EventAward, EventLine


@dataclass(frozen=True)
class EventData:
    """An event as reported (purchase or activity). Amounts are integers in minor units."""

    external_id: str
    kind: str = "purchase"
    source: str | None = None
    activity_type: str | None = None
    account_id: str | None = None
    member_number: str | None = None
    account_external_id: tuple[str, str] | None = None
    reported_by: str = "operator"
    reporter_account_id: str | None = None
    user_id: str | None = None
    occurred_at: datetime | None = None
    currency: str | None = None
    amount: int | None = None
    quantity: int | None = None
    channel: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    lines: Sequence[domain.LineIn] = ()


@dataclass
class WalletBalance:
    wallet_id: str
    unit: str
    owner_type: str
    owner_id: str
    posted: int
    pending: int
    available: int
    owed: int


@dataclass
class Outcome:
    event: Event
    lines: list[EventLine]
    awards: list[EventAward]
    balances: list[WalletBalance]
    created: bool = True
    traces: list[rules.Trace] = field(default_factory=list)


def compiled_at(
    session: Session, tenant_id: str, program_id: str, at: datetime
) -> definitions.Version:
    version = definitions.version_at(session, tenant_id, program_id, at)
    if version is None:
        raise NoDefinition("the program has no definition in force at the event's time: apply "
                           "one first", field="occurred_at")
    return version


def unit_ids(session: Session, tenant_id: str, program_id: str,
             compiled: rules.CompiledProgram) -> dict[str, str]:
    return {code: tenants.unit_by_code(session, tenant_id, program_id, code).id
            for code in compiled.units}


def member_fields(
    compiled: rules.CompiledProgram,
    account: members.Account,
    enrolment: members.Enrolment | None,
    user: members.User | None,
    counters: Mapping[str, int],
    at: datetime,
) -> dict[str, Any]:
    region = account.region
    out: dict[str, Any] = {
        "member.tier": enrolment.tier if enrolment is not None else None,
        "member.region": region,
        "member.country": region.split("-")[0] if region else None,
        "member.segments": [],
        "member.enrolled_days": (
            max(0, (at - enrolment.created_at).days)
            if enrolment is not None and enrolment.created_at.tzinfo is not None else 0
        ),
        "member.role": user.role if user is not None else None,
    }
    for name, value in (account.attributes or {}).items():
        key = f"member.attributes.{name}"
        if key in compiled.types:
            out[key] = value
    for counter in compiled.counters:
        out[f"member.counters.{counter.name}"] = counters.get(counter.name, 0)
    return out


def build_input(
    compiled: rules.CompiledProgram,
    event: Event,
    lines: Sequence[EventLine],
    time_zone: str,
    member: Mapping[str, Any],
) -> rules.EventInput:
    fields = domain.event_fields(
        kind=event.kind, activity_type=event.activity_type, at=event.occurred_at,
        time_zone=time_zone, amount=event.amount, quantity=event.quantity,
        currency=event.currency, channel=event.channel, reported_by=event.reported_by,
        external_id=event.external_id, line_count=len(lines), attributes=event.attributes or {},
        member=member,
    )
    rows = [
        domain.line_fields(
            domain.LineIn(line.sku, line.name, line.category, line.brand,
                          tuple(line.labels or ()), line.quantity, line.unit_price, line.amount),
            line.amount,
        )
        for line in lines
    ]
    return rules.EventInput(event.kind, event.activity_type, event.occurred_at, fields, rows)


@dataclass(frozen=True)
class CounterStep:
    """What an event adds to one counter: ``step``; for a ``distinct`` counter only when the
    member has not counted ``key`` yet (the caller checks and records it)."""

    name: str
    step: int
    key: str | None = None


def counter_steps(compiled: rules.CompiledProgram,
                  event_input: rules.EventInput) -> list[CounterStep]:
    """The counters the event fits (count: 1, amount: the event amount; a ``distinct`` counter
    1 with the event's value as key, nothing when the event has no value)."""
    out: list[CounterStep] = []
    for counter in compiled.counters:
        probe = rules.Rule(code=counter.name, trigger=counter.trigger, priority=0,
                           stacking="stack", condition=counter.condition, source=None,
                           effects=())
        result = rules.evaluate([probe], event_input, period_key=lambda p, at: "all")
        if not (result.traces and result.traces[0].matched):
            continue
        if counter.distinct is not None:
            key = rules.distinct_key(event_input.fields.get(counter.distinct))
            if key is not None:
                out.append(CounterStep(counter.name, 1, key))
            continue
        step = 1 if counter.measure == "count" else int(event_input.fields["event.amount"])
        if step:
            out.append(CounterStep(counter.name, step))
    return out


def balances(
    session: Session, tenant_id: str, program_id: str, owners: Sequence[tuple[str, str]]
) -> list[WalletBalance]:
    seen: list[tuple[str, str]] = []
    for owner in owners:
        if owner not in seen:
            seen.append(owner)
    rows = repo.owner_accounts(session, tenant_id, program_id, seen)
    owed: dict[tuple[str, str, str], int] = {}
    wallets = []
    for row in rows:
        account = ledger.get_account(session, tenant_id, row["id"])
        balance = ledger.balance_of(account)
        key = (row["owner_type"], row["owner_id"], row["unit_id"])
        if row["purpose"] == "receivable":
            owed[key] = account.debits_posted - account.credits_posted
        else:
            wallets.append((row, balance))
    out = []
    for row, balance in wallets:
        unit = tenants.get_unit(session, tenant_id, row["unit_id"])
        out.append(WalletBalance(
            wallet_id=row["id"], unit=unit.code, owner_type=row["owner_type"],
            owner_id=row["owner_id"], posted=balance.posted, pending=balance.pending_in,
            available=balance.available,
            owed=owed.get((row["owner_type"], row["owner_id"], row["unit_id"]), 0),
        ))
    return out


def outcome(session: Session, tenant_id: str, event: Event, *, created: bool = True,
            traces: Sequence[rules.Trace] = ()) -> Outcome:
    awards = repo.awards_of(session, tenant_id, event.id)
    owners = [(a.owner_type, a.owner_id) for a in awards
              if a.owner_type is not None and a.owner_id is not None]
    if event.account_id is not None:
        owners.insert(0, ("account", event.account_id))
    return Outcome(
        event=event, lines=repo.lines_of(session, tenant_id, event.id), awards=awards,
        balances=balances(session, tenant_id, event.program_id, owners), created=created,
        traces=list(traces),
    )


def get_event(session: Session, tenant_id: str, event_id: str, *, lock: bool = False) -> Event:
    event = repo.get_event(session, tenant_id, event_id, lock=lock)
    if event is None:
        raise EventNotFound(f"event {event_id} not found", field="event_id")
    return event
