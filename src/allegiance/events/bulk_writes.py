"""The rows of the bulk path (:mod:`allegiance.events.bulk`): what
:func:`allegiance.events.service.process` writes for one event — the event and its lines,
awards, one journal entry, limit usage, tier credits, leaderboard tallies, badges and the
``points.earned`` message — written for a whole segment with set-based statements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import polars as pl
from sqlalchemy import Table, case, select
from sqlalchemy.orm import Session

from allegiance import engagement, ledger, rules, tenants, tiers
from allegiance.events import domain
from allegiance.events.inputs import EventData
from allegiance.events.models import Event, EventAward, EventLine
from allegiance.kit import clock
from allegiance.kit.ids import new_id
from allegiance.kit.models import OutboxMessage
from allegiance.kit.rows import CompiledMany, RowInsert

_IN_LIMIT = 5000
TALLY_METRICS = engagement.BOARD_METRICS  # the same six


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _keys(model: Any) -> list[str]:
    return [c.key for c in _table(model).columns]


# Every statement of a segment goes through the driver with its rows converted by the
# columns' own types (``kit.rows``): SQLAlchemy's per-row parameter processing of Core
# ``executemany``s was a fifth of the bulk path's time.
_insert_events = RowInsert(_table(Event))
_insert_lines = RowInsert(_table(EventLine))
_insert_awards = RowInsert(_table(EventAward))
_insert_messages = RowInsert(_table(OutboxMessage))
_USAGE_KEY = ["tenant_id", "program_id", "member_id", "rule_code", "limit_index", "period_key"]
_create_usage = CompiledMany(
    lambda ins: ins(_table(rules.RuleUsage)).on_conflict_do_nothing(), _keys(rules.RuleUsage))


def _add_usage(ins: Any) -> Any:
    table = _table(rules.RuleUsage)
    stmt = ins(table)
    return stmt.on_conflict_do_update(
        index_elements=_USAGE_KEY,
        set_={"used_amount": table.c.used_amount + stmt.excluded.used_amount,
              "used_times": table.c.used_times + stmt.excluded.used_times})


def _add_metrics(ins: Any) -> Any:
    table = _table(tiers.TierMetric)
    stmt = ins(table)
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "program_id", "metric", "account_id", "bucket"],
        set_={"value": table.c.value + stmt.excluded.value,
              "updated_at": stmt.excluded.updated_at})


def _add_tallies(ins: Any) -> Any:
    tally = _table(engagement.Tally)
    stmt = ins(tally)
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "program_id", "day", "account_id"],
        set_={m: tally.c[m] + stmt.excluded[m] for m in TALLY_METRICS})


def _add_board_totals(ins: Any) -> Any:
    board = _table(engagement.BoardTotal)
    stmt = ins(board)
    new = stmt.excluded
    same = board.c.period_index == new.period_index
    later = new.period_index > board.c.period_index
    values: dict[str, Any] = {
        m: case((same, board.c[m] + new[m]), (later, new[m]), else_=board.c[m])
        for m in TALLY_METRICS}
    values["period_index"] = case((later, new.period_index), else_=board.c.period_index)
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "program_id", "kind", "account_id"], set_=values)


_upsert_usage = CompiledMany(_add_usage, _keys(rules.RuleUsage))
_upsert_metrics = CompiledMany(_add_metrics, _keys(tiers.TierMetric))
_create_statuses = CompiledMany(
    lambda ins: ins(_table(tiers.TierStatus)).on_conflict_do_nothing(
        index_elements=["tenant_id", "ladder_id", "account_id"]), _keys(tiers.TierStatus))
_upsert_tallies = CompiledMany(
    _add_tallies, ["tenant_id", "program_id", "day", "account_id", *TALLY_METRICS])
_upsert_board_totals = CompiledMany(
    _add_board_totals,
    ["tenant_id", "program_id", "kind", "account_id", "period_index", *TALLY_METRICS])


@dataclass
class Prepared:
    """One bulk event: its rows, what it earned, and what the earning adds elsewhere."""

    account_id: str
    event: dict[str, Any]
    lines: list[dict[str, Any]]
    line_inputs: list[dict[str, Any]]
    awards: list[dict[str, Any]] = field(default_factory=list)
    postings: list[tuple[str, str, str, int]] = field(default_factory=list)  # src, dst, unit, n
    posted_awards: list[int] = field(default_factory=list)  # positions in ``awards``
    tier_credits: list[tuple[str, int, int | None]] = field(default_factory=list)
    points: int = 0
    badges: list[str] = field(default_factory=list)
    usage: dict[tuple[str, int, str], tuple[int, int]] = field(default_factory=dict)


def prepare(tenant_id: str, program: tenants.Program, version: int, data: EventData,
            source: str, at: datetime, account_id: str, now: datetime) -> Prepared:
    """The event's rows as :func:`allegiance.events.service.prepare` builds them (an event in
    the program's currency, matched by account id or member number)."""
    amounts = [domain.line_amount(line) for line in data.lines]
    amount = data.amount if data.amount is not None else sum(amounts)
    quantity = data.quantity if data.quantity is not None else sum(
        line.quantity for line in data.lines)
    currency = data.currency or (program.base_currency if data.kind == "purchase" else None)
    key: dict[str, Any] = ({"account_id": data.account_id} if data.account_id is not None
                           else {"member_number": data.member_number})
    event_id = new_id("evt")
    event = {
        "tenant_id": tenant_id, "id": event_id, "program_id": program.id, "kind": data.kind,
        "activity_type": data.activity_type, "source": source, "external_id": data.external_id,
        "reported_by": data.reported_by, "reporter_account_id": None, "account_id": account_id,
        "match_key": key, "user_id": None, "occurred_at": at, "currency": currency,
        "amount": amount, "original_currency": None, "original_amount": None, "fx_rate": None,
        "fx_date": None, "quantity": quantity, "returned_amount": 0, "channel": data.channel,
        "attributes": dict(data.attributes), "status": "processed", "reason": None,
        "original_event_id": None, "version": version, "created_at": now, "processed_at": now,
    }
    lines = [
        {"tenant_id": tenant_id, "event_id": event_id, "line_no": number, "sku": line.sku,
         "name": line.name, "category": line.category, "brand": line.brand,
         "labels": list(line.labels), "quantity": line.quantity, "unit_price": line.unit_price,
         "amount": total, "returned_quantity": 0, "returned_amount": 0}
        for number, (line, total) in enumerate(zip(data.lines, amounts, strict=True), start=1)
    ]
    inputs = [domain.line_fields(line, total)
              for line, total in zip(data.lines, amounts, strict=True)]
    return Prepared(account_id, event, lines, inputs)


