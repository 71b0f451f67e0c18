"""Returns, full or by line, referencing the original purchase: they reverse exactly what the
returned share earned — posted awards through ledger reversals (a wallet that already spent the
points goes to its floor and the rest becomes a visible receivable), pending awards by voiding
their hold and holding the remainder again — and lower the tier credits."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import campaigns, engagement, fx, ledger, tenants, tiers
from allegiance.events import domain
from allegiance.events import repository as repo
from allegiance.events.errors import InvalidEvent, NotReturnable, ReturnTooLarge
from allegiance.events.inputs import Outcome, compiled_at, get_event, outcome
from allegiance.events.models import Event, EventAward, EventLine
from allegiance.kit import clock, outbox
from allegiance.kit.db import is_unique_violation
from allegiance.kit.ids import new_id


@dataclass(frozen=True)
class ReturnLine:
    line_no: int
    quantity: int | None = None
    amount: int | None = None


@dataclass(frozen=True)
class ReturnData:
    external_id: str
    source: str = "api"
    original_event_id: str | None = None
    original_source: str | None = None
    original_external_id: str | None = None
    lines: tuple[ReturnLine, ...] | None = None
    amount: int | None = None
    occurred_at: datetime | None = None
    reason: str | None = None


def _original(session: Session, tenant_id: str, program_id: str, data: ReturnData) -> Event:
    if data.original_event_id is not None:
        event = get_event(session, tenant_id, data.original_event_id, lock=True)
        if event.program_id != program_id:
            raise InvalidEvent("the original event is in another program",
                               field="original_event_id")
        return event
    if data.original_external_id is None:
        raise InvalidEvent("name the original purchase: original_event_id or "
                           "original_external_id", field="original_event_id")
    found = repo.event_by_key(session, tenant_id, program_id, data.original_source or "api",
                              data.original_external_id)
    if found is None:
        raise InvalidEvent("no purchase has that external id", field="original_external_id")
    return get_event(session, tenant_id, found.id, lock=True)


def _in_base_currency(original: Event, data: ReturnData) -> ReturnData:
    """Amounts of a return of a foreign-currency purchase are in that purchase's currency:
    convert them at the purchase's own rate (half-even), so a full return takes it all."""
    if original.fx_rate is None or not original.original_currency or original.currency is None:
        return data
    source, base, rate = original.original_currency, original.currency, Decimal(original.fx_rate)

    def convert(value: int | None) -> int | None:
        return None if value is None else fx.convert(value, source, base, rate)

    lines = None if data.lines is None else tuple(
        dataclasses.replace(line, amount=convert(line.amount)) for line in data.lines)
    return dataclasses.replace(data, amount=convert(data.amount), lines=lines)


def _plan(original: Event, lines: list[EventLine], data: ReturnData) -> list[domain.LineReturn]:
    states = {line.line_no: domain.LineState(line.line_no, line.quantity, line.amount,
                                             line.returned_quantity, line.returned_amount)
              for line in lines}
    try:
        if data.lines is None:
            if data.amount is not None:
                if states:
                    raise domain.ReturnProblem("amount", "this purchase has lines: return lines")
                return []
            return [domain.plan_line_return(s, None, None, f"lines[{i}]")
                    for i, s in enumerate(states.values())
                    if s.quantity > s.returned_quantity or s.amount > s.returned_amount]
        out = []
        seen: set[int] = set()
        for index, item in enumerate(data.lines):
            path = f"lines[{index}]"
            state = states.get(item.line_no)
            if state is None:
                raise domain.ReturnProblem(f"{path}.line_no",
                                           f"the purchase has no line {item.line_no}")
            if item.line_no in seen:
                raise domain.ReturnProblem(f"{path}.line_no", "each line at most once")
            seen.add(item.line_no)
            out.append(domain.plan_line_return(state, item.quantity, item.amount, path))
        return out
    except domain.ReturnProblem as exc:
        raise ReturnTooLarge(exc.message, field=exc.field) from exc


