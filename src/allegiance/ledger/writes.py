"""The ledger's hot write path, through the database driver (part of the repository, which
re-exports these functions).

Per entry the service checks business keys, applies counter deltas and writes the journal.
SQLAlchemy's per-statement overhead (compiling, per-row parameter processing) costs more than
the database does here, so these statements go to the session's DBAPI connection, inside the
session's transaction, with values converted by the columns' own SQLAlchemy types (so rows are
stored exactly as Core stores them) and driver errors wrapped as SQLAlchemy's
(``IntegrityError`` …). Counter updates keep their conditions and their lock order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from allegiance.kit import sequences
from allegiance.kit.db import driver_connection as _driver
from allegiance.kit.rows import DriverStatement
from allegiance.ledger.models import JournalEntry, LedgerAccount, Posting

if TYPE_CHECKING:
    from allegiance.ledger.repository import AccountInfo, Delta

_entry_table = JournalEntry.__table__
_posting_table = Posting.__table__


def account_rows(session: Session, tenant_id: str, ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """(id, program_id, unit_id, owner_type, owner_id, purpose, normal, no_overdraw) of
    the given ledger accounts (at most a few hundred ids)."""
    if not ids:
        return []
    sqlite = session.get_bind().dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    sql = ("SELECT id, program_id, unit_id, owner_type, owner_id, purpose, normal, no_overdraw "
           f"FROM ledger_account WHERE tenant_id = {mark} AND id IN "
           f"({', '.join(mark for _ in ids)})")
    with _driver(session) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(sql, (tenant_id, *ids))
            rows = cursor.fetchall()
        finally:
            cursor.close()
    return [(*row[:7], bool(row[7])) for row in rows]


def apply_deltas(
    session: Session,
    tenant_id: str,
    infos: dict[str, AccountInfo],
    deltas: dict[str, Delta],
    activity_at: datetime | None,
    *,
    unchecked: frozenset[str] = frozenset(),
) -> str | None:
    """Apply counter deltas in lock order (:func:`lock_order`). Returns the id of the first
    account that would be overdrawn (and stops there; the caller rolls back), or None when all
    applied.

    Each account's update is conditional on its available balance staying at or above its
    floor (accounts that may not be overdrawn, when the delta lowers what is available), and
    rows are locked in one order every writer keeps, so concurrent writers can neither
    overdraw nor deadlock. The statements go through the driver: on SQLite one
    in-process statement per account; on PostgreSQL one pipelined round trip for a few
    accounts, or a sorted ``SELECT … FOR UPDATE`` and one set-based ``UPDATE`` for many.
    """
    rows: list[tuple[str, Delta, bool, datetime | None]] = []
    for account_id in sorted(deltas, key=lambda a: lock_order(a, infos[a])):
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
    raise NotImplementedError(f"the ledger runs on SQLite or PostgreSQL, not {name}")


def lock_order(account_id: str, info: AccountInfo) -> tuple[bool, str]:
    """Where an account's row comes in every writer's lock order: member accounts first,
    program accounts last (a program's ``issued`` or ``redeemed`` account is locked by every
    posting of the program, so it is held for the shortest time), each group by id in
    code-point order (PostgreSQL: ``COLLATE "C"``). ``ledger_post_one`` (migration
    ``0034_posthot``) and :data:`_PG_LOCK` sort the same way."""
    return (info.owner_type == "program", account_id)


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
    'SELECT id FROM ledger_account WHERE tenant_id = %s AND id = ANY(%b) '
    'ORDER BY owner_type = \'program\', id COLLATE "C" FOR UPDATE'
)
_PG_UPDATE_MANY = (
    "UPDATE ledger_account AS a SET "
    "debits_posted = a.debits_posted + v.dp, credits_posted = a.credits_posted + v.cp, "
    "debits_pending = a.debits_pending + v.dpend, "
    "credits_pending = a.credits_pending + v.cpend, "
    "last_activity_at = COALESCE(v.act, a.last_activity_at) "
    "FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[], "
    "%b::boolean[], %s::timestamptz[]) AS v(id, dp, cp, dpend, cpend, chk, act) "
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
        cursor.execute(_PG_LOCK, (tenant_id, ids))  # lock in lock order first
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


ENTRY_COLUMNS = ("tenant_id", "id", "seq", "program_id", "kind", "source_type", "source_id",
                 "entry_key", "reverses_entry_id", "hold_id", "memo", "meta", "actor",
                 "effective_at", "created_at", "hash")
POSTING_COLUMNS = ("tenant_id", "entry_id", "line_no", "account_id", "unit_id", "side",
                   "amount", "reverses_line_no")
# Each column's type as PostgreSQL's arrays carry it (the tables' own types: text for the
# varchar ids, json for meta, timestamptz for the UTC times).
_ENTRY_TYPES = ("text", "text", "bigint", "text", "text", "text", "text", "text", "text",
                "text", "text", "json", "text", "timestamptz", "timestamptz", "text")
_POSTING_TYPES = ("text", "text", "bigint", "text", "text", "text", "bigint", "bigint")
_ENTRY_NAMES = ", ".join(ENTRY_COLUMNS)
_POSTING_NAMES = ", ".join(POSTING_COLUMNS)
# The entry columns whose values SQLAlchemy's types convert (JSON, UTC timestamps).
_CONVERTED = [(ENTRY_COLUMNS.index(name), _entry_table.c[name])
              for name in ("meta", "effective_at", "created_at")]


def write_journal(
    session: Session,
    tenant_id: str,
    sequence: str,
    last_hash: str,
    entry_rows: list[tuple[Any, ...]],
    posting_rows: list[tuple[Any, ...]],
) -> None:
    """Insert entries (tuples in :data:`ENTRY_COLUMNS` order) and their postings (in
    :data:`POSTING_COLUMNS` order) and store the journal's new last hash.

    SQLite: ``executemany`` through the driver. PostgreSQL: a few entries as one statement
    (one round trip), many as one ``INSERT … SELECT FROM unnest(column arrays)`` per table.
    Values are converted by the columns' SQLAlchemy types, so rows are stored exactly as Core
    would store them.
    """
    if not entry_rows:
        sequences.set_last_hash(session, tenant_id, sequence, last_hash)
        return
    name = session.get_bind().dialect.name
    entries = _convert(session, entry_rows)
    postings = posting_rows
    if name == "sqlite":
        sequences.set_last_hash(session, tenant_id, sequence, last_hash)
        with _driver(session) as conn:
            conn.executemany(
                f"INSERT INTO journal_entry ({_ENTRY_NAMES}) "
                f"VALUES ({', '.join('?' for _ in ENTRY_COLUMNS)})", entries)
            if postings:
                conn.executemany(
                    f"INSERT INTO posting ({_POSTING_NAMES}) "
                    f"VALUES ({', '.join('?' for _ in POSTING_COLUMNS)})", postings)
        return
    if name != "postgresql":
        raise NotImplementedError(f"the ledger runs on SQLite or PostgreSQL, not {name}")
    with _driver(session) as conn, conn.cursor() as cursor:
        if len(entries) <= _PG_STATEMENT_MAX_ENTRIES:
            entry_marks = "(" + ", ".join("%s" for _ in ENTRY_COLUMNS) + ")"
            sql = (
                "WITH h AS (UPDATE sequence SET last_hash = %s "
                "WHERE tenant_id = %s AND name = %s), "
                f"e AS (INSERT INTO journal_entry ({_ENTRY_NAMES}) VALUES "
                + ", ".join(entry_marks for _ in entries) + ") "
            )
            params: list[Any] = [last_hash, tenant_id, sequence]
            params.extend(v for row in entries for v in row)
            if postings:
                posting_marks = "(" + ", ".join("%s" for _ in POSTING_COLUMNS) + ")"
                sql += (f"INSERT INTO posting ({_POSTING_NAMES}) VALUES "
                        + ", ".join(posting_marks for _ in postings))
                params.extend(v for row in postings for v in row)
            else:
                sql += "SELECT 1"
            cursor.execute(sql, params)
            return
        # Many entries: one INSERT per table whose rows come from arrays, one per column
        # (``unnest``): one statement to parse, plan and answer instead of one per row, and a
        # few arrays to send instead of thousands of bound messages. Not COPY, which
        # PostgreSQL refuses on tables under row-level security, as the application role's are.
        cursor.execute(
            "UPDATE sequence SET last_hash = %s WHERE tenant_id = %s AND name = %s",
            (last_hash, tenant_id, sequence),
        )
        _insert_unnest(cursor, "journal_entry", ENTRY_COLUMNS, _ENTRY_TYPES, entries)
        _insert_unnest(cursor, "posting", POSTING_COLUMNS, _POSTING_TYPES, postings)


def _insert_unnest(cursor: Any, table: str, columns: Sequence[str], types: Sequence[str],
                   rows: list[tuple[Any, ...]]) -> None:
    """INSERT ``rows`` as ``INSERT … SELECT … FROM unnest(arrays)``: one array per column, in
    binary format (``%b``: psycopg's text format quotes every element through a regular
    expression, about 4× the Python time). A column whose value every row shares (the
    tenant, the batch's time, a NULL memo …) goes as that one value instead of an array:
    most of a batch's columns are such, and each array element costs Python time to dump."""
    if not rows:
        return
    shared: list[bool] = []
    params: list[Any] = []
    for column in zip(*rows, strict=True):
        first = column[0]
        same = column.count(first) == len(column)
        shared.append(same)
        params.append(first if same else list(column))
    key = (table, tuple(shared))
    sql = _UNNEST_SQL.get(key)
    if sql is None:
        arrays = [f"%b::{kind}[]" for kind, same in zip(types, shared, strict=True) if not same]
        values, k = [], 0
        for kind, same in zip(types, shared, strict=True):
            if same:
                values.append(f"%s::{kind}")
            else:
                values.append(f"u.c{k}")
                k += 1
        names = ", ".join(f"c{i}" for i in range(k))
        source = f" FROM unnest({', '.join(arrays)}) AS u({names})" if arrays else ""
        sql = _UNNEST_SQL[key] = (f"INSERT INTO {table} ({', '.join(columns)}) "
                                  f"SELECT {', '.join(values)}{source}")
    # psycopg binds in the order of the marks: scalars and arrays as they appear in SELECT,
    # then the arrays of FROM; reorder the parameters to match.
    scalars_then = [p for p, same in zip(params, shared, strict=True) if same]
    arrays_then = [p for p, same in zip(params, shared, strict=True) if not same]
    cursor.execute(sql, [*scalars_then, *arrays_then])


_UNNEST_SQL: dict[tuple[str, tuple[bool, ...]], str] = {}
_PG_STATEMENT_MAX_ENTRIES = 50


def _convert(session: Session, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Entry rows with meta and timestamps converted as SQLAlchemy's column types would
    (rows of a batch share their timestamps, and most have an empty ``meta``)."""
    converters = [(index, convert) for index, column in _CONVERTED
                  if (convert := _processor(session, column)) is not _identity]
    cache: dict[tuple[int, Any], tuple[Any, Any]] = {}
    out = []
    for row in rows:
        values = list(row)
        for index, convert in converters:
            value = values[index]
            key = (index, "{}" if index == _META and not value else id(value))
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = (value, convert(dict(value) if index == _META else value))
            values[index] = hit[1]  # hit[0] keeps the value alive, so its id stays its own
        out.append(tuple(values))
    return out


_META = ENTRY_COLUMNS.index("meta")


def existing_entries_by_key(
    session: Session, tenant_id: str, keys: Sequence[str]
) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    if not keys:
        return out
    name = session.get_bind().dialect.name
    if name in ("sqlite", "postgresql"):
        with _driver(session) as conn:
            cursor = conn.cursor()
            try:
                if name == "postgresql":
                    cursor.execute(
                        "SELECT entry_key, id, seq FROM journal_entry "
                        "WHERE tenant_id = %s AND entry_key = ANY(%b)", (tenant_id, list(keys)))
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
    raise NotImplementedError(f"the ledger runs on SQLite or PostgreSQL, not {name}")


# PostgreSQL only (the function is PostgreSQL's; SQLite posts through ``write_journal``).
_PG_POST_ONE = DriverStatement(
    lambda d: "SELECT status, entry_id, seq, detail, lots FROM ledger_post_one("
              + ", ".join(["%s"] * 10) + ", %s::json, " + ", ".join(["%s"] * 11) + ")",
    prepare=True)


# The same entry, every refusal raised in the database (migration 0032): (entry_id, seq).
_PG_POST_FINAL = DriverStatement(
    lambda d: "SELECT entry_id, seq FROM ledger_post_final("
              + ", ".join(["%s"] * 10) + ", %s::json, " + ", ".join(["%s"] * 11) + ")",
    prepare=True)


def send_one_postgres(session: Session, args: Sequence[Any], *,
                      final: bool = False) -> Callable[[], tuple[Any, ...]]:
    """Call ``ledger_post_one`` (migration 0013: one entry in one statement) without waiting
    for it; returns the function that reads its answer. The transaction's ``BEGIN`` already
    went out with its tenant setting (``kit.tenancy.set_transaction_tenant``, pipelined); in a
    PostgreSQL pipeline (``kit.db.pipelined``) the call travels with the next statement whose
    answer is read, so statements sent after it share its round trip. ``final``: call
    ``ledger_post_final`` instead, which raises every refusal (the transaction aborts, so a
    COMMIT sent behind it is not carried out) and answers only ``(entry_id, seq)``."""
    answer = (_PG_POST_FINAL if final else _PG_POST_ONE).send(session, args)

    def row() -> tuple[Any, ...]:
        found = answer()
        assert found is not None
        return tuple(found)

    return row