def event_input(event: Prepared, time_zone: str, member: Mapping[str, Any]) -> rules.EventInput:
    row = event.event
    fields = domain.event_fields(
        kind=row["kind"], activity_type=row["activity_type"], at=row["occurred_at"],
        time_zone=time_zone, amount=row["amount"], quantity=row["quantity"],
        currency=row["currency"], channel=row["channel"], reported_by=row["reported_by"],
        external_id=row["external_id"], line_count=len(event.lines),
        attributes=row["attributes"], member=member,
    )
    return rules.EventInput(row["kind"], row["activity_type"], row["occurred_at"], fields,
                            event.line_inputs)


def lock_usage(session: Session, tenant_id: str, program_id: str, tz: str,
               compiled: rules.CompiledProgram, prepared: Sequence[Prepared]
               ) -> dict[tuple[str, str, int, str], tuple[int, int]]:
    """The usage rows the segment's limited rules read, created where missing and locked
    until commit on PostgreSQL (as ``rules.lock_usage`` does per event), keyed as
    :func:`allegiance.rules.evaluate_frame` takes them."""
    keys: set[tuple[str, str, int, str]] = set()
    limited = [r for r in compiled.rules if r.limits]
    for event in prepared:
        row = event.event
        for rule in limited:
            if rule.triggered_by(row["kind"], row["activity_type"]) \
                    and rule.valid_at(row["occurred_at"]):
                for index, limit in enumerate(rule.limits):
                    keys.add((event.account_id, rule.code, index,
                              rules.period_key(limit.period, row["occurred_at"], tz)))
    out: dict[tuple[str, str, int, str], tuple[int, int]] = {}
    if not keys:
        return out
    table = _table(rules.RuleUsage)
    ordered = sorted(keys)  # one lock order for every writer
    _create_usage(session, [
        {"tenant_id": tenant_id, "program_id": program_id, "member_id": m, "rule_code": r,
         "limit_index": i, "period_key": k, "used_amount": 0, "used_times": 0}
        for m, r, i, k in ordered])
    members = sorted({m for m, _, _, _ in ordered})
    locking = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(members), _IN_LIMIT):
        query = (select(table.c.member_id, table.c.rule_code, table.c.limit_index,
                        table.c.period_key, table.c.used_amount, table.c.used_times)
                 .where(table.c.tenant_id == tenant_id, table.c.program_id == program_id,
                        table.c.member_id.in_(members[start:start + _IN_LIMIT]),
                        table.c.rule_code.in_([r.code for r in limited]))
                 .order_by(table.c.member_id, table.c.rule_code, table.c.limit_index,
                           table.c.period_key))
        for member, rule, index, key, amount, times in session.execute(
                query.with_for_update() if locking else query):
            if (member, rule, int(index), key) in keys:
                out[(member, rule, int(index), key)] = (int(amount), int(times))
    return out


