"""Read-only queries for the ledger API: listings and histories. Every query filters by tenant.

Nothing here writes; the use cases live in ``service``, ``holds`` and ``movements``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.pagination import check_limit, decode_cursor, encode_cursor
from allegiance.ledger import repository
from allegiance.ledger.models import Adjustment, JournalEntry, LedgerAccount, Posting

T = TypeVar("T")


def page_after(cursor: str | None, limit: int) -> str | None:
    """The sort key a page starts after (checks ``limit`` and the cursor)."""
    check_limit(limit)
    after = decode_cursor(cursor)
    if after is not None and "\x00" in after:
        raise ValidationFailed("cursor is not valid", field="cursor")
    return after


def next_page(rows: list[T], limit: int, key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """``rows`` fetched with ``limit + 1``: the page and the cursor of the next one."""
    if len(rows) > limit:
        return rows[:limit], encode_cursor(key(rows[limit - 1]))
    return rows, None


def unit_codes(session: Session, tenant_id: str, unit_ids: Sequence[str]) -> dict[str, str]:
    if not unit_ids:
        return {}
    rows = session.execute(
        select(tenants.Unit.id, tenants.Unit.code).where(
            tenants.Unit.tenant_id == tenant_id, tenants.Unit.id.in_(sorted(set(unit_ids)))
        )
    )
    return {str(r[0]): str(r[1]) for r in rows}


# One statement, built once: a ledger account with its unit's code (the balance read).
_ACCOUNT_WITH_CODE = (
    select(LedgerAccount, tenants.Unit.code)
    .join(tenants.Unit, and_(tenants.Unit.tenant_id == LedgerAccount.tenant_id,
                             tenants.Unit.id == LedgerAccount.unit_id))
    .where(LedgerAccount.tenant_id == bindparam("tenant_id"),
           LedgerAccount.id == bindparam("account_id"))
)


def account_with_unit_code(session: Session, tenant_id: str,
                           account_id: str) -> tuple[LedgerAccount, str] | None:
    """A ledger account of the tenant and its unit's code in one round trip (the balance read
    of ``GET /v1/wallets/{id}``), or None."""
    row = session.execute(_ACCOUNT_WITH_CODE, {"tenant_id": tenant_id,
                                               "account_id": account_id}).first()
    return None if row is None else (row[0], str(row[1]))


# The lookup of an account by its owner is the repository's.
find_account = repository.find_account


def list_accounts(
    session: Session,
    tenant_id: str,
    *,
    members: bool,
    program_id: str | None = None,
    owner_type: str | None = None,
    owner_id: str | None = None,
    program_ids: Sequence[str] = (),
    after_id: str | None = None,
    limit: int = 50,
) -> list[LedgerAccount]:
    """Member accounts (wallets, receivables) or program-side accounts, by id; ``limit + 1``
    rows so the caller can tell whether there is a next page."""
    stmt = select(LedgerAccount).where(LedgerAccount.tenant_id == tenant_id)
    if members:
        stmt = stmt.where(LedgerAccount.owner_type.in_(("account", "user")))
    else:
        stmt = stmt.where(LedgerAccount.owner_type == "program")
    if program_id is not None:
        stmt = stmt.where(LedgerAccount.program_id == program_id)
    if program_ids:
        stmt = stmt.where(LedgerAccount.program_id.in_(list(program_ids)))
    if owner_type is not None:
        stmt = stmt.where(LedgerAccount.owner_type == owner_type)
    if owner_id is not None:
        stmt = stmt.where(LedgerAccount.owner_id == owner_id)
    if after_id is not None:
        stmt = stmt.where(LedgerAccount.id > after_id)
    return list(session.scalars(stmt.order_by(LedgerAccount.id).limit(limit + 1)))


def wallet_history(
    session: Session,
    tenant_id: str,
    account_id: str,
    *,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[int, int] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The postings of one account, newest first (by journal number, then line); ``after`` is
    the (seq, line_no) of the last row of the previous page. Returns ``limit + 1`` rows."""
    stmt = (
        select(
            Posting.entry_id, JournalEntry.seq, Posting.line_no, JournalEntry.kind, Posting.side,
            Posting.amount, JournalEntry.effective_at, JournalEntry.memo,
            JournalEntry.source_type, JournalEntry.source_id, JournalEntry.reverses_entry_id,
        )
        .join(
            JournalEntry,
            and_(JournalEntry.tenant_id == Posting.tenant_id, JournalEntry.id == Posting.entry_id),
        )
        .where(Posting.tenant_id == tenant_id, Posting.account_id == account_id)
    )
    if kind is not None:
        stmt = stmt.where(JournalEntry.kind == kind)
    if since is not None:
        stmt = stmt.where(JournalEntry.effective_at >= since)
    if until is not None:
        stmt = stmt.where(JournalEntry.effective_at < until)
    if after is not None:
        seq, line_no = after
        stmt = stmt.where(
            or_(JournalEntry.seq < seq, and_(JournalEntry.seq == seq, Posting.line_no < line_no))
        )
    stmt = stmt.order_by(JournalEntry.seq.desc(), Posting.line_no.desc()).limit(limit + 1)
    keys = ("entry_id", "seq", "line_no", "kind", "side", "amount", "effective_at", "memo",
            "source_type", "source_id", "reverses_entry_id")
    out = []
    for row in session.execute(stmt):
        item = dict(zip(keys, row, strict=True))
        item["side"] = "debit" if item["side"] == "D" else "credit"
        out.append(item)
    return out


def postings_of(session: Session, tenant_id: str, entry_id: str) -> list[Posting]:
    return list(
        session.scalars(
            select(Posting)
            .where(Posting.tenant_id == tenant_id, Posting.entry_id == entry_id)
            .order_by(Posting.line_no)
        )
    )


def entry_by_key(session: Session, tenant_id: str, entry_key: str) -> JournalEntry | None:
    return session.scalars(
        select(JournalEntry).where(
            JournalEntry.tenant_id == tenant_id, JournalEntry.entry_key == entry_key
        )
    ).one_or_none()


def list_adjustments(
    session: Session,
    tenant_id: str,
    *,
    status: str | None = None,
    program_id: str | None = None,
    program_ids: Sequence[str] = (),
    after_id: str | None = None,
    limit: int = 50,
) -> list[Adjustment]:
    stmt = select(Adjustment).where(Adjustment.tenant_id == tenant_id)
    if status is not None:
        stmt = stmt.where(Adjustment.status == status)
    if program_id is not None:
        stmt = stmt.where(Adjustment.program_id == program_id)
    if program_ids:
        stmt = stmt.where(Adjustment.program_id.in_(list(program_ids)))
    if after_id is not None:
        stmt = stmt.where(Adjustment.id > after_id)
    return list(session.scalars(stmt.order_by(Adjustment.id).limit(limit + 1)))


def program_account_ids(session: Session, tenant_id: str, program_id: str) -> set[str]:
    """Every ledger account of a program (member and program side)."""
    rows = session.scalars(
        select(LedgerAccount.id).where(
            LedgerAccount.tenant_id == tenant_id, LedgerAccount.program_id == program_id
        )
    )
    return {str(r) for r in rows}
