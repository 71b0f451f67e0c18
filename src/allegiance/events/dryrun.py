"""Dry-run: the awards an event would earn now and why each rule matched or not. Same
definition (with the running campaigns), member fields and segments, counters, limits and
budgets as a real event; no locks, no writes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from allegiance import campaigns, ledger, members, rules, tenants
from allegiance.events import repository as repo
from allegiance.events.inputs import EventData, build_input, counter_steps, member_fields, unit_ids
from allegiance.events.service import prepare, user_of


@dataclass
class DryRun:
    version: int | None
    account_id: str | None
    matched: bool
    awards: list[rules.Award]
    traces: list[rules.Trace]


def dry_run(session: Session, tenant_id: str, program_id: str, data: EventData) -> DryRun:
    program = tenants.get_program(session, tenant_id, program_id)
    draft = prepare(session, tenant_id, program, data)
    event, account = draft.event, draft.account
    tz = program.time_zone
    at = event.occurred_at
    compiled = campaigns.with_campaigns(session, tenant_id, program.id, draft.compiled, at)
    user = user_of(session, tenant_id, event.user_id)
    enrolment = None
    counters: dict[str, int] = {}
    usage: dict[tuple[str, int, str], tuple[int, int]] = {}
    fitting = [r for r in compiled.rules
               if r.triggered_by(event.kind, event.activity_type) and r.valid_at(at)]
    if account is not None:
        found = members.list_enrolments(session, tenant_id, program_id=program.id,
                                        account_id=account.id, limit=1).items
        enrolment = found[0] if found else None
        counters = repo.counters_of(session, tenant_id, program.id, account.id)
        base = build_input(compiled, event, draft.lines, tz,
                           member_fields(compiled, account, enrolment, user, counters, at))
        for step in counter_steps(compiled, base):
            if step.key is None or not repo.has_counter_key(
                    session, tenant_id, program.id, account.id, step.name, step.key):
                counters[step.name] = counters.get(step.name, 0) + step.step
        usage = repo.read_usage(session, tenant_id, program.id, account.id,
                                rules.usage_keys([r for r in fitting if r.limits], at, tz))
        member = member_fields(compiled, account, enrolment, user, counters, at)
        member["member.segments"] = campaigns.segment_codes(session, tenant_id, program.id,
                                                            account.id)
    else:
        member = {}
    units = unit_ids(session, tenant_id, program.id, compiled)
    budget: dict[str, int] = {}
    for rule in fitting:
        unit_code = next((e.unit for e in rule.effects if e.unit), None)
        if rule.budget is None or unit_code is None:
            continue
        account_id = repo.program_account_id(session, tenant_id, program.id, units[unit_code],
                                             f"budget:{rule.code}")
        budget[rule.code] = (
            rule.budget if account_id is None
            else ledger.balance_of(ledger.get_account(session, tenant_id, account_id)).available
        )
    event_input = build_input(compiled, event, draft.lines, tz, member)
    result = rules.evaluate(compiled.rules, event_input,
                            period_key=lambda period, when: rules.period_key(period, when, tz),
                            usage=usage, budget_left=budget)
    traces = list(result.traces)
    for code in sorted({a.rule for a in result.awards if a.unit is not None}):
        if compiled.rule(code).recipient != "account" and event.user_id is None:
            traces.append(rules.Trace(code, True,
                                      "the event has no user: the account earns instead"))
    if account is None:
        traces.insert(0, rules.Trace("", False, event.reason or "no account matches"))
    return DryRun(event.version, account.id if account else None, account is not None,
                  result.awards, traces)
