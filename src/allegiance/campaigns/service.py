"""Campaigns: time-boxed earning rules for segments. A campaign is a rule of the program's own
format (so its conditions, effects, multipliers, limits and budgets behave exactly as the
program's rules do), narrowed to its segments and its window, and added to the rules the
earning path evaluates while the campaign is active. A budget is moved to the rule's budget
account when the campaign starts and what is left goes back when it stops."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allegiance import audit, definitions, ledger, members, rules, tenants
from allegiance.campaigns import domain
from allegiance.campaigns.errors import (
    CampaignNotFound,
    DuplicateCode,
    InvalidCampaign,
    InvalidTransition,
)
from allegiance.campaigns.models import Campaign, Segment, SegmentMember
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique
from allegiance.kit.ids import new_id


def _compiled(session: Session, tenant_id: str, program_id: str,
              at: datetime) -> rules.CompiledProgram:
    version = definitions.version_at(session, tenant_id, program_id, at)
    if version is None:
        raise InvalidCampaign("the program has no definition in force: apply one first",
                              field="program_id")
    return version.compiled


def _program_rules(compiled: rules.CompiledProgram) -> list[str]:
    return [r.code for r in compiled.rules
            if not r.is_multiplier and not r.code.startswith(domain.RULE_PREFIX)
            and any(e.is_award and e.unit is not None for e in r.effects)]


def to_rule(campaign: Campaign, compiled: rules.CompiledProgram) -> rules.Rule:
    document = domain.campaign_rule(campaign.code, campaign.name, campaign.rule,
                                    campaign.segments, campaign.starts_at, campaign.ends_at,
                                    campaign.budget, _program_rules(compiled))
    try:
        return rules.parse_rule(document, "rule", types=compiled.types, lists=compiled.lists,
                                units=compiled.units, activity_types=list(compiled.activity_types))
    except rules.RuleError as exc:
        raise InvalidCampaign(exc.message, field=exc.path) from exc


def _check(session: Session, tenant_id: str, campaign: Campaign) -> rules.Rule:
    if campaign.starts_at >= campaign.ends_at:
        raise InvalidCampaign("starts_at must be before ends_at", field="ends_at")
    known = set(session.scalars(select(Segment.code).where(
        Segment.tenant_id == tenant_id, Segment.program_id == campaign.program_id)))
    for code in campaign.segments:
        if code not in known:
            raise InvalidCampaign(f"unknown segment {code}", field="segments")
    compiled = _compiled(session, tenant_id, campaign.program_id, campaign.starts_at)
    rule = to_rule(campaign, compiled)
    codes = {r.code for r in compiled.rules}
    for effect in rule.effects:
        for target in effect.applies_to:
            if target not in codes:
                raise InvalidCampaign(f"unknown rule {target}", field="rule.effects")
    if campaign.budget is not None and not any(e.unit for e in rule.effects):
        raise InvalidCampaign("a budget needs an effect that awards a unit", field="budget")
    return rule


def create_campaign(session: Session, tenant_id: str, program_id: str, *, code: str,
                    name: str, rule: dict[str, Any], starts_at: datetime, ends_at: datetime,
                    segments: Sequence[str] = (), budget: int | None = None) -> Campaign:
    tenants.get_program(session, tenant_id, program_id)
    now = clock.now()
    campaign = Campaign(tenant_id=tenant_id, id=new_id("cmp"), program_id=program_id,
                        code=code, name=name, segments=sorted(set(segments)), rule=dict(rule),
                        starts_at=starts_at, ends_at=ends_at, budget=budget, status="draft",
                        created_at=now, updated_at=now)
    _check(session, tenant_id, campaign)
    add_unique(session, campaign, DuplicateCode(f"campaign {code} exists in this program", field="code"))
    return campaign


def get_campaign(session: Session, tenant_id: str, campaign_id: str) -> Campaign:
    row = session.get(Campaign, (tenant_id, campaign_id))
    if row is None:
        raise CampaignNotFound(f"campaign {campaign_id} not found", field="campaign_id")
    return row


def list_campaigns(session: Session, tenant_id: str, program_id: str) -> list[Campaign]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(Campaign).where(
        Campaign.tenant_id == tenant_id, Campaign.program_id == program_id
    ).order_by(Campaign.starts_at, Campaign.code)))


def _budget_unit(session: Session, tenant_id: str, campaign: Campaign,
                 rule: rules.Rule) -> str:
    unit_code = next(e.unit for e in rule.effects if e.unit)
    return tenants.unit_by_code(session, tenant_id, campaign.program_id, unit_code).id


def start(session: Session, tenant_id: str, campaign_id: str, *, actor: str) -> Campaign:
    """Activate a draft campaign (it earns inside its window); funds its budget."""
    campaign = get_campaign(session, tenant_id, campaign_id)
    if campaign.status != "draft":
        raise InvalidTransition(f"the campaign is {campaign.status}", field="campaign_id")
    rule = _check(session, tenant_id, campaign)
    if campaign.budget is not None:
        rules.fund_budget(session, tenant_id, campaign.program_id,
                          _budget_unit(session, tenant_id, campaign, rule), rule,
                          version_key=campaign.id)
    campaign.status, campaign.updated_at = "active", clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="campaign.start",
                 object_type="campaign", object_id=campaign.id, after={"code": campaign.code})
    outbox.emit(session, tenant_id, "campaign.started", {
        "program_id": campaign.program_id, "campaign": campaign.code})
    return campaign


def stop(session: Session, tenant_id: str, campaign_id: str, *, actor: str) -> Campaign:
    """End an active campaign now; the budget it did not spend goes back to issued."""
    campaign = get_campaign(session, tenant_id, campaign_id)
    if campaign.status != "active":
        raise InvalidTransition(f"the campaign is {campaign.status}", field="campaign_id")
    compiled = _compiled(session, tenant_id, campaign.program_id, campaign.starts_at)
    rule = to_rule(campaign, compiled)
    if campaign.budget is not None:
        unit_id = _budget_unit(session, tenant_id, campaign, rule)
        account = rules.budget_account(session, tenant_id, campaign.program_id, unit_id,
                                       rule.code)
        left = ledger.balance_of(ledger.get_account(session, tenant_id, account.id)).available
        if left > 0:
            issued = ledger.program_account(session, tenant_id, campaign.program_id, unit_id,
                                            "issued")
            ledger.post_entry(session, tenant_id, ledger.EntryRequest(
                program_id=campaign.program_id, kind="budget", source_type="campaign",
                source_id=campaign.id, entry_key=f"campaign-stop:{campaign.id}", actor=actor,
                memo=f"unspent budget of campaign {campaign.code}",
                lines=(ledger.Line(account.id, unit_id, ledger.Side.DEBIT, left),
                       ledger.Line(issued.id, unit_id, ledger.Side.CREDIT, left))))
    campaign.status, campaign.updated_at = "stopped", clock.now()
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="campaign.stop",
                 object_type="campaign", object_id=campaign.id, after={"code": campaign.code})
    outbox.emit(session, tenant_id, "campaign.stopped", {
        "program_id": campaign.program_id, "campaign": campaign.code})
    return campaign


def with_campaigns(session: Session, tenant_id: str, program_id: str,
                   compiled: rules.CompiledProgram, at: datetime) -> rules.CompiledProgram:
    """``compiled`` plus the rules of the campaigns active at ``at`` (the earning path)."""
    active = list(session.scalars(select(Campaign).where(
        Campaign.tenant_id == tenant_id, Campaign.program_id == program_id,
        Campaign.status == "active", Campaign.starts_at <= at, Campaign.ends_at > at
    ).order_by(Campaign.code)))
    if not active:
        return compiled
    extra = tuple(to_rule(c, compiled) for c in active)
    return dataclasses.replace(compiled, rules=compiled.rules + extra)


LOOKBACK_DAYS = 30
MAX_LOOKBACK_DAYS = 366


@dataclass(frozen=True)
class RuleShare:
    rule: str
    unit: str
    points: int
    cost: Decimal  # in the program's base currency
    events: int  # events the rule earned on with the campaign


@dataclass(frozen=True)
class Projection:
    """What the campaign would have awarded the members it targets now over their events of
    ``[start, end]`` (``end`` is now): per unit, its cost in base currency, against the budget."""

    days: int
    start: datetime
    end: datetime
    events: int
    members: int
    points: dict[str, int]
    cost: Decimal
    base_currency: str
    budget: int | None
    budget_unit: str | None
    over_budget: bool
    by_rule: list[RuleShare]


@dataclass(frozen=True)
class Preview:
    campaign: Campaign
    rule: dict[str, Any]
    members: int
    by_segment: dict[str, int]
    projection: Projection


def _targets(session: Session, tenant_id: str,
             campaign: Campaign) -> dict[str, list[str]] | None:
    """Account -> the campaign's segments it is in now; None: every member (no segment)."""
    if not campaign.segments:
        return None
    out: dict[str, list[str]] = {}
    for account_id, code in session.execute(
            select(SegmentMember.account_id, Segment.code).join(
                Segment, (Segment.tenant_id == SegmentMember.tenant_id)
                & (Segment.id == SegmentMember.segment_id)).where(
                Segment.tenant_id == tenant_id, Segment.program_id == campaign.program_id,
                Segment.code.in_(campaign.segments))):
        out.setdefault(str(account_id), []).append(str(code))
    return out


