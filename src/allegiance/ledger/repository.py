"""Every query of the ledger. Counter updates are conditional (``… WHERE available >= x``) and
taken in primary-key order, so concurrent writers can neither overdraw nor deadlock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from allegiance.kit import sequences
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
        chunk = missing[start : start + 500]
        rows = session.execute(
            select(
                LedgerAccount.id,
                LedgerAccount.program_id,
                LedgerAccount.unit_id,
                LedgerAccount.owner_type,
                LedgerAccount.owner_id,
                LedgerAccount.purpose,
                LedgerAccount.normal,
                LedgerAccount.no_overdraw,
            ).where(LedgerAccount.tenant_id == tenant_id, LedgerAccount.id.in_(chunk))
        )
        for row in rows:
            info = AccountInfo(*row)
            found[info.id] = info
            if len(_info_cache) < _INFO_CACHE_MAX:
                _info_cache[(tenant_id, info.id)] = info
    return found


def find_account(
    session: Session,
    tenant_id: str,
    program_id: str,
    unit_id: str,
    owner_type: str,
    owner_id: str,
    purpose: str,
) -> LedgerAccount | None:
    return session.scalars(
        select(LedgerAccount).where(
            LedgerAccount.tenant_id == tenant_id,
            LedgerAccount.program_id == program_id,
            LedgerAccount.unit_id == unit_id,
            LedgerAccount.owner_type == owner_type,
            LedgerAccount.owner_id == owner_id,
            LedgerAccount.purpose == purpose,
        )
    ).one_or_none()


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


_UPDATE_SQL: dict[tuple[bool, str], Any] = {}


def _update_statement(checked: bool, normal: str) -> Any:
    key = (checked, normal)
    stmt = _UPDATE_SQL.get(key)
    if stmt is None:
        sql = (
            "UPDATE ledger_account SET "
            "debits_posted = debits_posted + :dp, credits_posted = credits_posted + :cp, "
            "debits_pending = debits_pending + :dpend, credits_pending = credits_pending + :cpend, "
            "last_activity_at = COALESCE(:activity, last_activity_at) "
            "WHERE tenant_id = :t AND id = :id"
        )
        if checked and normal == "credit":
            sql += (
                " AND (credits_posted + :cp) - (debits_posted + :dp) "
                "- (debits_pending + :dpend) >= floor"
            )
        elif checked:
            sql += (
                " AND (debits_posted + :dp) - (credits_posted + :cp) "
                "- (credits_pending + :cpend) >= floor"
            )
        stmt = text(sql)
        _UPDATE_SQL[key] = stmt
    return stmt


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


def apply_deltas(
    session: Session,
    tenant_id: str,
    infos: dict[str, AccountInfo],
    deltas: dict[str, Delta],
    activity_at: datetime | None,
    *,
    unchecked: frozenset[str] = frozenset(),
) -> str | None:
    """Apply counter deltas in account-id order. Returns the id of the first account that would
    be overdrawn (and stops there; the caller rolls back), or None when all applied.

    Each account's update is conditional on its available balance staying at or above its
    floor (accounts that may not be overdrawn, when the delta lowers what is available), and
    rows are locked in account-id order (Python's code-point order), so concurrent writers can
    neither overdraw nor deadlock. The statements go through the driver: on SQLite one
    in-process statement per account; on PostgreSQL one pipelined round trip for a few
    accounts, or a sorted ``SELECT … FOR UPDATE`` and one set-based ``UPDATE`` for many.
    """
    rows: list[tuple[str, Delta, bool, datetime | None]] = []
    for account_id in sorted(deltas):
        delta = deltas[account_id]
        info = infos[account_id]
        checked = (
            info.no_overdraw
            and account_id not in unchecked
            and delta.lowers_available(info.normal)
        )
        rows.append((account_id, delta, checked, activity_at if info.is_member_wallet else None))
    if not rows:
        return None
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return _apply_postgres(session, tenant_id, rows)
    if name == "sqlite":
        return _apply_sqlite(session, tenant_id, rows)
    for account_id, delta, checked, activity in rows:  # any other database, through Core
        result = session.execute(
            _update_statement(checked, infos[account_id].normal),
            {"dp": delta.debits_posted, "cp": delta.credits_posted,
             "dpend": delta.debits_pending, "cpend": delta.credits_pending,
             "activity": activity, "t": tenant_id, "id": account_id},
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return account_id
    return None


_COUNTERS_SET = (
    "debits_posted = debits_posted + {dp}, credits_posted = credits_posted + {cp}, "
    "debits_pending = debits_pending + {dpend}, credits_pending = credits_pending + {cpend}, "
    "last_activity_at = COALESCE({act}, last_activity_at)"
)
# The available balance after the update, for either normal side, must stay >= floor.
_COUNTERS_CHECK = (
    "(CASE WHEN normal = 'credit' "
    "THEN (credits_posted + {cp}) - (debits_posted + {dp}) - (debits_pending + {dpend}) "
    "ELSE (debits_posted + {dp}) - (credits_posted + {cp}) - (credits_pending + {cpend}) END)"
    " >= floor"
)
_SQLITE_UPDATE = {
    checked: "UPDATE ledger_account SET "
    + _COUNTERS_SET.format(dp="?", cp="?", dpend="?", cpend="?", act="?")
    + " WHERE tenant_id = ? AND id = ?"
    + (" AND " + _COUNTERS_CHECK.format(dp="?", cp="?", dpend="?", cpend="?") if checked else "")
    for checked in (False, True)
}
_PG_UPDATE_ONE = (
    "UPDATE ledger_account SET "
    + _COUNTERS_SET.format(dp="%(dp)s", cp="%(cp)s", dpend="%(dpend)s", cpend="%(cpend)s",
                           act="%(act)s::timestamptz")
    + " WHERE tenant_id = %(t)s AND id = %(id)s AND (NOT %(chk)s OR "
    + _COUNTERS_CHECK.format(dp="%(dp)s", cp="%(cp)s", dpend="%(dpend)s", cpend="%(cpend)s")
    + ") RETURNING id"
)
_PG_LOCK = (
    'SELECT id FROM ledger_account WHERE tenant_id = %s AND id = ANY(%s) '
    'ORDER BY id COLLATE "C" FOR UPDATE'
)
_PG_UPDATE_MANY = (
    "UPDATE ledger_account AS a SET "
    "debits_posted = a.debits_posted + v.dp, credits_posted = a.credits_posted + v.cp, "
    "debits_pending = a.debits_pending + v.dpend, "
    "credits_pending = a.credits_pending + v.cpend, "
    "last_activity_at = COALESCE(v.act, a.last_activity_at) "
    "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
    "%s::boolean[], %s::timestamptz[]) AS v(id, dp, cp, dpend, cpend, chk, act) "
    "WHERE a.tenant_id = %s AND a.id = v.id AND (NOT v.chk OR "
    "(CASE WHEN a.normal = 'credit' "
    "THEN (a.credits_posted + v.cp) - (a.debits_posted + v.dp) - (a.debits_pending + v.dpend) "
    "ELSE (a.debits_posted + v.dp) - (a.credits_posted + v.cp) - (a.credits_pending + v.cpend) "
    "END) >= a.floor) RETURNING a.id"
)
_PG_PIPELINE_MAX = 16


def _apply_sqlite(
    session: Session, tenant_id: str, rows: list[tuple[str, Delta, bool, datetime | None]]
) -> str | None:
    # One writer at a time (BEGIN IMMEDIATE), in-process: statements are cheap. Runs of
    # accounts without an overdraw check (credits, program accounts) go as one executemany;
    # checked accounts one by one, so the first that would be overdrawn is known.
    convert = _processor(session, LedgerAccount.__table__.c.last_activity_at)
    stored: dict[int, Any] = {}  # converted once per distinct timestamp (a batch has one)
    for _, _, _, act in rows:
        if id(act) not in stored:
            stored[id(act)] = convert(act)
    with _driver(session) as conn:
        cursor = conn.cursor()
        try:
            run: list[tuple[Any, ...]] = []
            for index, (account_id, d, checked, act) in enumerate(rows):
                params: tuple[Any, ...] = (
                    d.debits_posted, d.credits_posted, d.debits_pending, d.credits_pending,
                    stored[id(act)], tenant_id, account_id,
                )
                if not checked:
                    run.append(params)
                    if index + 1 < len(rows) and not rows[index + 1][2]:
                        continue
                    cursor.executemany(_SQLITE_UPDATE[False], run)
                    if cursor.rowcount != len(run):  # an account row is missing
                        for p in run:
                            cursor.execute(
                                "SELECT 1 FROM ledger_account WHERE tenant_id = ? AND id = ?",
                                (tenant_id, p[6]),
                            )
                            if cursor.fetchone() is None:
                                return str(p[6])
                    run = []
                    continue
                params += (d.credits_posted, d.debits_posted, d.debits_pending,
                           d.debits_posted, d.credits_posted, d.credits_pending)
                cursor.execute(_SQLITE_UPDATE[True], params)
                if cursor.rowcount != 1:
                    return account_id
        finally:
            cursor.close()
    return None


def _apply_postgres(
    session: Session, tenant_id: str, rows: list[tuple[str, Delta, bool, datetime | None]]
) -> str | None:
    with _driver(session) as conn, conn.cursor() as cursor:
        if len(rows) <= _PG_PIPELINE_MAX:
            # One statement per account, in order, sent as one pipelined round trip.
            cursor.executemany(_PG_UPDATE_ONE, [
                {"dp": d.debits_posted, "cp": d.credits_posted, "dpend": d.debits_pending,
                 "cpend": d.credits_pending, "act": act, "t": tenant_id, "id": account_id,
                 "chk": checked}
                for account_id, d, checked, act in rows
            ], returning=True)
            for account_id, *_ in rows:
                if cursor.fetchone() is None:
                    return account_id
                cursor.nextset()
            return None
        ids = [r[0] for r in rows]
        cursor.execute(_PG_LOCK, (tenant_id, ids))  # lock in id order first
        cursor.execute(_PG_UPDATE_MANY, (
            ids, [r[1].debits_posted for r in rows], [r[1].credits_posted for r in rows],
            [r[1].debits_pending for r in rows], [r[1].credits_pending for r in rows],
            [r[2] for r in rows], [r[3] for r in rows], tenant_id,
        ))
        updated = {row[0] for row in cursor.fetchall()}
    for account_id in ids:
        if account_id not in updated:
            return account_id
    return None


@contextlib.contextmanager
def _driver(session: Session) -> Iterator[Any]:
    """The session's DBAPI connection (in its transaction); driver errors come out wrapped as
    SQLAlchemy's (``IntegrityError`` …), exactly as from ``session.execute``."""
    connection = session.connection()
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield connection.connection.driver_connection
    except dbapi.Error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc


_processors: dict[tuple[str, str, str], Any] = {}


def _processor(session: Session, column: Any) -> Any:
    """The bind processor SQLAlchemy would apply to values of ``column`` (identity if none)."""
    dialect = session.get_bind().dialect
    key = (dialect.name, column.table.name, column.name)
    found = _processors.get(key)
    if found is None:
        found = column.type._cached_bind_processor(dialect) or _identity
        _processors[key] = found
    return found


def _identity(value: Any) -> Any:
    return value


def write_journal(
    session: Session,
    tenant_id: str,
    sequence: str,
    last_hash: str,
    entry_rows: list[dict[str, Any]],
    posting_rows: list[dict[str, Any]],
) -> None:
    """Insert entries and their postings and store the journal's new last hash.

    SQLite: ``executemany`` through the driver. PostgreSQL: a few entries as one statement
    (one round trip), many with ``COPY``. Values are converted by the columns' SQLAlchemy
    types, so rows are stored exactly as Core would store them.
    """
    if not entry_rows:
        sequences.set_last_hash(session, tenant_id, sequence, last_hash)
        return
    name = session.get_bind().dialect.name
    entry_cols = [c for c in _entry_table.c if c.name in entry_rows[0]]
    posting_cols = [c for c in _posting_table.c if c.name in posting_rows[0]] if posting_rows else []
    entries = _tuples(session, entry_cols, entry_rows)
    postings = _tuples(session, posting_cols, posting_rows)
    entry_names = ", ".join(c.name for c in entry_cols)
    posting_names = ", ".join(c.name for c in posting_cols)
    if name == "sqlite":
        sequences.set_last_hash(session, tenant_id, sequence, last_hash)
        with _driver(session) as conn:
            conn.executemany(
                f"INSERT INTO journal_entry ({entry_names}) "
                f"VALUES ({', '.join('?' for _ in entry_cols)})", entries)
            if postings:
                conn.executemany(
                    f"INSERT INTO posting ({posting_names}) "
                    f"VALUES ({', '.join('?' for _ in posting_cols)})", postings)
        return
    if name != "postgresql":
        sequences.set_last_hash(session, tenant_id, sequence, last_hash)
        insert_entries(session, entry_rows)
        insert_postings(session, posting_rows)
        return
    with _driver(session) as conn, conn.cursor() as cursor:
        if len(entries) <= _PG_STATEMENT_MAX_ENTRIES:
            entry_marks = "(" + ", ".join("%s" for _ in entry_cols) + ")"
            sql = (
                "WITH h AS (UPDATE sequence SET last_hash = %s "
                "WHERE tenant_id = %s AND name = %s), "
                f"e AS (INSERT INTO journal_entry ({entry_names}) VALUES "
                + ", ".join(entry_marks for _ in entries) + ") "
            )
            params: list[Any] = [last_hash, tenant_id, sequence]
            params.extend(v for row in entries for v in row)
            if postings:
                posting_marks = "(" + ", ".join("%s" for _ in posting_cols) + ")"
                sql += (f"INSERT INTO posting ({posting_names}) VALUES "
                        + ", ".join(posting_marks for _ in postings))
                params.extend(v for row in postings for v in row)
            else:
                sql += "SELECT 1"
            cursor.execute(sql, params)
            return
        cursor.execute(
            "UPDATE sequence SET last_hash = %s WHERE tenant_id = %s AND name = %s",
            (last_hash, tenant_id, sequence),
        )
        with cursor.copy(f"COPY journal_entry ({entry_names}) FROM STDIN") as copy:
            for row in entries:
                copy.write_row(row)
        if postings:
            with cursor.copy(f"COPY posting ({posting_names}) FROM STDIN") as copy:
                for row in postings:
                    copy.write_row(row)


_PG_STATEMENT_MAX_ENTRIES = 50


def _tuples(session: Session, columns: list[Any], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    if not rows:
        return []
    names = [c.name for c in columns]
    out = [[row[name] for name in names] for row in rows]
    for index, column in enumerate(columns):
        convert = _processor(session, column)
        if convert is _identity:
            continue
        last_in: Any = object()
        last_out: Any = None
        for values in out:
            value = values[index]
            # Rows of a batch share their timestamps, and most have an empty ``meta``.
            if value is not last_in and not (value == {} and last_in == {}):
                last_in, last_out = value, convert(value)
            values[index] = last_out
    return [tuple(values) for values in out]


def existing_entries_by_key(
    session: Session, tenant_id: str, keys: Sequence[str]
) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    if not keys:
        return out
    name = session.get_bind().dialect.name
    if name in ("sqlite", "postgresql"):  # through the driver: this runs for every batch
        with _driver(session) as conn:
            cursor = conn.cursor()
            try:
                if name == "postgresql":
                    cursor.execute(
                        "SELECT entry_key, id, seq FROM journal_entry "
                        "WHERE tenant_id = %s AND entry_key = ANY(%s)", (tenant_id, list(keys)))
                    found = cursor.fetchall()
                else:
                    found = []
                    for start in range(0, len(keys), 500):
                        chunk = list(keys[start : start + 500])
                        cursor.execute(
                            "SELECT entry_key, id, seq FROM journal_entry WHERE tenant_id = ? "
                            f"AND entry_key IN ({', '.join('?' for _ in chunk)})",
                            [tenant_id, *chunk])
                        found.extend(cursor.fetchall())
            finally:
                cursor.close()
        for key, entry_id, seq in found:
            out[str(key)] = (str(entry_id), int(seq))
        return out
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        for key, entry_id, seq in session.execute(
            select(JournalEntry.entry_key, JournalEntry.id, JournalEntry.seq).where(
                JournalEntry.tenant_id == tenant_id, JournalEntry.entry_key.in_(chunk)
            )
        ):
            out[str(key)] = (str(entry_id), int(seq))
    return out


def insert_entries(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(_entry_table), rows)


def insert_postings(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(_posting_table), rows)


def insert_lots(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(_lot_table), rows)


def insert_lot_uses(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(_lot_use_table), rows)


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
    return {int(r[0]): int(r[1]) for r in rows}


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
