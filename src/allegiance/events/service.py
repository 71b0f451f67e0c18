"""Ingest purchases and activities: dedupe by (program, source, external id), match the
account (or queue the event as unmatched, never dropped; refuse it when the account was
erased), evaluate the rules in force at the
event's time under locked limits and budgets, and write the earnings: one journal entry per
event, holds for pending earnings, tier credits, badges and coupons."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import campaigns, engagement, fx, ledger, members, rules, tenants, tiers
from allegiance.events import domain
from allegiance.events import repository as repo
from allegiance.events.errors import InvalidEvent, NotEnrolled, NotUnmatched
from allegiance.events.inputs import (
    EventData,
    Outcome,
    build_input,
    compiled_at,
    counter_steps,
    get_event,
    member_fields,
    outcome,
    unit_ids,
)
from allegiance.events.models import Event, EventAward, EventLine
from allegiance.kit import clock, outbox
from allegiance.kit.db import is_unique_violation
from allegiance.kit.errors import AllegianceError, NotFound
from allegiance.kit.ids import new_id
from allegiance.kit.money import MAX_AMOUNT

UsageKey = tuple[str, int, str]


# ---------------------------------------------------------------------------------------------
# Validation and matching


def _check(data: EventData) -> None:
    if data.kind not in domain.KINDS:
        raise InvalidEvent("kind must be purchase or activity", field="kind")
    if not data.external_id or len(data.external_id) > 200:
        raise InvalidEvent("external_id must be 1 to 200 characters", field="external_id")
    if data.source is not None and not 0 < len(data.source) <= 120:
        raise InvalidEvent("source must be 1 to 120 characters", field="source")
    if data.reported_by not in domain.REPORTERS:
        raise InvalidEvent("reported_by must be member, operator or third_party",
                           field="reported_by")
    if data.reported_by == "third_party" and not data.reporter_account_id:
        raise InvalidEvent("a third-party report names its reporter", field="reporter_account_id")
    if data.kind == "activity" and not data.activity_type:
        raise InvalidEvent("an activity names its type", field="activity_type")
    if data.kind == "purchase" and data.activity_type:
        raise InvalidEvent("only activities have a type", field="activity_type")
    if data.occurred_at is not None and data.occurred_at.tzinfo is None:
        raise InvalidEvent("occurred_at needs a time zone offset", field="occurred_at")
    for name in ("amount", "quantity"):
        value = getattr(data, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= MAX_AMOUNT):
            raise InvalidEvent(f"{name} must be a whole number >= 0 (minor units)", field=name)
    for index, line in enumerate(data.lines):
        path = f"lines[{index}]"
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int) \
                or not 0 < line.quantity <= MAX_AMOUNT:
            raise InvalidEvent("quantity must be a whole number > 0", field=f"{path}.quantity")
        for name in ("unit_price", "amount"):
            value = getattr(line, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value <= MAX_AMOUNT):
                raise InvalidEvent(f"{name} must be a whole number >= 0 (minor units)",
                                   field=f"{path}.{name}")
        if domain.line_amount(line) > MAX_AMOUNT:
            raise InvalidEvent("the line amount is too large", field=f"{path}.amount")


def _match_key(data: EventData) -> dict[str, Any]:
    if data.account_id is not None:
        return {"account_id": data.account_id}
    if data.account_external_id is not None:
        return {"external_id": {"source": data.account_external_id[0],
                                "id": data.account_external_id[1]}}
    if data.member_number is not None:
        return {"member_number": data.member_number}
    return {}


def _find(session: Session, tenant_id: str, key: Mapping[str, Any]) -> members.Account | None:
    try:
        if "account_id" in key:
            return members.find_account(session, tenant_id, account_id=key["account_id"])
        if "external_id" in key:
            ext = key["external_id"]
            return members.find_account(session, tenant_id,
                                        external_id=(ext["source"], ext["id"]))
        return members.find_account(session, tenant_id, member_number=key["member_number"])
    except NotFound:
        return None


def _key_field(data: EventData) -> str:
    """The field of the event that names its account (for errors about that account)."""
    if data.account_id is not None:
        return "account_id"
    if data.account_external_id is not None:
        return "account_external_id"
    return "member_number" if data.member_number is not None else "user_id"


def user_of(session: Session, tenant_id: str, user_id: str | None) -> members.User | None:
    if user_id is None:
        return None
    try:
        return members.get_user(session, tenant_id, user_id)
    except NotFound:
        raise InvalidEvent(f"user {user_id} not found", field="user_id") from None


def _enrol(session: Session, tenant_id: str, program_id: str, account_id: str,
           actor: str, leaver_enrolment_id: str | None = None) -> members.Enrolment:
    if leaver_enrolment_id is not None:
        # a leaver's answer to the leavers' survey: recorded against the closed enrolment
        closed = members.get_enrolment(session, tenant_id, leaver_enrolment_id)
        if (closed.account_id, closed.program_id, closed.status) == (
                account_id, program_id, "closed"):
            return closed
    try:
        return members.ensure_enrolled(session, tenant_id, program_id, account_id, actor)
    except AllegianceError as exc:
        if exc.code != "not_enrolled":
            raise
        raise NotEnrolled(exc.message, field="account_id") from exc


# ---------------------------------------------------------------------------------------------
# Ingest


def _source(data: EventData) -> str:
    if data.source:
        return data.source
    return f"reseller:{data.reporter_account_id}" if data.reported_by == "third_party" else "api"


# For the bulk path (events.bulk): the same checks and source as here.
check = _check
source_of = _source


@dataclass
class Draft:
    """A checked event not yet stored: the rows to write and the account it matched."""

    event: Event
    lines: list[EventLine]
    account: members.Account | None
    compiled: rules.CompiledProgram


def prepare(session: Session, tenant_id: str, program: tenants.Program,
            data: EventData) -> Draft:
    """Check an event against the definition in force at its time and match its account;
    writes nothing."""
    _check(data)
    at = data.occurred_at or clock.now()
    version = compiled_at(session, tenant_id, program.id, at)
    compiled = version.compiled
    attributes = dict(data.attributes)
    if data.kind == "activity":
        assert data.activity_type is not None
        schema = compiled.activity_types.get(data.activity_type)
        if schema is None:
            known = ", ".join(sorted(compiled.activity_types)) or "none"
            raise InvalidEvent(f"unknown activity type (known: {known})", field="activity_type")
        problem = domain.check_attributes(schema, attributes)
        if problem is not None:
            raise InvalidEvent(problem[1], field=problem[0])
    if data.reporter_account_id is not None and _find(
            session, tenant_id, {"account_id": data.reporter_account_id}) is None:
        raise InvalidEvent(f"account {data.reporter_account_id} not found",
                           field="reporter_account_id")
    user = user_of(session, tenant_id, data.user_id)
    key = _match_key(data)
    if not key:
        if user is None:
            raise InvalidEvent("give account_id, account_external_id, member_number or user_id",
                               field="account_id")
        key = {"account_id": user.account_id}
    account = _find(session, tenant_id, key)
    if account is not None:
        # an erased member earns nothing: the event is refused (nothing written), not queued
        # as unmatched (the account is known); its returns still work (events.returns)
        members.refuse_erased(account, _key_field(data))
    line_amounts = [domain.line_amount(line) for line in data.lines]
    amount = data.amount if data.amount is not None else sum(line_amounts)
    if amount > MAX_AMOUNT:
        raise InvalidEvent("the event amount is too large", field="amount")
    currency = data.currency or (program.base_currency if data.kind == "purchase" else None)
    conversion = _conversion(session, tenant_id, program, currency, at)
    original_amount = amount
    unit_prices = [line.unit_price for line in data.lines]
    if conversion is not None:
        # Each line converted on its own (half-even); the event is the sum of its lines.
        line_amounts = [conversion.apply(a) for a in line_amounts]
        unit_prices = [None if p is None else conversion.apply(p) for p in unit_prices]
        amount = conversion.apply(amount) if data.amount is not None else sum(line_amounts)
        currency = program.base_currency
        if amount > MAX_AMOUNT:
            raise InvalidEvent("the event amount is too large", field="amount")
    quantity = data.quantity if data.quantity is not None else sum(
        line.quantity for line in data.lines)
    event = Event(
        tenant_id=tenant_id, id=new_id("evt"), program_id=program.id, kind=data.kind,
        activity_type=data.activity_type, source=_source(data), external_id=data.external_id,
        reported_by=data.reported_by, reporter_account_id=data.reporter_account_id,
        account_id=None, match_key=key, user_id=data.user_id, occurred_at=at,
        currency=currency, amount=amount,
        original_currency=conversion.currency if conversion else None,
        original_amount=original_amount if conversion else None,
        fx_rate=conversion.rate if conversion else None,
        fx_date=conversion.day if conversion else None, quantity=quantity, returned_amount=0, channel=data.channel,
        attributes=attributes, status="unmatched",
        reason=None if account else "no account matches " + _describe(key),
        original_event_id=None, version=version.number, created_at=clock.now(),
        processed_at=None,
    )
    lines = [
        EventLine(
            tenant_id=tenant_id, event_id=event.id, line_no=index, sku=line.sku,
            name=line.name, category=line.category, brand=line.brand,
            labels=list(line.labels), quantity=line.quantity, unit_price=unit_price,
            amount=line_total, returned_quantity=0, returned_amount=0,
        )
        for index, (line, line_total, unit_price) in enumerate(
            zip(data.lines, line_amounts, unit_prices, strict=True), start=1)
    ]
    return Draft(event, lines, account, compiled)


def _conversion(session: Session, tenant_id: str, program: tenants.Program,
                currency: str | None, at: datetime) -> fx.Conversion | None:
    """The conversion of an event in another currency than the program's, at the rate of its
    day in the program's time zone (None when no conversion is needed)."""
    if currency is None or currency == program.base_currency:
        return None
    day = at.astimezone(ZoneInfo(program.time_zone)).date()
    return fx.conversion(session, tenant_id, program.base_currency, currency, day)


