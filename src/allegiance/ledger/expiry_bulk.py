"""The expiry job's set-based path: its queries and its bulk writes.

A chunk of lots is read by one query together with each wallet's available balance and, per
wallet, the sum of the chunk's earlier lots (a window ordered by expiry), so what each lot may
lose is known without a query per wallet: ``min(remaining, available - earlier)``, never below
0 — points a pending hold reserves stay until the hold is resolved.

The chunk's expiry entries are then written in bulk, in the caller's transaction: one counter
update per wallet (conditional, in id order: :func:`repository.apply_deltas`), one journal
write (numbers, hash chain, entries, postings: :func:`repository.write_journal`), the lots'
``remaining`` lowered by one conditional statement and their ``lot_use`` rows. Each entry has
the business key ``expiry:<lot>:<remaining>`` of the per-entry path, so a chunk that was
written already (or a lot changed by a concurrent writer) is never expired twice: the key is
looked up first, every lot update is conditional on the remaining that was read, and on
PostgreSQL the wallets' counters are compared with what was read once they are locked; a
difference raises :class:`~allegiance.kit.errors.Conflict` (the caller rolls the chunk back and
reads it again).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.kit import sequences
from allegiance.kit.db import driver_connection, is_unique_violation
from allegiance.kit.errors import Conflict
from allegiance.kit.expiry import ExpiryPolicy, add_months
from allegiance.kit.ids import new_id
from allegiance.ledger import aging_writes
from allegiance.ledger import repository as repo
from allegiance.ledger.aging import day_number
from allegiance.ledger.models import JournalEntry, LedgerAccount, Lot
from allegiance.ledger.service import JOURNAL_SEQUENCE, program_account

ACTOR = "job:expire"
MEMBER_OWNERS = ("account", "user")


@dataclass(frozen=True)
class DueLot:
    """One open lot of a chunk, with what its wallet can give up for it."""

    tenant_id: str
    lot_id: str
    account_id: str
    remaining: int
    wallet: repo.AccountInfo
    available: int  # the wallet's available balance (posted minus held), as read
    earlier: int  # the remaining of the chunk's earlier lots of the same wallet
    # What expires now: the lot's remaining, as far as the wallet's available covers it after
    # the earlier lots (the rest is reserved by a pending hold).
    amount: int = 0

    def __post_init__(self) -> None:
        amount = max(0, min(self.remaining, max(0, self.available) - self.earlier))
        object.__setattr__(self, "amount", amount)


def _available() -> Any:
    a = LedgerAccount
    return case(
        (a.normal == "credit", a.credits_posted - a.debits_posted - a.debits_pending),
        else_=a.debits_posted - a.credits_posted - a.credits_pending,
    )


def _with_wallets(chunk: Any, order: tuple[Any, ...], extra: tuple[Any, ...] = ()) -> Any:
    """The chunk's lots joined with their wallets: attributes, available balance and the
    window sum of the wallet's lots up to each one, in ``order``."""
    a = LedgerAccount
    running = func.sum(chunk.c.remaining).over(
        partition_by=(chunk.c.tenant_id, chunk.c.account_id), order_by=order, rows=(None, 0))
    return (
        select(chunk.c.tenant_id, chunk.c.id, chunk.c.account_id, chunk.c.remaining,
               a.program_id, a.unit_id, a.owner_type, a.owner_id, a.purpose, a.normal,
               a.no_overdraw, _available(), running - chunk.c.remaining, *extra)
        .join(a, and_(a.tenant_id == chunk.c.tenant_id, a.id == chunk.c.account_id))
        .order_by(*order)
    )


def _due_lot(row: Any) -> DueLot:
    wallet = repo.AccountInfo(str(row[2]), str(row[4]), str(row[5]), str(row[6]), str(row[7]),
                              str(row[8]), str(row[9]), bool(row[10]))
    return DueLot(str(row[0]), str(row[1]), str(row[2]), int(row[3]), wallet, int(row[11]),
                  int(row[12]))


# PostgreSQL: every statement of a chunk reads or changes a few rows per lot or wallet, by key.
# Knowing the arrays' sizes, the planner chose hash joins over whole-table scans — the lots,
# the wallets and the aging rows read in full by every chunk (≈ 1 s a chunk each at 100 000
# members, and the job growing with the square of the data) — the windows' sorts spilled to
# disk at the default 4 MB, and JIT compiled them. For the chunk's transaction only (a
# caller's own transaction, through ``expire_due_lots``/``expire_inactive``, keeps them to its
# end):
_PG_CHUNK_SETTINGS = (
    "SET LOCAL enable_hashjoin = off", "SET LOCAL enable_mergejoin = off",
    "SET LOCAL enable_seqscan = off", "SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'",
)


