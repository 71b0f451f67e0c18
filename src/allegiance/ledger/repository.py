"""Every query of the ledger. Counter updates are conditional (``… WHERE available >= x``) and
taken in primary-key order, so concurrent writers can neither overdraw nor deadlock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from allegiance.ledger.domain import Counters, OpenLot
from allegiance.ledger.models import (
    Adjustment,
    Hold,
    JournalEntry,
    LedgerAccount,
    Lot,
    LotUse,
    Posting,
)

# The hot write path lives in writes.py; re-exported here, where every query of the ledger is.
from allegiance.ledger.writes import account_rows as account_rows
from allegiance.ledger.writes import apply_deltas as apply_deltas
from allegiance.ledger.writes import existing_entries_by_key as existing_entries_by_key
from allegiance.ledger.writes import send_one_postgres as send_one_postgres
from allegiance.ledger.writes import write_journal as write_journal

_entry_table = JournalEntry.__table__
_posting_table = Posting.__table__
_lot_table = Lot.__table__
_lot_use_table = LotUse.__table__


@dataclass(frozen=True)
class AccountInfo:
    """The attributes of a ledger account that never change after creation."""

    id: str
    program_id: str
    unit_id: str
    owner_type: str
    owner_id: str
    purpose: str
    normal: str
    no_overdraw: bool

    @property
    def is_member_wallet(self) -> bool:
        return self.owner_type != "program" and self.purpose == "wallet"


# Process-wide cache of immutable account attributes, keyed by (tenant, id).
_info_cache: dict[tuple[str, str], AccountInfo] = {}
_INFO_CACHE_MAX = 200_000


def account_infos(session: Session, tenant_id: str, ids: Iterable[str]) -> dict[str, AccountInfo]:
    wanted = set(ids)
    found = {i: _info_cache[(tenant_id, i)] for i in wanted if (tenant_id, i) in _info_cache}
    missing = sorted(wanted - found.keys())
    for start in range(0, len(missing), 500):
        for row in account_rows(session, tenant_id, missing[start : start + 500]):
            info = AccountInfo(*row)
            found[info.id] = info
            if len(_info_cache) < _INFO_CACHE_MAX:
                _info_cache[(tenant_id, info.id)] = info
    return found


# Built once (every redemption and earning looks two accounts up): only the values change.
_FIND_ACCOUNT = select(LedgerAccount).where(
    LedgerAccount.tenant_id == bindparam("tenant_id"),
    LedgerAccount.program_id == bindparam("program_id"),
    LedgerAccount.unit_id == bindparam("unit_id"),
    LedgerAccount.owner_type == bindparam("owner_type"),
    LedgerAccount.owner_id == bindparam("owner_id"),
    LedgerAccount.purpose == bindparam("purpose"),
)


def find_account(
    session: Session,
    tenant_id: str,
    program_id: str,
    unit_id: str,
    owner_type: str,
    owner_id: str,
    purpose: str,
) -> LedgerAccount | None:
    return session.scalars(_FIND_ACCOUNT, {
        "tenant_id": tenant_id, "program_id": program_id, "unit_id": unit_id,
        "owner_type": owner_type, "owner_id": owner_id, "purpose": purpose,
    }).one_or_none()


def get_account(session: Session, tenant_id: str, account_id: str) -> LedgerAccount | None:
    return session.get(LedgerAccount, (tenant_id, account_id), populate_existing=True)


def accounts_of_owner(
    session: Session, tenant_id: str, owner_type: str, owner_ids: Sequence[str]
) -> list[LedgerAccount]:
    if not owner_ids:
        return []
    return list(
        session.scalars(
            select(LedgerAccount)
            .where(
                LedgerAccount.tenant_id == tenant_id,
                LedgerAccount.owner_type == owner_type,
                LedgerAccount.owner_id.in_(list(owner_ids)),
            )
            .order_by(LedgerAccount.id)
        )
    )


def counters(session: Session, tenant_id: str, account_id: str) -> Counters:
    row = session.execute(
        select(
            LedgerAccount.debits_posted,
            LedgerAccount.credits_posted,
            LedgerAccount.debits_pending,
            LedgerAccount.credits_pending,
        ).where(LedgerAccount.tenant_id == tenant_id, LedgerAccount.id == account_id)
    ).one()
    return Counters(*row)


def available_and_floor(session: Session, tenant_id: str, account_id: str) -> tuple[int, int]:
    row = session.execute(
        select(
            LedgerAccount.normal,
            LedgerAccount.debits_posted,
            LedgerAccount.credits_posted,
            LedgerAccount.debits_pending,
            LedgerAccount.credits_pending,
            LedgerAccount.floor,
        ).where(LedgerAccount.tenant_id == tenant_id, LedgerAccount.id == account_id)
    ).one()
    normal, dp, cp, dpend, cpend, floor = row
    available = cp - dp - dpend if normal == "credit" else dp - cp - cpend
    return int(available), int(floor)


@dataclass
class Delta:
    """What one write adds to an account's four counters."""

    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    def lowers_available(self, normal: str) -> bool:
        if normal == "credit":
            return self.debits_posted + self.debits_pending > self.credits_posted
        return self.credits_posted + self.credits_pending > self.debits_posted