def ingest(
    session: Session, tenant_id: str, program_id: str, data: EventData, *, actor: str,
    leaver_enrolment_id: str | None = None,
) -> Outcome:
    """Record a purchase or an activity and earn what the rules say; a replay of the same
    (program, source, external id) returns the stored event (``created=False``).
    ``leaver_enrolment_id`` (the leavers' survey only) lets an activity of an account whose
    enrolment in the program is closed be recorded and evaluated against that enrolment."""
    program = tenants.get_program(session, tenant_id, program_id)
    if data.external_id:
        existing = repo.event_by_key(session, tenant_id, program.id, _source(data),
                                     data.external_id)
        if existing is not None:
            return outcome(session, tenant_id, existing, created=False)
    draft = prepare(session, tenant_id, program, data)
    event, account = draft.event, draft.account
    if account is not None:
        _enrol(session, tenant_id, program.id, account.id, actor, leaver_enrolment_id)
    try:
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError as exc:  # the same event, recorded concurrently
        if not is_unique_violation(exc):
            raise
        found = repo.event_by_key(session, tenant_id, program.id, event.source,
                                  event.external_id)
        if found is None:
            raise
        return outcome(session, tenant_id, found, created=False)
    session.add_all(draft.lines)
    session.flush()
    traces: list[rules.Trace] = []
    if account is not None:
        traces = process(session, tenant_id, program, event, account, actor=actor,
                         leaver_enrolment_id=leaver_enrolment_id)
    return outcome(session, tenant_id, event, traces=traces)