def awards_by_event(compiled: rules.CompiledProgram,
                    awards: pl.DataFrame) -> dict[int, list[tuple[Any, ...]]]:
    """The awards frame as (rule, effect, line, type, unit, amount) per event, in the order
    the per-event evaluator gives them (rule order, effect, line)."""
    rank = {rule.code: n for n, rule in enumerate(rules.order(compiled.rules))}
    out: dict[int, list[tuple[Any, ...]]] = {}
    for event, line, rule, effect, kind, unit, amount in awards.select(
            "_event", "_line", "rule", "effect", "type", "unit", "amount").iter_rows():
        out.setdefault(event, []).append((rule, effect, line, kind, unit, amount))
    for rows in out.values():
        rows.sort(key=lambda r: (rank[r[0]], r[1], -1 if r[2] is None else r[2]))
    return out


def build_awards(compiled: rules.CompiledProgram, event: Prepared,
                 awards: Sequence[tuple[Any, ...]],
                 by_code: Mapping[str, rules.Rule] | None = None) -> None:
    """The award rows, postings, tier credits and usage of one event, as
    ``service._write_awards`` and ``service.process`` make them (account recipient, no
    pending earnings)."""
    row = event.event
    at: datetime = row["occurred_at"]
    explicit_points_credit = False
    given: dict[str, int] = {}
    by_code = by_code or {r.code: r for r in compiled.rules}
    for rule_code, effect, line, kind, unit, amount in awards:
        rule = by_code[rule_code]
        data = dict(rule.effects[effect].data) if unit is None else {}
        award = {
            "tenant_id": row["tenant_id"], "event_id": row["id"],
            "award_no": len(event.awards) + 1, "rule_code": rule_code, "effect": effect,
            "line_no": None if line is None else line + 1, "type": kind, "unit_code": unit,
            "amount": amount, "owner_type": None, "owner_id": None, "entry_id": None,
            "entry_line_no": None, "hold_id": None, "reversed_amount": 0, "data": data,
        }
        if unit is None:
            if kind == "tier_credit":
                metric = domain.TIER_METRICS[str(data.get("metric"))]
                explicit_points_credit |= metric == "points_earned"
                award["data"] = {**data, "metric": metric}
            elif kind == "badge":
                event.badges.append(str(data.get("code")))
            event.awards.append(award)
            continue
        given[rule_code] = given.get(rule_code, 0) + amount
        if rule.recipient != "account":
            award["data"] = {"note": "the event has no user: the account earns instead"}
        if compiled.units.get(unit) == "points":
            event.points += amount
        if amount <= 0:
            continue
        award["owner_type"], award["owner_id"] = "account", event.account_id
        award["entry_line_no"] = 2 * len(event.postings) + 1
        event.postings.append((rule_code, event.account_id, unit, amount))
        event.posted_awards.append(len(event.awards))
        event.awards.append(award)
    order_amount = row["amount"] if row["kind"] == "purchase" else None
    for award in event.awards:
        if award["type"] == "tier_credit":
            event.tier_credits.append((award["data"]["metric"], award["amount"], order_amount))
            order_amount = None
    if event.points > 0 and not explicit_points_credit:
        event.tier_credits.append(("points_earned", event.points, order_amount))
        event.awards.append({
            "tenant_id": row["tenant_id"], "event_id": row["id"],
            "award_no": len(event.awards) + 1, "rule_code": "", "effect": 0, "line_no": None,
            "type": "tier_credit", "unit_code": None, "amount": event.points,
            "owner_type": None, "owner_id": None, "entry_id": None, "entry_line_no": None,
            "hold_id": None, "reversed_amount": 0,
            "data": {"metric": "points_earned", "auto": True},
        })
    tz_keys = {}
    for rule in compiled.rules:
        if not rule.limits or not rule.triggered_by(row["kind"], row["activity_type"]) \
                or not rule.valid_at(at):
            continue
        for index, limit in enumerate(rule.limits):
            tz_keys[(rule.code, index, limit.period)] = given.get(rule.code, 0)
    event.usage = {key: (amount, 1 if amount > 0 else 0) for key, amount in tz_keys.items()}


