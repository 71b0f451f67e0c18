"""Every query of the events feature. Rule usage and ledger accounts are read (never written)
through table clauses for the dry-run and for balances, which must not create rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from allegiance.events.models import Event, EventAward, EventLine, MemberCounter


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def get_event(session: Session, tenant_id: str, event_id: str, *, lock: bool = False) -> Event | None:
    stmt = select(Event).where(Event.tenant_id == tenant_id, Event.id == event_id)
    if lock:
        stmt = stmt.execution_options(populate_existing=True)
        if _pg(session):
            stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def event_by_key(
    session: Session, tenant_id: str, program_id: str, source: str, external_id: str
) -> Event | None:
    return session.scalars(
        select(Event).where(Event.tenant_id == tenant_id, Event.program_id == program_id,
                            Event.source == source, Event.external_id == external_id)
    ).one_or_none()


def lines_of(session: Session, tenant_id: str, event_id: str) -> list[EventLine]:
    return list(session.scalars(
        select(EventLine).where(EventLine.tenant_id == tenant_id, EventLine.event_id == event_id)
        .order_by(EventLine.line_no)
    ))


def awards_of(session: Session, tenant_id: str, event_id: str) -> list[EventAward]:
    return list(session.scalars(
        select(EventAward).where(EventAward.tenant_id == tenant_id,
                                 EventAward.event_id == event_id)
        .order_by(EventAward.award_no)
    ))


def list_events(
    session: Session,
    tenant_id: str,
    program_id: str,
    *,
    status: str | None,
    account_id: str | None,
    kind: str | None,
    after: str | None,
    limit: int,
) -> list[Event]:
    stmt = select(Event).where(Event.tenant_id == tenant_id, Event.program_id == program_id)
    if status is not None:
        stmt = stmt.where(Event.status == status)
    if account_id is not None:
        stmt = stmt.where(Event.account_id == account_id)
    if kind is not None:
        stmt = stmt.where(Event.kind == kind)
    if after is not None:
        stmt = stmt.where(Event.id > after)
    return list(session.scalars(stmt.order_by(Event.id).limit(limit + 1)))


def bump_counters(
    session: Session, tenant_id: str, program_id: str, account_id: str, deltas: Mapping[str, int]
) -> None:
    """Add to counters atomically (an upsert: concurrent events never lose an increment)."""
    for name in sorted(deltas):
        session.execute(
            text("INSERT INTO member_counter (tenant_id, program_id, account_id, name, value) "
                 "VALUES (:t, :p, :a, :n, :v) ON CONFLICT (tenant_id, program_id, account_id, "
                 "name) DO UPDATE SET value = member_counter.value + :v"),
            {"t": tenant_id, "p": program_id, "a": account_id, "n": name, "v": deltas[name]},
        )


def add_counter_key(
    session: Session, tenant_id: str, program_id: str, account_id: str, name: str, key: str
) -> bool:
    """Record that the member's ``distinct`` counter ``name`` counted ``key``; False when it had
    already (the unique key decides: a concurrent insert of the same key waits for the other
    transaction and, once that commits, inserts nothing)."""
    result = session.execute(
        text("INSERT INTO member_counter_key (tenant_id, program_id, account_id, name, key) "
             "VALUES (:t, :p, :a, :n, :k) ON CONFLICT DO NOTHING"),
        {"t": tenant_id, "p": program_id, "a": account_id, "n": name, "k": key},
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def has_counter_key(
    session: Session, tenant_id: str, program_id: str, account_id: str, name: str, key: str
) -> bool:
    """Whether the member's ``distinct`` counter already counted ``key`` (read only)."""
    return session.execute(
        text("SELECT 1 FROM member_counter_key WHERE tenant_id = :t AND program_id = :p AND "
             "account_id = :a AND name = :n AND key = :k"),
        {"t": tenant_id, "p": program_id, "a": account_id, "n": name, "k": key},
    ).first() is not None


def counters_of(session: Session, tenant_id: str, program_id: str, account_id: str) -> dict[str, int]:
    rows = session.execute(
        select(MemberCounter.name, MemberCounter.value).where(
            MemberCounter.tenant_id == tenant_id, MemberCounter.program_id == program_id,
            MemberCounter.account_id == account_id)
    )
    return {str(r[0]): int(r[1]) for r in rows}


def read_usage(
    session: Session, tenant_id: str, program_id: str, member_id: str,
    keys: Sequence[tuple[str, int, str]],
) -> dict[tuple[str, int, str], tuple[int, int]]:
    """Limit usage without locking or creating rows (dry-run)."""
    out: dict[tuple[str, int, str], tuple[int, int]] = {}
    for rule_code, index, key in keys:
        row = session.execute(
            text("SELECT used_amount, used_times FROM rule_usage WHERE tenant_id = :t AND "
                 "program_id = :p AND member_id = :m AND rule_code = :r AND limit_index = :i "
                 "AND period_key = :k"),
            {"t": tenant_id, "p": program_id, "m": member_id, "r": rule_code, "i": index,
             "k": key},
        ).first()
        if row is not None:
            out[(rule_code, index, key)] = (int(row[0]), int(row[1]))
    return out


def program_account_id(
    session: Session, tenant_id: str, program_id: str, unit_id: str, purpose: str
) -> str | None:
    row = session.execute(
        text("SELECT id FROM ledger_account WHERE tenant_id = :t AND program_id = :p AND "
             "unit_id = :u AND owner_type = 'program' AND owner_id = :p AND purpose = :purpose"),
        {"t": tenant_id, "p": program_id, "u": unit_id, "purpose": purpose},
    ).first()
    return None if row is None else str(row[0])


def owner_accounts(
    session: Session, tenant_id: str, program_id: str, owners: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The wallets and receivables of ``owners`` ((owner_type, owner_id)) in a program."""
    out: list[dict[str, Any]] = []
    for owner_type, owner_id in owners:
        rows = session.execute(
            text("SELECT id, unit_id, purpose FROM ledger_account WHERE tenant_id = :t AND "
                 "program_id = :p AND owner_type = :ot AND owner_id = :oi AND purpose IN "
                 "('wallet', 'receivable') ORDER BY unit_id, purpose"),
            {"t": tenant_id, "p": program_id, "ot": owner_type, "oi": owner_id},
        )
        for row in rows:
            out.append({"id": str(row[0]), "unit_id": str(row[1]), "purpose": str(row[2]),
                        "owner_type": owner_type, "owner_id": owner_id})
    return out
