"""The stateful side of rules: limit usage per member and period (locked, so concurrent
events can never exceed a cap) and rule budgets held as ledger accounts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.orm import Session

from allegiance import ledger
from allegiance.rules.domain import Rule
from allegiance.rules.models import RuleUsage
from allegiance.rules.periods import period_key

UsageKey = tuple[str, int, str]  # rule, limit index, period key


def usage_keys(rules: Sequence[Rule], at: datetime, time_zone: str) -> list[UsageKey]:
    return sorted(
        (rule.code, index, period_key(limit.period, at, time_zone))
        for rule in rules for index, limit in enumerate(rule.limits)
    )


def lock_usage(
    session: Session, tenant_id: str, program_id: str, member_id: str, keys: Sequence[UsageKey]
) -> dict[UsageKey, tuple[int, int]]:
    """Read (and lock until commit) the usage rows of ``keys``, creating missing ones."""
    if not keys:
        return {}
    session.execute(
        text(
            "INSERT INTO rule_usage (tenant_id, program_id, member_id, rule_code, limit_index, "
            "period_key, used_amount, used_times) VALUES (:t, :p, :m, :r, :i, :k, 0, 0) "
            "ON CONFLICT DO NOTHING"
        ),
        [{"t": tenant_id, "p": program_id, "m": member_id, "r": r, "i": i, "k": k}
         for r, i, k in keys],
    )
    condition = or_(*[
        and_(RuleUsage.rule_code == r, RuleUsage.limit_index == i, RuleUsage.period_key == k)
        for r, i, k in keys
    ])
    stmt = (
        select(RuleUsage.rule_code, RuleUsage.limit_index, RuleUsage.period_key,
               RuleUsage.used_amount, RuleUsage.used_times)
        .where(RuleUsage.tenant_id == tenant_id, RuleUsage.program_id == program_id,
               RuleUsage.member_id == member_id, condition)
        .order_by(RuleUsage.rule_code, RuleUsage.limit_index, RuleUsage.period_key)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return {(r[0], int(r[1]), r[2]): (int(r[3]), int(r[4])) for r in session.execute(stmt)}


def add_usage(
    session: Session,
    tenant_id: str,
    program_id: str,
    member_id: str,
    delta: Mapping[UsageKey, tuple[int, int]],
) -> None:
    for (rule_code, index, key), (amount, times) in sorted(delta.items()):
        if amount == 0 and times == 0:
            continue
        session.execute(
            update(RuleUsage)
            .where(RuleUsage.tenant_id == tenant_id, RuleUsage.program_id == program_id,
                   RuleUsage.member_id == member_id, RuleUsage.rule_code == rule_code,
                   RuleUsage.limit_index == index, RuleUsage.period_key == key)
            .values(used_amount=RuleUsage.used_amount + amount,
                    used_times=RuleUsage.used_times + times)
        )


def budget_account(
    session: Session, tenant_id: str, program_id: str, unit_id: str, rule_code: str
) -> ledger.LedgerAccount:
    """The ledger account a budgeted rule pays from (never overdrawn)."""
    return ledger.program_account(
        session, tenant_id, program_id, unit_id, f"budget:{rule_code}", normal="credit",
        no_overdraw=True,
    )


def budgets_left(
    session: Session, tenant_id: str, program_id: str, units: Mapping[str, str],
    rules: Sequence[Rule],
) -> dict[str, int]:
    """Available budget per budgeted rule (locked on PostgreSQL until commit).

    ``units`` maps unit codes to unit ids; a rule's budget is in the unit of its first award.
    """
    out: dict[str, int] = {}
    for rule in sorted(rules, key=lambda r: r.code):
        if rule.budget is None:
            continue
        unit_code = next((e.unit for e in rule.effects if e.unit), None)
        if unit_code is None:
            continue
        account = budget_account(session, tenant_id, program_id, units[unit_code], rule.code)
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT 1 FROM ledger_account WHERE tenant_id = :t AND id = :id FOR UPDATE"),
                {"t": tenant_id, "id": account.id},
            )
        fresh = ledger.get_account(session, tenant_id, account.id)
        out[rule.code] = ledger.balance_of(fresh).available
    return out


def fund_budget(
    session: Session, tenant_id: str, program_id: str, unit_id: str, rule: Rule, *,
    version_key: str,
) -> None:
    """Bring a rule's budget account up to ``rule.budget`` from the issued account (once per
    program version: the entry key includes ``version_key``)."""
    if rule.budget is None:
        return
    account = budget_account(session, tenant_id, program_id, unit_id, rule.code)
    current = ledger.balance_of(ledger.get_account(session, tenant_id, account.id))
    funded = current.posted + current.pending_out
    already_spent = account.debits_posted
    target = rule.budget - already_spent
    missing = target - funded
    if missing <= 0:
        return
    issued = ledger.program_account(session, tenant_id, program_id, unit_id, "issued")
    ledger.post_entry(session, tenant_id, ledger.EntryRequest(
        program_id=program_id, kind="budget", source_type="rule", source_id=rule.code,
        entry_key=f"budget:{rule.code}:{version_key}", memo=f"budget of rule {rule.code}",
        lines=(ledger.Line(issued.id, unit_id, ledger.Side.DEBIT, missing),
               ledger.Line(account.id, unit_id, ledger.Side.CREDIT, missing)),
    ))