def write_segment(session: Session, tenant_id: str, program: tenants.Program,
                  compiled: rules.CompiledProgram, units: Mapping[str, str],
                  ladders: Sequence[tuple[str, tiers.Ladder]],
                  prepared: Sequence[Prepared], *, actor: str) -> None:
    """Write every row of a segment's events in the caller's transaction."""
    if not prepared:
        return
    tz = program.time_zone
    # Core inserts: every row has every column, so each table is one executemany (the ORM's
    # bulk insert groups rows by which values are None, i.e. a statement per few rows)
    session.flush()  # what the ORM holds goes first, as it would before a Core statement
    _insert_events(session, [p.event for p in prepared])
    _insert_lines(session, [line for p in prepared for line in p.lines])
    _post(session, tenant_id, program.id, compiled, units, prepared, actor)
    _insert_awards(session, [a for p in prepared for a in p.awards])
    _usage(session, tenant_id, program.id, tz, prepared)
    _tier_credits(session, tenant_id, program.id, tz, ladders, prepared)
    _engagement(session, tenant_id, program, prepared, actor)
    _messages(session, tenant_id, program.id, prepared)
    session.flush()


def _post(session: Session, tenant_id: str, program_id: str, compiled: rules.CompiledProgram,
          units: Mapping[str, str], prepared: Sequence[Prepared], actor: str) -> None:
    owners = sorted({p.account_id for p in prepared if p.postings})
    unit_codes = sorted({unit for p in prepared for _, _, unit, _ in p.postings})
    wallets: dict[tuple[str, str], str] = {}
    unit_ids = [units[c] for c in unit_codes]
    for start in range(0, len(owners), _IN_LIMIT):
        part = owners[start:start + _IN_LIMIT]
        for account_id, owner_id, unit_id in session.execute(
                select(ledger.LedgerAccount.id, ledger.LedgerAccount.owner_id,
                       ledger.LedgerAccount.unit_id)
                .where(ledger.LedgerAccount.tenant_id == tenant_id,
                       ledger.LedgerAccount.program_id == program_id,
                       ledger.LedgerAccount.owner_type == "account",
                       ledger.LedgerAccount.purpose == "wallet",
                       ledger.LedgerAccount.unit_id.in_(unit_ids),
                       ledger.LedgerAccount.owner_id.in_(part))):
            wallets[(owner_id, unit_id)] = account_id
    payers: dict[tuple[str, str], str] = {}
    requests = []
    for event in prepared:
        if not event.postings:
            continue
        posting_lines = []
        for rule_code, owner, unit, amount in event.postings:
            unit_id = units[unit]
            wallet = wallets.get((owner, unit_id))
            if wallet is None:
                wallet = ledger.wallet(session, tenant_id, program_id, unit_id, "account",
                                       owner).id
                wallets[(owner, unit_id)] = wallet
            payer = payers.get((rule_code, unit_id))
            if payer is None:
                rule = compiled.rule(rule_code)
                payer = (rules.budget_account(session, tenant_id, program_id, unit_id,
                                              rule.code).id if rule.budget is not None else
                         ledger.program_account(session, tenant_id, program_id, unit_id,
                                                "issued").id)
                payers[(rule_code, unit_id)] = payer
            posting_lines.append(ledger.Line(payer, unit_id, ledger.Side.DEBIT, amount))
            posting_lines.append(ledger.Line(wallet, unit_id, ledger.Side.CREDIT, amount))
        row = event.event
        requests.append(ledger.EntryRequest(
            program_id=program_id, kind="earn", lines=tuple(posting_lines),
            source_type="event", source_id=row["id"], entry_key=f"event:{row['id']}",
            actor=actor, memo=f"{row['kind']} {row['source']}:{row['external_id']}",
        ))
    results = ledger.post_entries(session, tenant_id, requests)
    posted = iter(results)
    for event in prepared:
        if not event.postings:
            continue
        result = next(posted)
        assert isinstance(result, ledger.EntryResult)
        for position in event.posted_awards:
            event.awards[position]["entry_id"] = result.entry_id