def record_return(
    session: Session, tenant_id: str, program_id: str, data: ReturnData, *, actor: str
) -> Outcome:
    """Record a return and reverse what the returned share earned; a replay of the same
    (program, source, external id) returns the stored return (``created=False``)."""
    program = tenants.get_program(session, tenant_id, program_id)
    if not data.external_id or len(data.external_id) > 200:
        raise InvalidEvent("external_id must be 1 to 200 characters", field="external_id")
    if data.occurred_at is not None and data.occurred_at.tzinfo is None:
        raise InvalidEvent("occurred_at needs a time zone offset", field="occurred_at")
    if data.amount is not None and (isinstance(data.amount, bool) or data.amount <= 0):
        raise InvalidEvent("amount must be a positive whole number", field="amount")
    existing = repo.event_by_key(session, tenant_id, program.id, data.source, data.external_id)
    if existing is not None:
        return outcome(session, tenant_id, existing, created=False)
    original = _original(session, tenant_id, program.id, data)
    if original.kind != "purchase" or original.status != "processed":
        raise NotReturnable(f"event {original.id} is a {original.status} {original.kind}: only "
                            "processed purchases can be returned", field="original_event_id")
    requested = data.amount
    data = _in_base_currency(original, data)
    lines = repo.lines_of(session, tenant_id, original.id)
    plan = _plan(original, lines, data)
    if lines:
        taken = sum(p.amount for p in plan)
        taken_quantity = sum(p.quantity for p in plan)
    else:
        left = original.amount - original.returned_amount
        taken = left if data.amount is None else data.amount
        taken_quantity = 0
        if data.amount is not None and data.amount > left:
            raise ReturnTooLarge(f"at most {left} of the purchase can be returned",
                                 field="amount")
    if (lines and not plan) or taken <= 0:
        raise ReturnTooLarge("nothing is left to return of this purchase",
                             field="original_event_id")
    now = clock.now()
    ret = Event(
        tenant_id=tenant_id, id=new_id("evt"), program_id=program.id, kind="return",
        activity_type=None, source=data.source, external_id=data.external_id,
        reported_by="operator", reporter_account_id=None, account_id=original.account_id,
        match_key={"account_id": original.account_id}, user_id=original.user_id,
        occurred_at=data.occurred_at or now, currency=original.currency, amount=taken,
        original_currency=original.original_currency,
        original_amount=requested if original.original_currency else None,
        fx_rate=original.fx_rate, fx_date=original.fx_date,
        quantity=taken_quantity, returned_amount=0, channel=original.channel,
        attributes={"reason": data.reason} if data.reason else {}, status="processed",
        reason=None, original_event_id=original.id, version=original.version, created_at=now,
        processed_at=now,
    )
    try:
        with session.begin_nested():
            session.add(ret)
            session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        found = repo.event_by_key(session, tenant_id, program.id, data.source, data.external_id)
        if found is None:
            raise
        return outcome(session, tenant_id, found, created=False)
    by_no = {line.line_no: line for line in lines}
    compiled = compiled_at(session, tenant_id, program.id, original.occurred_at).compiled
    before = _net(original, lines, compiled.lists)
    for part in plan:
        line = by_no[part.line_no]
        line.returned_quantity += part.quantity
        line.returned_amount += part.amount
        session.add(EventLine(
            tenant_id=tenant_id, event_id=ret.id, line_no=line.line_no, sku=line.sku,
            name=line.name, category=line.category, brand=line.brand, labels=line.labels,
            quantity=max(part.quantity, 1), unit_price=line.unit_price, amount=part.amount,
            returned_quantity=0, returned_amount=0,
        ))
    original.returned_amount += taken
    points_back = _reverse(session, tenant_id, program.id, original, ret, by_no, actor=actor)
    if original.account_id is not None:
        engagement.on_return(session, tenant_id, program, before,
                             _net(original, lines, compiled.lists), return_event_id=ret.id,
                             points_back=points_back, actor=actor)
        campaigns.refresh_account(session, tenant_id, program.id, original.account_id)
    session.flush()
    return outcome(session, tenant_id, ret)


def _net(original: Event, lines: list[EventLine],
         product_lists: Mapping[str, frozenset[str]]) -> engagement.Occurrence:
    """The purchase as challenges see it, net of what was returned so far."""
    facts = tuple(engagement.LineFact(line.sku, line.category,
                                      line.quantity - line.returned_quantity,
                                      line.amount - line.returned_amount) for line in lines)
    amount = original.amount - original.returned_amount
    gone = amount <= 0 and all(f.quantity <= 0 and f.amount <= 0 for f in facts)
    assert original.account_id is not None
    return engagement.Occurrence(
        event_id=original.id, program_id=original.program_id, account_id=original.account_id,
        kind=original.kind, activity_type=original.activity_type,
        occurred_at=original.occurred_at, amount=max(amount, 0),
        quantity=max(original.quantity - sum(line.returned_quantity for line in lines), 0),
        lines=facts, product_lists=product_lists, returned=gone)


def _share(award: EventAward, original: Event, by_no: dict[int, EventLine]) -> tuple[int, int]:
    """(returned so far, total) of what an award was earned on."""
    if award.line_no is not None and award.line_no in by_no:
        line = by_no[award.line_no]
        if line.amount > 0:
            return line.returned_amount, line.amount
        return line.returned_quantity, line.quantity
    lines = list(by_no.values())
    if lines:
        done, total = (sum(x.returned_amount for x in lines), sum(x.amount for x in lines))
        if total > 0:
            return done, total
        return sum(x.returned_quantity for x in lines), sum(x.quantity for x in lines)
    return original.returned_amount, original.amount