def project(session: Session, tenant_id: str, campaign: Campaign, *,
            days: int = LOOKBACK_DAYS) -> Projection:
    """Dry run of the campaign's rule over the last ``days`` of its targets' processed
    purchases and activities (the definition in force now; the campaign's own window moved
    onto the look-back, its budget left out so that the projection shows what it would
    spend): the awards it adds (the difference with and without it, so multipliers count
    what they add), their cost in base currency, per rule. Writes nothing."""
    if not 1 <= days <= MAX_LOOKBACK_DAYS:
        raise InvalidCampaign(f"days must be between 1 and {MAX_LOOKBACK_DAYS}",
                              field="days")
    program = tenants.get_program(session, tenant_id, campaign.program_id)
    end = clock.now()
    start = end - timedelta(days=days)
    until = end + timedelta(microseconds=1)  # events up to now included (dated now if untimed)
    version = definitions.version_at(session, tenant_id, program.id, end) or \
        definitions.version_at(session, tenant_id, program.id, campaign.starts_at)
    if version is None:
        raise InvalidCampaign("the program has no definition in force: apply one first",
                              field="program_id")
    compiled = version.compiled
    document = domain.campaign_rule(campaign.code, campaign.name, campaign.rule,
                                    campaign.segments, start, until, None,
                                    _program_rules(compiled))
    try:
        rule = rules.parse_rule(document, "rule", types=compiled.types, lists=compiled.lists,
                                units=compiled.units,
                                activity_types=list(compiled.activity_types))
    except rules.RuleError as exc:
        raise InvalidCampaign(exc.message, field=exc.path) from exc
    # at run time: the earning path (events) imports campaigns, and simulation reads events
    from allegiance import simulation

    targets = _targets(session, tenant_id, campaign)
    result = simulation.project(session, tenant_id, program, version.document, compiled,
                                [rule], targets, start, until)
    shares = [RuleShare(str(r["rule"]), str(r["unit"]), int(r["change"]),
                        (Decimal(str(r["draft_cost"])) - Decimal(str(r["baseline_cost"])))
                        .quantize(Decimal("0.01")), int(r["draft_events"]))
              for r in result.rules if r["change"]]
    points: dict[str, int] = {}
    for share in shares:
        points[share.unit] = points.get(share.unit, 0) + share.points
    cost = (Decimal(result.draft["cost"]) - Decimal(result.baseline["cost"])).quantize(
        Decimal("0.01"))
    unit = next((e.unit for e in rule.effects if e.unit), None)
    budget = campaign.budget
    over = budget is not None and unit is not None and points.get(unit, 0) > budget
    return Projection(days, start, end, result.events, result.members, points, cost,
                      program.base_currency, budget, unit if budget is not None else None,
                      over, shares)