def _describe(key: Mapping[str, Any]) -> str:
    if "external_id" in key:
        return f"external id {key['external_id']['source']}:{key['external_id']['id']}"
    name, value = next(iter(key.items()))
    return f"{name} {value}"


def match(
    session: Session, tenant_id: str, event_id: str, account_id: str, *, actor: str
) -> Outcome:
    """Resolve an unmatched event to an account and earn what it would have earned."""
    event = get_event(session, tenant_id, event_id, lock=True)
    if event.status != "unmatched":
        raise NotUnmatched(f"event {event_id} is {event.status}, not unmatched",
                           field="event_id")
    account = _find(session, tenant_id, {"account_id": account_id})
    if account is None:
        raise InvalidEvent(f"account {account_id} not found", field="account_id")
    members.refuse_erased(account, "account_id")
    program = tenants.get_program(session, tenant_id, event.program_id)
    _enrol(session, tenant_id, program.id, account.id, actor)
    traces = process(session, tenant_id, program, event, account, actor=actor)
    return outcome(session, tenant_id, event, traces=traces)


# ---------------------------------------------------------------------------------------------
# Earning


def _lock_limits(
    session: Session, tenant_id: str, program_id: str, account_id: str, keys: list[UsageKey]
) -> dict[UsageKey, tuple[int, int]]:
    return rules.lock_usage(session, tenant_id, program_id, account_id, keys)


def _lock_budgets(
    session: Session, tenant_id: str, program_id: str, units: Mapping[str, str],
    budgeted: list[rules.Rule],
) -> dict[str, int]:
    return rules.budgets_left(session, tenant_id, program_id, units, budgeted)


def _pay_from(session: Session, tenant_id: str, program_id: str, unit_id: str,
              rule: rules.Rule) -> str:
    """The account an award is debited from: the rule's budget, else the unit's issued."""
    if rule.budget is not None:
        return rules.budget_account(session, tenant_id, program_id, unit_id, rule.code).id
    return ledger.program_account(session, tenant_id, program_id, unit_id, "issued").id


