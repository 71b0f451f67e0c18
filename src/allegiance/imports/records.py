"""Applying the records of the kinds that are not earning events: returns (through the
events service's own return path), accounts, users and catalogue items (through the members
and rewards services). Each record is looked up by its key first: a record already stored
is a replay and changes nothing, so re-importing a file adds nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import events, members, rewards, tenants
from allegiance.imports import domain
from allegiance.kit.errors import NotFound

CATALOGUE_OPTIONS = ("description", "stock", "min_balance", "eligible_regions",
                     "eligible_tiers", "eligible_segments", "limit_per_member", "limit_period",
                     "requires_approval", "code_valid_days", "visible_from", "visible_to",
                     "available_from", "available_to")


def return_data(group: domain.Group, source: str) -> events.ReturnData:
    """The :class:`events.ReturnData` of a valid group of return rows. The original purchase
    is looked up under ``original_source`` (default: the import's source)."""
    values = group.values
    lines = tuple(
        events.ReturnLine(int(row.values["line_no"]), row.values.get("line_quantity"),
                          row.values.get("line_amount"))
        for row in group.rows if "line_no" in row.values
    )
    return events.ReturnData(
        external_id=group.external_id, source=source,
        original_event_id=values.get("original_event_id"),
        original_source=values.get("original_source") or source,
        original_external_id=values.get("original_external_id"),
        lines=lines or None, amount=None if lines else values.get("amount"),
        occurred_at=values.get("occurred_at"), reason=values.get("reason"),
    )


def apply_record(session: Session, tenant_id: str, program_id: str, plan: domain.Plan,
                 group: domain.Group, *, source: str, actor: str) -> bool:
    """Store one record of ``plan.kind`` (returns, accounts, users, catalogue); True when it
    was new, False when it was already there. Errors are the services' own."""
    if plan.kind == "returns":
        outcome = events.record_return(session, tenant_id, program_id,
                                       return_data(group, source), actor=actor)
        return outcome.created
    if plan.kind == "accounts":
        return _account(session, tenant_id, program_id, plan, group, actor)
    if plan.kind == "users":
        return _user(session, tenant_id, plan, group, actor)
    if plan.kind == "catalogue":
        return _reward(session, tenant_id, program_id, group)
    raise domain.MappingInvalid(f"{plan.kind} are not records", field="kind")


def _find(session: Session, tenant_id: str, **key: Any) -> members.Account | None:
    try:
        return members.find_account(session, tenant_id, **key)
    except NotFound:
        return None


def _account(session: Session, tenant_id: str, program_id: str, plan: domain.Plan,
             group: domain.Group, actor: str) -> bool:
    values = group.values
    number = values.get("member_number")
    external = values.get("account_external_id")
    pair = None if external is None else (plan.mapping.account_source or "", str(external))
    existing = _find(session, tenant_id, member_number=number) if number is not None \
        else _find(session, tenant_id, external_id=pair)
    if existing is not None:
        return False
    parent_id = None
    parent = values.get("parent_member_number")
    if parent is not None:
        found = _find(session, tenant_id, member_number=parent)
        if found is None:
            raise domain.MappingInvalid(f"no account has member number {parent} (a parent "
                                        "must be imported before its children)",
                                        field="parent_member_number")
        parent_id = found.id
    account = members.create_account(
        session, tenant_id, name=str(values["name"]), parent_id=parent_id,
        member_number=number, region=values.get("region"), email=values.get("email"),
        tax_id=values.get("tax_id"), attributes=dict(group.rows[0].attributes),
        external_ids=None if pair is None else [pair], actor=actor,
    )
    program = tenants.get_program(session, tenant_id, program_id)
    if program.enrolment_mode != "invitation":
        members.enrol(session, tenant_id, program_id, account.id, actor=actor)
    return True


def _user(session: Session, tenant_id: str, plan: domain.Plan, group: domain.Group,
          actor: str) -> bool:
    values = group.values
    external_id = str(values["external_id"])
    taken = session.scalar(select(members.User.id).where(
        members.User.tenant_id == tenant_id, members.User.external_id == external_id))
    if taken is not None:
        return False
    account_external = values.get("account_external_id")
    account = members.find_account(
        session, tenant_id, account_id=values.get("account_id"),
        member_number=values.get("member_number"),
        external_id=None if account_external is None else (plan.mapping.account_source or "",
                                                           str(account_external)),
    )
    members.add_user(session, tenant_id, account.id, name=str(values["name"]),
                     email=values.get("email"), role=str(values["role"]),
                     external_id=external_id, actor=actor)
    return True


def _reward(session: Session, tenant_id: str, program_id: str, group: domain.Group) -> bool:
    values = group.values
    code = str(values["code"])
    exists = session.scalar(select(rewards.Reward.id).where(
        rewards.Reward.tenant_id == tenant_id, rewards.Reward.program_id == program_id,
        rewards.Reward.code == code))
    if exists is not None:
        return False
    try:
        unit = tenants.unit_by_code(session, tenant_id, program_id, str(values["unit"]))
    except NotFound:
        raise domain.MappingInvalid(f"the program has no unit {values['unit']}",
                                    field="unit") from None
    options = {name: list(values[name]) if isinstance(values[name], tuple) else values[name]
               for name in CATALOGUE_OPTIONS if name in values}
    rewards.create_reward(session, tenant_id, program_id, code=code, name=str(values["name"]),
                          kind=str(values["kind"]), unit_id=unit.id, cost=int(values["cost"]),
                          **options)
    return True