def preview(session: Session, tenant_id: str, campaign_id: str, *,
            days: int = LOOKBACK_DAYS) -> Preview:
    """Dry run against the segments: the rule the campaign adds, how many members it
    targets now (all active members of the program when it names no segment), and what it
    would have awarded them over the last ``days`` (``project``)."""
    campaign = get_campaign(session, tenant_id, campaign_id)
    compiled = _compiled(session, tenant_id, campaign.program_id, campaign.starts_at)
    document = domain.campaign_rule(campaign.code, campaign.name, campaign.rule,
                                    campaign.segments, campaign.starts_at, campaign.ends_at,
                                    campaign.budget, _program_rules(compiled))
    by_segment: dict[str, int] = {}
    ids = select(Segment.id).where(Segment.tenant_id == tenant_id,
                                   Segment.program_id == campaign.program_id)
    if campaign.segments:
        for code, count in session.execute(
                select(Segment.code, Segment.members).where(
                    Segment.tenant_id == tenant_id, Segment.program_id == campaign.program_id,
                    Segment.code.in_(campaign.segments))):
            by_segment[str(code)] = int(count)
        total = session.scalar(select(func.count(func.distinct(SegmentMember.account_id))).where(
            SegmentMember.tenant_id == tenant_id, SegmentMember.segment_id.in_(
                ids.where(Segment.code.in_(campaign.segments)))))
    else:
        total = session.scalar(select(func.count()).select_from(members.Enrolment).where(
            members.Enrolment.tenant_id == tenant_id,
            members.Enrolment.program_id == campaign.program_id,
            members.Enrolment.status == "active"))
    return Preview(campaign, document, int(total or 0), by_segment,
                   project(session, tenant_id, campaign, days=days))