def _usage(session: Session, tenant_id: str, program_id: str, tz: str,
           prepared: Sequence[Prepared]) -> None:
    """Limit usage: every key the event's fitting limited rules read exists (as
    ``rules.lock_usage`` creates it), and what they gave is added."""
    totals: dict[tuple[str, str, int, str], list[int]] = {}
    for event in prepared:
        at = event.event["occurred_at"]
        for (rule_code, index, period), (amount, times) in event.usage.items():
            key = (event.account_id, rule_code, index, rules.period_key(period, at, tz))
            found = totals.setdefault(key, [0, 0])
            found[0] += amount
            found[1] += times
    if not totals:
        return
    _upsert_usage(session, [
        {"tenant_id": tenant_id, "program_id": program_id, "member_id": member,
         "rule_code": rule_code, "limit_index": index, "period_key": key,
         "used_amount": amount, "used_times": times}
        for (member, rule_code, index, key), (amount, times) in sorted(totals.items())])


def _tier_credits(session: Session, tenant_id: str, program_id: str, tz: str,
                  ladders: Sequence[tuple[str, tiers.Ladder]],
                  prepared: Sequence[Prepared]) -> None:
    """Tier credits summed per account, metric and month (the last event's time as
    ``updated_at``, as one upsert per event leaves it); the status rows ``add_credit`` creates
    (with the month of the account's first credit as anchor). No tier moves: the caller made
    sure none can happen."""
    metrics: dict[tuple[str, str, int], list[Any]] = {}
    statuses: dict[tuple[str, str], datetime] = {}
    for event in prepared:
        at = event.event["occurred_at"]
        for metric, amount, _ in event.tier_credits:
            if not amount:
                continue
            key = (event.account_id, metric, tiers.month_index(at, tz))
            found = metrics.setdefault(key, [0, at])
            found[0] += amount
            found[1] = at
            for ladder_id, ladder in ladders:
                if amount > 0 and metric in ladder.metrics:
                    statuses.setdefault((event.account_id, ladder_id), at)
    if metrics:
        _upsert_metrics(session, [
            {"tenant_id": tenant_id, "program_id": program_id, "metric": metric,
             "account_id": account, "bucket": bucket, "value": value, "updated_at": at}
            for (account, metric, bucket), (value, at) in metrics.items()])
    if statuses:
        _create_statuses(session, [
            {"tenant_id": tenant_id, "ladder_id": ladder_id, "account_id": account,
             "program_id": program_id, "level_code": None, "level_rank": tiers.NO_LEVEL,
             "since": None, "locked": False, "lock_reason": None,
             "anchor_month": tiers.month_index(at, tz), "version": 0, "updated_at": at}
            for (account, ladder_id), at in statuses.items()])