def _probe_plans(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        with driver_connection(session) as conn, conn.cursor() as cursor:
            for statement in _PG_CHUNK_SETTINGS:
                cursor.execute(statement)


def due_chunk(
    session: Session, now: datetime, limit: int, after: tuple[datetime, str] | None = None
) -> tuple[list[DueLot], tuple[datetime, str] | None]:
    """The next ``limit`` open lots past their expiry, in (expires_at, id) order after
    ``after``, with their wallets; and the position of the last one (None when none)."""
    _probe_plans(session)
    query = select(Lot.tenant_id, Lot.id, Lot.account_id, Lot.remaining, Lot.expires_at).where(
        Lot.expires_at.is_not(None), Lot.expires_at <= now, Lot.remaining > 0)
    if after is not None:
        query = query.where(tuple_(Lot.expires_at, Lot.id) > tuple_(*after))
    chunk = query.order_by(Lot.expires_at, Lot.id).limit(limit).subquery("due")
    rows = session.execute(
        _with_wallets(chunk, (chunk.c.expires_at, chunk.c.id), (chunk.c.expires_at,))).all()
    if not rows:
        return [], None
    return [_due_lot(row) for row in rows], (rows[-1][13], str(rows[-1][1]))


def inactivity_policies(session: Session) -> dict[tuple[str, str], int]:
    """(tenant, unit) → months without activity after which its wallets' points expire."""
    out: dict[tuple[str, str], int] = {}
    for tenant_id, unit_id, data in session.execute(
        select(tenants.Unit.tenant_id, tenants.Unit.id, tenants.Unit.expiry_policy)
    ):
        policy = ExpiryPolicy.from_dict(data)
        if policy.kind == "inactivity":
            out[(str(tenant_id), str(unit_id))] = policy.months
    return out


def inactive_chunk(
    session: Session, now: datetime, policies: dict[tuple[str, str], int], limit: int,
    after: tuple[str, str] | None = None,
) -> tuple[list[DueLot], tuple[str, str] | None]:
    """The open lots of the next ``limit`` wallets (in (tenant, id) order after ``after``)
    whose unit expires points after N months without activity and whose last activity is that
    old; and the position of the last wallet read (None when there is none)."""
    if not policies:
        return [], None
    _probe_plans(session)
    a = LedgerAccount
    # A superset in SQL (a few days of slack for month ends), the exact months in Python.
    deadline = or_(*(
        and_(a.tenant_id == tenant_id, a.unit_id == unit_id,
             a.last_activity_at <= add_months(now, -months) + timedelta(days=4))
        for (tenant_id, unit_id), months in sorted(policies.items())
    ))
    has_lots = select(Lot.id).where(Lot.tenant_id == a.tenant_id, Lot.account_id == a.id,
                                    Lot.remaining > 0).exists()
    wallets = select(a.tenant_id, a.id, a.unit_id, a.last_activity_at).where(
        a.purpose == "wallet", a.owner_type.in_(MEMBER_OWNERS), a.last_activity_at.is_not(None),
        deadline, has_lots)
    if after is not None:
        wallets = wallets.where(tuple_(a.tenant_id, a.id) > tuple_(*after))
    found = session.execute(wallets.order_by(a.tenant_id, a.id).limit(limit)).all()
    if not found:
        return [], None
    last = (str(found[-1][0]), str(found[-1][1]))
    due = [(str(t), str(i)) for t, i, unit, seen in found
           if seen is not None and add_months(seen, policies[(str(t), str(unit))]) <= now]
    if not due:
        return [], last
    # Per tenant, ``account_id IN (…)``: one index scan with an array condition. A row-value
    # ``(tenant_id, account_id) IN ((…), …)`` of 5 000 pairs became 5 000 OR-ed index scans on
    # PostgreSQL (≈ 12 s a chunk at 100 000 members).
    by_tenant: dict[str, list[str]] = defaultdict(list)
    for tenant_id, account_id in due:
        by_tenant[tenant_id].append(account_id)
    chunk = select(Lot.tenant_id, Lot.id, Lot.account_id, Lot.remaining).where(
        Lot.remaining > 0, or_(*(and_(Lot.tenant_id == tenant_id, Lot.account_id.in_(ids))
                                 for tenant_id, ids in sorted(by_tenant.items())))
    ).subquery("idle")
    rows = session.execute(
        _with_wallets(chunk, (chunk.c.tenant_id, chunk.c.account_id, chunk.c.id))).all()
    return [_due_lot(row) for row in rows], last


# ---------------------------------------------------------------------------------------------
# Writes


@dataclass
class Written:
    lots: int = 0
    points: int = 0
    entries: int = 0


def expire(
    session: Session, lots: list[DueLot], now: datetime, *, check_keys: bool = False
) -> Written:
    """Write the expiry entries of ``lots`` (those with something to expire), per tenant.

    A lot's key can only be taken already if its remaining came back to a value it had when
    it expired before (rare), and the unique index on ``entry_key`` refuses the duplicate
    anyway: so keys are looked up first only with ``check_keys`` (the retry of a chunk that
    met a taken key: :class:`Conflict`)."""
    out = Written()
    by_tenant: dict[str, list[DueLot]] = defaultdict(list)
    for lot in lots:
        if lot.amount > 0:
            by_tenant[lot.tenant_id].append(lot)
    for tenant_id in sorted(by_tenant):
        _expire_tenant(session, tenant_id, by_tenant[tenant_id], now, out, check_keys)
    return out


def entry_key(lot: DueLot) -> str:
    return f"expiry:{lot.lot_id}:{lot.remaining}"


def _expire_tenant(
    session: Session, tenant_id: str, lots: list[DueLot], now: datetime, out: Written,
    check_keys: bool,
) -> None:
    if check_keys:
        taken_keys = repo.existing_entries_by_key(session, tenant_id,
                                                  [entry_key(x) for x in lots])
        lots = [x for x in lots if entry_key(x) not in taken_keys]
    if not lots:
        return
    # Written in wallet order (a wallet's lots keep their expiry order): the chunk was read in
    # expiry order, scattered over the wallets, and every statement below then walks the
    # indexes it changes (counters, the postings' account index, aging, open lots) in key
    # order instead of jumping between pages.
    lots = sorted(lots, key=lambda x: x.account_id)
    # The program's "expired" account, once per (program, unit).
    expired: dict[tuple[str, str], repo.AccountInfo] = {}
    for program_id, unit_id in sorted({(x.wallet.program_id, x.wallet.unit_id) for x in lots}):
        account = program_account(session, tenant_id, program_id, unit_id, "expired")
        expired[(program_id, unit_id)] = repo.AccountInfo(
            account.id, program_id, unit_id, "program", program_id, "expired", account.normal,
            account.no_overdraw)
    infos = {x.account_id: x.wallet for x in lots}
    infos.update({info.id: info for info in expired.values()})
    deltas: dict[str, repo.Delta] = defaultdict(repo.Delta)
    taken: dict[str, int] = defaultdict(int)
    for lot in lots:
        deltas[lot.account_id].debits_posted += lot.amount
        deltas[expired[(lot.wallet.program_id, lot.wallet.unit_id)].id].credits_posted += (
            lot.amount)
        taken[lot.account_id] += lot.amount
    # The wallets first, then the program accounts: every writer's lock order.
    if session.get_bind().dialect.name == "sqlite":
        failed = _debit_wallets_sqlite(session, tenant_id, taken)
    else:
        failed = _debit_wallets_postgres(session, tenant_id, lots, taken)
    program_deltas = {k: v for k, v in deltas.items() if k not in taken}
    failed = failed or repo.apply_deltas(session, tenant_id, infos, program_deltas, None)
    if failed is not None:
        raise Conflict(f"wallet {failed} changed while its lots expired", field="lots")
    aging_writes.pause(session, tenant_id, True)
    try:
        _write_journal(session, tenant_id, lots, expired, now)
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise Conflict("an expiry key of the chunk is taken", field="entry_key") from exc
    aging_writes.pause(session, tenant_id, False)
    _track_aging(session, tenant_id, taken, now)
    _take_from_lots(session, tenant_id, lots)
    out.lots += len(lots)
    out.points += sum(x.amount for x in lots)
    out.entries += len(lots)


# _track_aging keeps ledger_aging for the chunk (the trigger paused for its postings) in two
# statements: the wallets' debits on the day, then their remaining per day recomputed.
_AGING_UPSERT = (
    "INSERT INTO ledger_aging AS g (tenant_id, account_id, day, credits, debits, remaining) "
    "{values} ON CONFLICT (tenant_id, account_id, day) DO UPDATE "
    "SET debits = g.debits + excluded.debits"
)
_AGING_SQL = _AGING_UPSERT.format(
    values="SELECT ?, j.value ->> 0, ?, 0, j.value ->> 1, 0 FROM json_each(?) AS j WHERE true")


def _track_aging(session: Session, tenant_id: str, taken: dict[str, int], now: datetime) -> None:
    """The chunk's wallet debits on ``ledger_aging``, as the trigger would have kept them:
    added to the day of ``now`` (every expiry entry's), then each wallet's remaining per day
    recomputed. (SQLite: its liability triggers on ``ledger_aging`` run per changed row; the
    same sums written grouped, as on PostgreSQL, were slower — the recomputation's window
    read twice — session 12.)"""
    day = day_number(now)
    if session.get_bind().dialect.name == "postgresql":
        # with the liability sums, the liability trigger paused (a PL/pgSQL call per row)
        aging_writes.debit_day_postgres(session, tenant_id, day, taken)
        return
    wallets = sorted(taken)
    with driver_connection(session) as conn:
        conn.execute(_AGING_SQL, (tenant_id, day, json.dumps([[w, taken[w]] for w in wallets])))
    aging_writes.recompute_remaining(session, tenant_id, wallets)


# The chunk's rows as a MATERIALIZED table: otherwise SQLite flattens it and, without
# statistics (a database nobody analysed), plans the tenant's index scan on the outside with the
# chunk scanned once per account — quadratic. Materialised, the chunk drives key lookups.
_SQLITE_DEBIT = (
    "WITH v AS MATERIALIZED (SELECT j.value ->> 0 AS id, j.value ->> 1 AS amount "
    "FROM json_each(?) AS j) "
    "UPDATE ledger_account SET debits_posted = debits_posted + v.amount FROM v "
    "WHERE ledger_account.tenant_id = ? AND ledger_account.id = v.id "
    "AND (NOT no_overdraw OR (CASE WHEN normal = 'credit' "
    "THEN credits_posted - (debits_posted + v.amount) - debits_pending "
    "ELSE (debits_posted + v.amount) - credits_posted - credits_pending END) >= floor)"
)
def _changes(conn: Any) -> int:
    """Rows the last statement changed. Python's sqlite3 reports ``rowcount`` only for a
    statement that starts with INSERT, UPDATE, DELETE or REPLACE, not for ``WITH … UPDATE``."""
    return int(conn.execute("SELECT changes()").fetchone()[0])


_SQLITE_LOTS = (  # materialised for the same reason as _SQLITE_DEBIT
    "WITH v AS MATERIALIZED (SELECT j.value ->> 0 AS id, j.value ->> 1 AS amount, "
    "j.value ->> 2 AS old FROM json_each(?) AS j) "
    "UPDATE lot SET remaining = remaining - v.amount FROM v "
    "WHERE lot.tenant_id = ? AND lot.id = v.id AND lot.remaining = v.old"
)


def _debit_wallets_sqlite(session: Session, tenant_id: str, taken: dict[str, int]) -> str | None:
    """SQLite (one writer at a time): every wallet's debit in one conditional statement
    (one statement, not one per wallet: see :func:`_write_journal_sqlite`). Returns a wallet
    that would be overdrawn, or None."""
    with driver_connection(session) as conn:
        conn.execute(_SQLITE_DEBIT, (json.dumps(sorted(taken.items())), tenant_id))
        changed = _changes(conn)
    return None if changed == len(taken) else "of the chunk"


# PostgreSQL: the wallets locked in every writer's order (member accounts by id, code-point
# order: ``writes.lock_order``), their available balance read under the lock.
_PG_LOCK_WALLETS = (
    "SELECT id, CASE WHEN normal = 'credit' THEN credits_posted - debits_posted - debits_pending "
    "ELSE debits_posted - credits_posted - credits_pending END FROM ledger_account "
    'WHERE tenant_id = %s AND id = ANY(%b) ORDER BY id COLLATE "C" FOR UPDATE'
)
_PG_DEBIT_WALLETS = (
    "UPDATE ledger_account AS a SET debits_posted = a.debits_posted + v.amount "
    "FROM unnest(%b::text[], %b::bigint[]) AS v(id, amount) "
    "WHERE a.tenant_id = %s AND a.id = v.id"
)


def _debit_wallets_postgres(
    session: Session, tenant_id: str, lots: list[DueLot], taken: dict[str, int]
) -> str | None:
    """PostgreSQL: lock the chunk's wallets (in lock order) and read their available balance;
    it must be what the chunk's read saw — else another writer moved the wallet in between
    and the amounts were computed from a stale read (:class:`Conflict`). Then every wallet's
    debit in one statement: what it loses is at most what it had available (the check's
    read), so none is overdrawn. (Lock, update and a re-read were three statements over
    every wallet of the chunk.)"""
    read = {x.account_id: x.available for x in lots}
    ids = sorted(read)
    with driver_connection(session) as conn, conn.cursor() as cursor:
        cursor.execute(_PG_LOCK_WALLETS, (tenant_id, ids))
        now_available = {str(r[0]): int(r[1]) for r in cursor.fetchall()}
        for account_id in ids:
            if now_available.get(account_id) != read[account_id]:
                raise Conflict(f"wallet {account_id} changed while its lots expired",
                               field="lots")
        cursor.execute(_PG_DEBIT_WALLETS, (ids, [taken[w] for w in ids], tenant_id))
        if cursor.rowcount != len(ids):
            return "of the chunk"
    return None


def _write_journal(
    session: Session, tenant_id: str, lots: list[DueLot],
    expired: dict[tuple[str, str], repo.AccountInfo], now: datetime,
) -> None:
    """One expiry entry per lot: debit the wallet, credit the program's expired account. The
    hash of each entry is the one :func:`service.record` computes (``balances.verify_chain``)."""
    first_seq, previous = sequences.reserve(session, tenant_id, JOURNAL_SEQUENCE, len(lots))
    stamp = now.isoformat()
    rows: list[tuple[Any, ...]] = []
    chain = sequences.chain
    for offset, lot in enumerate(lots):
        seq = first_seq + offset
        entry_id = new_id("txn")
        program_id, unit_id = lot.wallet.program_id, lot.wallet.unit_id
        credit = expired[(program_id, unit_id)].id
        key = entry_key(lot)
        previous = chain(previous, (
            f"{seq}|{entry_id}|{program_id}|expiry|{stamp}|{key}||"
            f"1:{lot.account_id}:{unit_id}:D:{lot.amount};2:{credit}:{unit_id}:C:{lot.amount}"
        ))
        rows.append((entry_id, seq, program_id, lot.lot_id, key, previous, lot.account_id,
                     unit_id, lot.amount, credit))
    sequences.set_last_hash(session, tenant_id, JOURNAL_SEQUENCE, previous)
    if session.get_bind().dialect.name == "sqlite":
        _write_journal_sqlite(session, tenant_id, now, rows)
    else:
        _write_journal_postgres(session, tenant_id, now, rows)


# The chunk's rows, one per lot: (entry id, seq, program, lot, key, hash, wallet, unit, amount,
# expired account). Per lot one entry, its two postings (line 1 debits the wallet, line 2
# credits the expired account) and one lot use (of line 1); what every row shares (tenant,
# kind, actor, times) is one parameter.
_ENTRY_INSERT = (
    "INSERT INTO journal_entry (tenant_id, id, seq, program_id, kind, source_type, source_id, "
    "entry_key, meta, actor, effective_at, created_at, hash) "
    "SELECT {m}, v.id, v.seq, v.program_id, 'expiry', 'lot', v.lot, v.key, '{{}}', {m}, {m}, {m}, "
    "v.hash FROM {rows}"
)
_POSTING_INSERT = (
    "INSERT INTO posting (tenant_id, entry_id, line_no, account_id, unit_id, side, amount) "
    "SELECT {m}, v.id, s.line, CASE WHEN s.line = 1 THEN v.wallet ELSE v.credit END, v.unit, "
    "s.side, v.amount FROM {rows} CROSS JOIN (SELECT 1 AS line, 'D' AS side "
    "UNION ALL SELECT 2, 'C') AS s"
)
_USE_INSERT = ("INSERT INTO lot_use (tenant_id, entry_id, line_no, lot_id, amount) "
               "SELECT {m}, v.id, 1, v.lot, v.amount FROM {rows}")
_NAMES = ("id", "seq", "program_id", "lot", "key", "hash", "wallet", "unit", "amount", "credit")
_PG_TYPES = dict(zip(_NAMES, ("text", "bigint", "text", "text", "text", "text", "text", "text",
                              "bigint", "text"), strict=True))
# Each statement reads only the columns it uses.
_USES = ((_ENTRY_INSERT, ("id", "seq", "program_id", "lot", "key", "hash")),
         (_POSTING_INSERT, ("id", "wallet", "unit", "amount", "credit")),
         (_USE_INSERT, ("id", "lot", "amount")))


def _source(dialect: str, names: tuple[str, ...]) -> str:
    if dialect == "sqlite":
        picks = ", ".join(f"j.value ->> {_NAMES.index(n)} AS {n}" for n in names)
        return f"(SELECT {picks} FROM json_each(?) AS j) AS v"
    arrays = ", ".join(f"%b::{_PG_TYPES[n]}[]" for n in names)
    return f"unnest({arrays}) AS v({', '.join(names)})"


_JOURNAL_SQL = {dialect: [(sql.format(m=mark, rows=_source(dialect, names)), names)
                          for sql, names in _USES]
                for dialect, mark in (("sqlite", "?"), ("postgresql", "%s"))}


def _write_journal_postgres(session: Session, tenant_id: str, now: datetime,
                            rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: the chunk's entries, postings and lot uses as one ``INSERT … SELECT FROM
    unnest`` each (one round trip per table instead of one statement per row), the columns as
    binary arrays."""
    arrays = dict(zip(_NAMES, ([*column] for column in zip(*rows, strict=True)), strict=True))
    shared: list[tuple[Any, ...]] = [(tenant_id, ACTOR, now, now), (tenant_id,), (tenant_id,)]
    with driver_connection(session) as conn, conn.cursor() as cursor:
        for (sql, names), params in zip(_JOURNAL_SQL["postgresql"], shared, strict=True):
            cursor.execute(sql, (*params, *(arrays[n] for n in names)))


def _write_journal_sqlite(session: Session, tenant_id: str, now: datetime,
                          rows: list[tuple[Any, ...]]) -> None:
    """SQLite: the chunk's entries, postings and lot uses as one ``INSERT … SELECT`` each
    (rows passed as one JSON array). Inside a group-commit unit (a SAVEPOINT) every statement
    on a table with a trigger costs in proportion to what the unit wrote before it, so
    row-by-row ``executemany`` of a 20,000-entry chunk is quadratic; one statement per table
    is not. Timestamps are stored as the column type stores them."""
    convert = JournalEntry.__table__.c.effective_at.type._cached_bind_processor(
        session.get_bind().dialect)
    stored = convert(now) if convert else now
    listed = json.dumps(rows)
    shared: list[tuple[Any, ...]] = [(tenant_id, ACTOR, stored, stored), (tenant_id,),
                                      (tenant_id,)]
    with driver_connection(session) as conn:
        for (sql, _), params in zip(_JOURNAL_SQL["sqlite"], shared, strict=True):
            conn.execute(sql, (*params, listed))


def _take_from_lots(session: Session, tenant_id: str, lots: list[DueLot]) -> None:
    """Lower each lot's remaining by its amount, only where it is still what was read."""
    ids = [x.lot_id for x in lots]
    amounts = [x.amount for x in lots]
    olds = [x.remaining for x in lots]
    with driver_connection(session) as conn:
        cursor = conn.cursor()
        try:
            if session.get_bind().dialect.name == "postgresql":
                cursor.execute(
                    "UPDATE lot AS l SET remaining = l.remaining - v.amount "
                    "FROM unnest(%b::text[], %b::bigint[], %b::bigint[]) AS v(id, amount, old) "
                    "WHERE l.tenant_id = %s AND l.id = v.id AND l.remaining = v.old",
                    (ids, amounts, olds, tenant_id))
                changed = cursor.rowcount
            else:
                cursor.execute(
                    _SQLITE_LOTS,
                    (json.dumps(list(zip(ids, amounts, olds, strict=True))), tenant_id))
                changed = _changes(cursor)
        finally:
            cursor.close()
    if changed != len(lots):
        raise Conflict("a lot was used while it expired", field="lots")