# Seams for the positive controls of the reliability tests (T5p): a broken variant replaces
# them with unlocked reads. Production code never changes them.
lock_limits: Callable[..., dict[UsageKey, tuple[int, int]]] = _lock_limits
lock_budgets: Callable[..., dict[str, int]] = _lock_budgets
pay_from: Callable[..., str] = _pay_from


def process(
    session: Session,
    tenant_id: str,
    program: tenants.Program,
    event: Event,
    account: members.Account,
    *,
    actor: str,
    leaver_enrolment_id: str | None = None,
) -> list[rules.Trace]:
    """Evaluate and write the earnings of a matched event; returns the rule traces."""
    version = compiled_at(session, tenant_id, program.id, event.occurred_at)
    # the program's rules and those of the campaigns running at the event's time
    compiled = campaigns.with_campaigns(session, tenant_id, program.id, version.compiled,
                                        event.occurred_at)
    tz = program.time_zone
    enrolment = _enrol(session, tenant_id, program.id, account.id, actor, leaver_enrolment_id)
    user = user_of(session, tenant_id, event.user_id)
    lines = repo.lines_of(session, tenant_id, event.id)
    segments = campaigns.segment_codes(session, tenant_id, program.id, account.id)

    def member(counters: Mapping[str, int]) -> dict[str, Any]:
        fields = member_fields(compiled, account, enrolment, user, counters, event.occurred_at)
        fields["member.segments"] = segments
        return fields

    base = build_input(compiled, event, lines, tz, member({}))
    deltas: dict[str, int] = {}
    for step in counter_steps(compiled, base):
        if step.key is None or repo.add_counter_key(session, tenant_id, program.id, account.id,
                                                    step.name, step.key):
            deltas[step.name] = deltas.get(step.name, 0) + step.step
    if deltas:
        repo.bump_counters(session, tenant_id, program.id, account.id, deltas)
    counters = repo.counters_of(session, tenant_id, program.id, account.id)
    event_input = build_input(compiled, event, lines, tz, member(counters))
    at = event.occurred_at
    fitting = [r for r in compiled.rules
               if r.triggered_by(event.kind, event.activity_type) and r.valid_at(at)]
    units = unit_ids(session, tenant_id, program.id, compiled)
    usage = lock_limits(session, tenant_id, program.id, account.id,
                        rules.usage_keys([r for r in fitting if r.limits], at, tz))
    budget = lock_budgets(session, tenant_id, program.id, units,
                          [r for r in fitting if r.budget is not None])
    result = rules.evaluate(compiled.rules, event_input,
                            period_key=lambda period, when: rules.period_key(period, when, tz),
                            usage=usage, budget_left=budget)
    rules.add_usage(session, tenant_id, program.id, account.id, result.usage)
    traces = list(result.traces)
    points = _write_awards(session, tenant_id, program, event, account.id, compiled, units,
                           result, traces, actor=actor)
    engagement.on_event(session, tenant_id, program, engagement.Occurrence(
        event_id=event.id, program_id=program.id, account_id=account.id, kind=event.kind,
        activity_type=event.activity_type, occurred_at=event.occurred_at, amount=event.amount,
        quantity=event.quantity, product_lists=compiled.lists, points=points,
        badges=tuple(str(a.data.get("code")) for a in result.awards if a.type == "badge"),
        attributes=dict(event.attributes or {}), user_id=event.user_id,
        lines=tuple(engagement.LineFact(line.sku, line.category, line.quantity, line.amount)
                    for line in lines)), actor=actor)
    campaigns.refresh_account(session, tenant_id, program.id, account.id)
    event.account_id = account.id
    event.status = "processed"
    event.reason = None
    event.version = version.number
    event.processed_at = clock.now()
    session.flush()
    return traces