def _engagement(session: Session, tenant_id: str, program: tenants.Program,
                prepared: Sequence[Prepared], actor: str) -> None:
    """Leaderboard tallies and board totals and badges, as ``engagement.on_event`` adds
    them one event at a time.

    Tallies add up, so one upsert per account and day. A board total row keeps the account's
    latest period of its kind: an event of a later period starts it afresh, one of an older
    period is ignored. Over a run of events the row therefore ends as one call with the
    run's latest period and the sum of that period's deltas would leave it — so one upsert
    per account and kind. (RFM inputs are not kept: such programs take the per-event path.)
    """
    tz = program.time_zone
    tallies: dict[tuple[str, int], dict[str, int]] = {}
    boards: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}
    for event in prepared:
        row = event.event
        if row["kind"] == "purchase":
            deltas = {"sales": row["amount"], "purchases": 1, "points": event.points}
        else:
            deltas = {"activities": 1, "points": event.points}
        day = engagement.period_index("day", row["occurred_at"], tz)
        found = tallies.setdefault((event.account_id, day), dict.fromkeys(TALLY_METRICS, 0))
        for name, value in deltas.items():
            found[name] += value
        for kind in engagement.BOARD_KINDS:
            period = engagement.period_of_day(kind, day)
            key = (event.account_id, kind)
            current = boards.get(key)
            if current is None or period > current[0]:
                boards[key] = (period, dict.fromkeys(TALLY_METRICS, 0))
                current = boards[key]
            if period == current[0]:
                for name, value in deltas.items():
                    current[1][name] += value
    if tallies:
        _upsert_tallies(session, [
            {"tenant_id": tenant_id, "program_id": program.id, "day": day,
             "account_id": account, **values}
            for (account, day), values in tallies.items()])
    if boards:
        _upsert_board_totals(session, [
            {"tenant_id": tenant_id, "program_id": program.id, "kind": kind,
             "account_id": account, "period_index": period, **sums}
            for (account, kind), (period, sums) in boards.items()])
    for event in prepared:
        for code in event.badges:
            if engagement.badges.find_badge(session, tenant_id, program.id, code) is not None:
                engagement.award_badge(session, tenant_id, program.id, event.account_id, code,
                                       source=f"event:{event.event['id']}", actor=actor)


def _messages(session: Session, tenant_id: str, program_id: str,
              prepared: Sequence[Prepared]) -> None:
    now = clock.now()
    rows = []
    for event in prepared:
        earned = [{"award_no": a["award_no"], "rule": a["rule_code"], "unit": a["unit_code"],
                   "amount": a["amount"], "owner_type": a["owner_type"],
                   "owner_id": a["owner_id"], "pending": False}
                  for a in event.awards if a["unit_code"] is not None]
        if not earned:
            continue
        row = event.event
        rows.append({"tenant_id": tenant_id, "id": new_id("msg"), "event_type": "points.earned",
                     "payload": {"event_id": row["id"], "program_id": program_id,
                                 "account_id": event.account_id,
                                 "external_id": row["external_id"], "awards": earned},
                     "created_at": now, "available_at": now, "dispatched_at": None,
                     "attempts": 0})
    _insert_messages(session, rows)