def insert_entries(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(_entry_table), rows)  # type: ignore[arg-type]


def insert_postings(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(_posting_table), rows)  # type: ignore[arg-type]


def insert_lots(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(_lot_table), rows)  # type: ignore[arg-type]


def insert_lot_uses(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(_lot_use_table), rows)  # type: ignore[arg-type]


def open_lots(session: Session, tenant_id: str, account_id: str) -> list[OpenLot]:
    rows = session.execute(
        select(Lot.id, Lot.remaining, Lot.earned_at, Lot.expires_at).where(
            Lot.tenant_id == tenant_id, Lot.account_id == account_id, Lot.remaining > 0
        )
    )
    return [OpenLot(r[0], int(r[1]), r[2], r[3]) for r in rows]


def lot_dates(session: Session, tenant_id: str, lot_ids: Sequence[str]) -> dict[str, Any]:
    if not lot_ids:
        return {}
    rows = session.execute(
        select(Lot.id, Lot.earned_at, Lot.expires_at).where(
            Lot.tenant_id == tenant_id, Lot.id.in_(list(lot_ids))
        )
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def take_from_lot(session: Session, tenant_id: str, lot_id: str, amount: int) -> bool:
    result = session.execute(
        update(Lot)
        .where(Lot.tenant_id == tenant_id, Lot.id == lot_id, Lot.remaining >= amount)
        .values(remaining=Lot.remaining - amount)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def restore_lot(session: Session, tenant_id: str, lot_id: str, amount: int) -> bool:
    result = session.execute(
        update(Lot)
        .where(Lot.tenant_id == tenant_id, Lot.id == lot_id, Lot.remaining + amount <= Lot.amount)
        .values(remaining=Lot.remaining + amount)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def lot_uses_of_line(
    session: Session, tenant_id: str, entry_id: str, line_no: int
) -> list[tuple[str, int]]:
    rows = session.execute(
        select(LotUse.lot_id, LotUse.amount).where(
            LotUse.tenant_id == tenant_id,
            LotUse.entry_id == entry_id,
            LotUse.line_no == line_no,
        )
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def get_entry(session: Session, tenant_id: str, entry_id: str) -> JournalEntry | None:
    return session.get(JournalEntry, (tenant_id, entry_id))


def postings_of(session: Session, tenant_id: str, entry_ids: Sequence[str]) -> list[Posting]:
    if not entry_ids:
        return []
    return list(
        session.scalars(
            select(Posting)
            .where(Posting.tenant_id == tenant_id, Posting.entry_id.in_(list(entry_ids)))
            .order_by(Posting.entry_id, Posting.line_no)
        )
    )


def reversed_so_far(session: Session, tenant_id: str, entry_id: str) -> dict[int, int]:
    rows = session.execute(
        select(Posting.reverses_line_no, func.sum(Posting.amount))
        .join(
            JournalEntry,
            (JournalEntry.tenant_id == Posting.tenant_id) & (JournalEntry.id == Posting.entry_id),
        )
        .where(
            JournalEntry.tenant_id == tenant_id,
            JournalEntry.reverses_entry_id == entry_id,
            Posting.reverses_line_no.is_not(None),
        )
        .group_by(Posting.reverses_line_no)
    )
    return {int(r[0] or 0): int(r[1]) for r in rows}


def get_hold(session: Session, tenant_id: str, hold_id: str) -> Hold | None:
    return session.get(Hold, (tenant_id, hold_id))


def hold_by_key(session: Session, tenant_id: str, hold_key: str) -> Hold | None:
    return session.scalars(
        select(Hold).where(Hold.tenant_id == tenant_id, Hold.hold_key == hold_key)
    ).one_or_none()


def resolve_hold(
    session: Session,
    tenant_id: str,
    hold_id: str,
    state: str,
    posted_amount: int,
    at: datetime,
    entry_id: str | None,
) -> bool:
    """Move a pending hold to its final state; False when it was not pending any more."""
    result = session.execute(
        update(Hold)
        .where(Hold.tenant_id == tenant_id, Hold.id == hold_id, Hold.state == "pending")
        .values(state=state, posted_amount=posted_amount, resolved_at=at,
                resolved_entry_id=entry_id)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def expired_hold_ids(session: Session, now: datetime, limit: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(Hold.tenant_id, Hold.id)
        .where(Hold.state == "pending", Hold.expires_at.is_not(None), Hold.expires_at <= now)
        .order_by(Hold.expires_at, Hold.id)
        .limit(limit)
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def due_lots(
    session: Session, now: datetime, limit: int, tenant_id: str | None = None
) -> list[tuple[str, str, str, int]]:
    """(tenant, lot, account, remaining) of lots past their expiry with points left."""
    stmt = select(Lot.tenant_id, Lot.id, Lot.account_id, Lot.remaining).where(
        Lot.expires_at.is_not(None), Lot.expires_at <= now, Lot.remaining > 0
    )
    if tenant_id is not None:
        stmt = stmt.where(Lot.tenant_id == tenant_id)
    rows = session.execute(stmt.order_by(Lot.expires_at, Lot.id).limit(limit))
    return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]


def get_adjustment(session: Session, tenant_id: str, adjustment_id: str) -> Adjustment | None:
    return session.get(Adjustment, (tenant_id, adjustment_id))


def recompute_all(session: Session, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Materialised counters beside their recomputation from postings and pending holds."""
    tenant_filter = "WHERE a.tenant_id = :t" if tenant_id else ""
    sql = text(
        f"""
        SELECT a.tenant_id, a.id,
               a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
               COALESCE(p.d, 0), COALESCE(p.c, 0), COALESCE(hd.amt, 0), COALESCE(hc.amt, 0)
        FROM ledger_account a
        LEFT JOIN (
            SELECT tenant_id, account_id,
                   SUM(CASE WHEN side = 'D' THEN amount ELSE 0 END) AS d,
                   SUM(CASE WHEN side = 'C' THEN amount ELSE 0 END) AS c
            FROM posting GROUP BY tenant_id, account_id
        ) p ON p.tenant_id = a.tenant_id AND p.account_id = a.id
        LEFT JOIN (
            SELECT tenant_id, debit_account_id AS account_id, SUM(amount) AS amt
            FROM hold WHERE state = 'pending' GROUP BY tenant_id, debit_account_id
        ) hd ON hd.tenant_id = a.tenant_id AND hd.account_id = a.id
        LEFT JOIN (
            SELECT tenant_id, credit_account_id AS account_id, SUM(amount) AS amt
            FROM hold WHERE state = 'pending' GROUP BY tenant_id, credit_account_id
        ) hc ON hc.tenant_id = a.tenant_id AND hc.account_id = a.id
        {tenant_filter}
        ORDER BY a.tenant_id, a.id
        """
    )
    out = []
    for row in session.execute(sql, {"t": tenant_id}):
        stored = tuple(int(x) for x in row[2:6])
        computed = tuple(int(x) for x in row[6:10])
        out.append(
            {"tenant_id": row[0], "account_id": row[1], "stored": stored, "computed": computed}
        )
    return out


def lot_of_line(session: Session, tenant_id: str, entry_id: str, line_no: int) -> str | None:
    return session.scalars(
        select(Lot.id).where(
            Lot.tenant_id == tenant_id, Lot.entry_id == entry_id, Lot.line_no == line_no
        )
    ).first()


def resolve_hold_entry(session: Session, tenant_id: str, hold_id: str, entry_id: str) -> None:
    session.execute(
        update(Hold)
        .where(Hold.tenant_id == tenant_id, Hold.id == hold_id)
        .values(resolved_entry_id=entry_id)
    )


def releasable_hold_ids(session: Session, now: datetime, limit: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(Hold.tenant_id, Hold.id)
        .where(Hold.state == "pending", Hold.release_at.is_not(None), Hold.release_at <= now)
        .order_by(Hold.release_at, Hold.id)
        .limit(limit)
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def lock_entry(session: Session, tenant_id: str, entry_id: str) -> None:
    """Serialise corrections of one entry (PostgreSQL row lock; SQLite writers are serial)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT id FROM journal_entry WHERE tenant_id = :t AND id = :e FOR UPDATE"),
            {"t": tenant_id, "e": entry_id},
        )


def decide_adjustment_status(
    session: Session, tenant_id: str, adjustment_id: str, status: str, values: dict[str, Any]
) -> bool:
    """Move a pending adjustment to ``status``; False when it was decided meanwhile."""
    result = session.execute(
        update(Adjustment)
        .where(Adjustment.tenant_id == tenant_id, Adjustment.id == adjustment_id,
               Adjustment.status == "pending_approval")
        .values(status=status, **values)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