def _reverse(
    session: Session,
    tenant_id: str,
    program_id: str,
    original: Event,
    ret: Event,
    by_no: dict[int, EventLine],
    *,
    actor: str,
) -> int:
    """Reverse the returned share of the awards; returns the points (units of kind points)
    given back."""
    awards = repo.awards_of(session, tenant_id, original.id)
    entry_lines: dict[str, dict[int, int]] = defaultdict(dict)
    reversal_rows: list[tuple[EventAward, int, tuple[str, int] | None, str | None]] = []
    points_back = 0
    kinds: dict[str, str] = {}
    for award in awards:
        if award.unit_code is None:
            continue
        done, total = _share(award, original, by_no)
        back = domain.award_reversal(award.amount, award.reversed_amount, done, total)
        if back <= 0:
            continue
        if award.unit_code not in kinds:
            kinds[award.unit_code] = tenants.unit_by_code(
                session, tenant_id, program_id, award.unit_code).kind
        if kinds[award.unit_code] == "points":
            points_back += back
        hold_id = award.hold_id
        target = _reverse_award(session, tenant_id, award, back, entry_lines, ret)
        award.reversed_amount += back
        reversal_rows.append((award, back, target, hold_id))
    for award in awards:  # tier credits: explicit ones by share, the automatic one by points
        if award.type != "tier_credit":
            continue
        if award.data.get("auto"):
            back = min(points_back, award.amount - award.reversed_amount)
        else:
            done, total = _share(award, original, by_no)
            back = domain.award_reversal(award.amount, award.reversed_amount, done, total)
        if back <= 0 or original.account_id is None:
            continue
        tiers.add_credit(session, tenant_id, program_id, original.account_id,
                         str(award.data["metric"]), -back, original.occurred_at, actor=actor)
        award.reversed_amount += back
        reversal_rows.append((award, back, None, None))
    # One reversal per award: ledger.reverse_entry splits each wallet line against the
    # wallet's available balance on its own, so two lines of one wallet in one call could
    # both count the same balance (a wallet that spent its points must go to its floor once).
    entries: dict[tuple[str, int], str] = {}
    for original_entry, wanted in sorted(entry_lines.items()):
        for debit_line in sorted(n for n in wanted if n % 2 == 1):
            result = ledger.reverse_entry(
                session, tenant_id, original_entry,
                lines={debit_line: wanted[debit_line], debit_line + 1: wanted[debit_line + 1]},
                entry_key=f"return:{ret.id}:{original_entry}:{debit_line}",
                memo=f"return {ret.source}:{ret.external_id}", actor=actor, kind="return",
                source_type="event", source_id=ret.id,
            )
            entries[(original_entry, debit_line)] = result.entry_id
    rows = []
    for number, (award, back, target, hold_id) in enumerate(reversal_rows, start=1):
        rows.append(EventAward(
            tenant_id=tenant_id, event_id=ret.id, award_no=number, rule_code=award.rule_code,
            effect=award.effect, line_no=award.line_no, type="reversal",
            unit_code=award.unit_code, amount=back, owner_type=award.owner_type,
            owner_id=award.owner_id, entry_id=entries.get(target) if target else None,
            entry_line_no=None, hold_id=hold_id if target is None else None,
            reversed_amount=0,
            data={"original_award_no": award.award_no, "reverses": award.type,
                  **({"metric": award.data["metric"]} if award.type == "tier_credit" else {})},
        ))
    session.add_all(rows)
    session.flush()
    given_back = [{"rule": a.rule_code, "unit": a.unit_code, "amount": b,
                   "owner_type": a.owner_type, "owner_id": a.owner_id}
                  for a, b, _, _ in reversal_rows if a.unit_code is not None]
    if given_back:
        outbox.emit(session, tenant_id, "points.reversed", {
            "event_id": ret.id, "original_event_id": original.id, "program_id": program_id,
            "account_id": original.account_id, "reversals": given_back,
        })
    return points_back


def _reverse_award(
    session: Session,
    tenant_id: str,
    award: EventAward,
    back: int,
    entry_lines: dict[str, dict[int, int]],
    ret: Event,
) -> tuple[str, int] | None:
    """Give back ``back`` of a unit award; returns the entry and debit line to reverse (None
    for a pending hold)."""
    if award.entry_id is not None and award.entry_line_no is not None:
        entry_lines[award.entry_id][award.entry_line_no] = back
        entry_lines[award.entry_id][award.entry_line_no + 1] = back
        return award.entry_id, award.entry_line_no
    assert award.hold_id is not None
    hold = ledger.get_hold(session, tenant_id, award.hold_id)
    if hold.state == "posted" and hold.resolved_entry_id is not None:
        entry_lines[hold.resolved_entry_id][1] = back
        entry_lines[hold.resolved_entry_id][2] = back
        return hold.resolved_entry_id, 1
    if hold.state != "pending":
        return None
    ledger.void_hold(session, tenant_id, hold.id, actor="return")
    remainder = award.amount - award.reversed_amount - back
    if remainder > 0:
        new_hold, _ = ledger.create_hold(session, tenant_id, ledger.HoldRequest(
            program_id=hold.program_id, debit_account_id=hold.debit_account_id,
            credit_account_id=hold.credit_account_id, unit_id=hold.unit_id, amount=remainder,
            kind=hold.kind, source_type=hold.source_type, source_id=hold.source_id,
            hold_key=f"{hold.hold_key or hold.id}:{ret.id}", memo=hold.memo,
            release_at=hold.release_at,
        ))
        award.hold_id = new_hold.id
    return None