def _write_awards(
    session: Session,
    tenant_id: str,
    program: tenants.Program,
    event: Event,
    account_id: str,
    compiled: rules.CompiledProgram,
    units: Mapping[str, str],
    result: rules.Evaluation,
    traces: list[rules.Trace],
    *,
    actor: str,
) -> int:
    """Write the awards; returns the points (units of kind points) earned, pending included."""
    rows: list[EventAward] = []
    lines: list[ledger.Line] = []
    posted_rows: list[EventAward] = []
    points = 0
    explicit_points_credit = False
    now = clock.now()

    def row(award: rules.Award, **kw: Any) -> EventAward:
        item = EventAward(
            tenant_id=tenant_id, event_id=event.id, award_no=len(rows) + 1,
            rule_code=award.rule, effect=award.effect,
            line_no=None if award.line is None else award.line + 1, type=award.type,
            unit_code=award.unit, reversed_amount=0,
            **{"amount": award.amount, "owner_type": None, "owner_id": None,
               "data": dict(award.data), **kw},
        )
        rows.append(item)
        return item

    for award in result.awards:
        if award.unit is None:
            if award.type == "tier_credit":
                metric = domain.TIER_METRICS[str(award.data.get("metric"))]
                explicit_points_credit |= metric == "points_earned"
                row(award, data={**award.data, "metric": metric})
            else:
                row(award)
            continue
        rule = compiled.rule(award.rule)
        shares = _shares(rule, award.amount, account_id, event.user_id)
        extra: dict[str, Any] = {}
        if rule.recipient != "account" and event.user_id is None:
            note = "the event has no user: the account earns instead"
            traces.append(rules.Trace(rule.code, True, note))
            extra = {"data": {**award.data, "note": note}}
        unit_id = units[award.unit]
        if compiled.units.get(award.unit) == "points":
            points += award.amount
        for owner_type, owner_id, amount in shares:
            if amount <= 0:
                continue
            item = row(award, amount=amount, owner_type=owner_type, owner_id=owner_id,
                       **extra)
            source = pay_from(session, tenant_id, program.id, unit_id, rule)
            wallet = ledger.wallet(session, tenant_id, program.id, unit_id, owner_type, owner_id)
            release = event.occurred_at + timedelta(days=rule.pending_days)
            if rule.pending_days > 0 and release > now:
                hold, _ = ledger.create_hold(session, tenant_id, ledger.HoldRequest(
                    program_id=program.id, debit_account_id=source, credit_account_id=wallet.id,
                    unit_id=unit_id, amount=amount, kind="earn", source_type="event",
                    source_id=event.id, hold_key=f"event:{event.id}:{item.award_no}",
                    memo=f"{rule.code}: pending until {release.date().isoformat()}",
                    release_at=release,
                ))
                item.hold_id = hold.id
                continue
            item.entry_line_no = len(lines) + 1
            lines.append(ledger.Line(source, unit_id, ledger.Side.DEBIT, amount))
            lines.append(ledger.Line(wallet.id, unit_id, ledger.Side.CREDIT, amount))
            posted_rows.append(item)
    if lines:
        entry = ledger.post_entry(session, tenant_id, ledger.EntryRequest(
            program_id=program.id, kind="earn", lines=tuple(lines), source_type="event",
            source_id=event.id, entry_key=f"event:{event.id}", actor=actor,
            memo=f"{event.kind} {event.source}:{event.external_id}",
        ))
        for item in posted_rows:
            item.entry_id = entry.entry_id
    order_amount = event.amount if event.kind == "purchase" else None
    for item in rows:
        if item.type == "tier_credit":
            tiers.add_credit(session, tenant_id, program.id, account_id, item.data["metric"],
                             item.amount, event.occurred_at, order_amount=order_amount,
                             actor=actor)
            order_amount = None
    if points > 0 and not explicit_points_credit:
        tiers.add_credit(session, tenant_id, program.id, account_id, "points_earned", points,
                         event.occurred_at, order_amount=order_amount, actor=actor)
        rows.append(EventAward(
            tenant_id=tenant_id, event_id=event.id, award_no=len(rows) + 1, rule_code="",
            effect=0, line_no=None, type="tier_credit", unit_code=None, amount=points,
            owner_type=None, owner_id=None, reversed_amount=0,
            data={"metric": "points_earned", "auto": True},
        ))
    session.add_all(rows)
    session.flush()
    earned = [{"award_no": r.award_no, "rule": r.rule_code, "unit": r.unit_code,
               "amount": r.amount, "owner_type": r.owner_type, "owner_id": r.owner_id,
               "pending": r.hold_id is not None}
              for r in rows if r.unit_code is not None]
    if earned:
        outbox.emit(session, tenant_id, "points.earned", {
            "event_id": event.id, "program_id": program.id, "account_id": account_id,
            "external_id": event.external_id, "awards": earned,
        })
    return points


def _shares(rule: rules.Rule, amount: int, account_id: str,
            user_id: str | None) -> list[tuple[str, str, int]]:
    if rule.recipient == "account" or user_id is None:
        return [("account", account_id, amount)]
    if rule.recipient == "user":
        return [("user", user_id, amount)]
    mine, theirs = domain.split(amount, rule.split_account_percent)
    return [("account", account_id, mine), ("user", user_id, theirs)]

