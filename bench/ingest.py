"""``python -m bench ingest``: bulk import of purchases through ``imports.run`` (the bulk path
of :mod:`allegiance.events.bulk`) against the driver's fastest raw insert of the same ledger
rows.

A seeded Parquet file of N purchases (1–5 lines each, sorted by time over 2026) for M members
is imported under bench/rules.py's 20-rule program (product lists, caps, a budget, a tier
multiplier) with a primary tier ladder on which every member was placed by hand (silver, gold,
platinum or none; thresholds out of reach, so no member moves and the multiplier rules read
the placed tier).

* ``ingest.<engine>``: events/s of the import (read, validate, group, evaluate, write:
  events, lines, awards, journal, postings, aging, balances, usage, tier metrics, tallies,
  messages). **Limit**: the ledger rows this import wrote (its ``journal_entry``, ``posting``
  and ``ledger_aging`` rows, read back) inserted into a copy of the database as it was before
  the import (same schema, indexes, triggers and the wallets), a chunk per transaction, by
  SQLite ``executemany`` / PostgreSQL binary ``COPY``, the aging trigger paused as the
  import's batched writer pauses it (since session 10 the import keeps the aging rows
  set-based, so a limit that ran the per-posting trigger was slower than the import itself on
  PostgreSQL); its rate is the same N events over its time. Goal ≥ 0.5 (SQLite also a floor of 50k events/s).
* ``ingest.replay``: the same file again: rate ≥ 0.8× the first pass, and 0 new rows.
* ``ingest.hot``: the same number of purchases with members drawn Zipf-skewed (s = 1.2), every
  event posting from the one ``issued`` account as always: rate ≥ 0.8× the uniform run.

Correctness (every database the import wrote): ``ledger.reconcile`` finds no mismatch; one
journal entry per event that earned; the aging rows hold every wallet's balance; the replay
adds no event and no entry.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psycopg
from psycopg import sql
from sqlalchemy import func, select, text

from allegiance import definitions, events, imports, ledger, members, tenants, tiers
from allegiance.kit.db import Database
from bench import rules as rules_bench
from bench.common import (
    Check,
    Databases,
    Figure,
    create_pg_database,
    databases,
    pg_url,
    write_results,
)

LADDER = {"code": "status", "name": "Status", "metric": "spend", "primary": True,
          "period": {"kind": "calendar_year"},
          "levels": [{"code": "silver", "name": "Silver", "threshold": 10**15},
                     {"code": "gold", "name": "Gold", "threshold": 2 * 10**15},
                     {"code": "platinum", "name": "Platinum", "threshold": 3 * 10**15}]}
TIERS = [None, "silver", "gold", "platinum"]
ENTRY_COLUMNS = ("tenant_id", "id", "seq", "program_id", "kind", "source_type", "source_id",
                 "entry_key", "reverses_entry_id", "hold_id", "memo", "meta", "actor",
                 "effective_at", "created_at", "hash")
POSTING_COLUMNS = ("tenant_id", "entry_id", "line_no", "account_id", "unit_id", "side", "amount",
                   "reverses_line_no")
AGING_COLUMNS = ("tenant_id", "account_id", "day", "credits", "debits", "remaining")
# The aging trigger paused for the raw insert's own transaction, as the ledger's batched
# writer pauses it (ledger.aging_writes): the raw insert writes the aging rows itself.
PAUSE = {"sqlite": ("INSERT INTO sequence (tenant_id, name, last_value, last_hash) "
                    "VALUES (?, 'aging_paused', 0, '')",
                    "DELETE FROM sequence WHERE tenant_id = ? AND name = 'aging_paused'"),
         "postgres": ("SELECT set_config('allegiance.aging_paused', 'on', true), %s",
                      "SELECT set_config('allegiance.aging_paused', 'off', true), %s")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ingest-events", type=int, default=None,
                        help="purchases per import (default 1,000,000; quick 50,000)")
    parser.add_argument("--ingest-members", type=int, default=None,
                        help="members (default events / 50, at least 1,000)")
    parser.add_argument("--ingest-batch", type=int, default=50_000,
                        help="rows per import chunk (default 50,000)")


def generate(path: Path, n_events: int, n_members: int, seed: int, *, zipf: bool) -> int:
    """The purchases file (Parquet, one row per line); returns its row count."""
    rng = np.random.default_rng(seed)
    lines = rng.integers(1, 6, n_events)
    seconds = np.sort(rng.integers(0, 365 * 86400, n_events))
    if zipf:
        member = (rng.zipf(1.2, n_events) - 1) % n_members
    else:
        member = rng.integers(0, n_members, n_events)
    of_row = np.repeat(np.arange(n_events), lines)
    rows = of_row.size
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    frame = pl.DataFrame({
        "external_id": pl.Series(of_row).cast(pl.Utf8).str.pad_start(9, "0"),
        "occurred_at": pl.Series(start + seconds[of_row].astype(np.int64) * 1_000_000)
        .cast(pl.Datetime("us", "UTC")),
        "member_number": pl.Series(member[of_row]).cast(pl.Utf8).str.pad_start(7, "0"),
        "channel": pl.Series(np.array(["web", "store", "phone"])[rng.integers(0, 3, n_events)]
                             [of_row]),
        "sku": [f"SKU{s:05d}" for s in rng.integers(0, rules_bench.N_SKUS, rows)],
        "category": np.array(rules_bench.CATEGORIES)[
            rng.integers(0, len(rules_bench.CATEGORIES), rows)],
        "brand": np.array(rules_bench.BRANDS)[rng.integers(0, len(rules_bench.BRANDS), rows)],
        "line_quantity": rng.integers(1, 8, rows),
        "unit_price": rng.integers(500, 50_000, rows),
    })
    frame.write_parquet(path)
    return rows


def setup(url: str, n_members: int, seed: int) -> str:
    """Tenant, program (20 rules), ladder, members enrolled and placed; their wallets."""
    db = Database(url)
    rng = np.random.default_rng(seed)
    try:
        with db.transaction() as s:
            tenant = tenants.create_tenant(s, "Bench")
            definitions.apply(s, tenant.id, rules_bench.program(), actor="bench",
                              effective_from=datetime(2020, 1, 1, tzinfo=UTC))
            program = tenants.program_by_code(s, tenant.id, "bench")
            tiers.create_ladder(s, tenant.id, program.id, LADDER)
        placed = rng.integers(0, len(TIERS), n_members)
        for start in range(0, n_members, 2000):
            with db.transaction() as s:
                for n in range(start, min(n_members, start + 2000)):
                    account = members.create_account(s, tenant.id, name=f"M{n}",
                                                     member_number=f"{n:07d}")
                    members.ensure_enrolled(s, tenant.id, program.id, account.id, "bench")
                    tier = TIERS[int(placed[n])]
                    if tier is not None:
                        tiers.place(s, tenant.id, program.id, account.id, level=tier,
                                    reason="bench", actor="bench",
                                    at=datetime(2026, 1, 1, tzinfo=UTC))
                    for unit in ("points", "cashback"):
                        unit_id = tenants.unit_by_code(s, tenant.id, program.id, unit).id
                        ledger.wallet(s, tenant.id, program.id, unit_id, "account", account.id)
        with db.engine.connect() as conn:  # plans for tables that are not empty
            conn.execute(text("ANALYZE"))
            conn.commit()
        return tenant.id
    finally:
        db.engine.dispose()


def copy_database(url: str, tag: str, dbs: Databases) -> str:
    """A copy of the database (not in use) as it is now, removed with ``dbs``."""
    if url.startswith("sqlite"):
        source = Path(url.removeprefix("sqlite:///"))
        target = source.with_name(f"{source.stem}-{tag}.db")
        shutil.copyfile(source, target)
        return f"sqlite:///{target}"
    name = create_pg_database(url.rsplit("/", 1)[1])
    dbs._pg.append(name)  # dropped with the others
    return pg_url(name)


def import_file(url: str, tenant: str, path: Path, batch: int) -> imports.Report:
    db = Database(url)
    try:
        return imports.run(db, tenant, "bench", "purchases", path, batch=batch)
    finally:
        db.engine.dispose()


def aging_rows(url: str, tenant: str) -> list[tuple[Any, ...]]:
    """The tenant's ``ledger_aging`` rows (the import's: the wallets had none before)."""
    db = Database(url)
    try:
        with db.read() as s:
            return [tuple(r) for r in s.execute(text(
                f"SELECT {', '.join(AGING_COLUMNS)} FROM ledger_aging WHERE tenant_id = :t "
                "ORDER BY account_id, day"), {"t": tenant})]
    finally:
        db.engine.dispose()


def journal_rows(url: str, tenant: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    db = Database(url)
    try:
        with db.read() as s:
            entries = [tuple(r) for r in s.execute(text(
                f"SELECT {', '.join(ENTRY_COLUMNS)} FROM journal_entry WHERE tenant_id = :t "
                "AND kind = 'earn' ORDER BY seq"), {"t": tenant})]
            postings = [tuple(r) for r in s.execute(text(
                f"SELECT {', '.join('p.' + c for c in POSTING_COLUMNS)} FROM posting p JOIN "
                "journal_entry e ON e.tenant_id = p.tenant_id AND e.id = p.entry_id "
                "WHERE p.tenant_id = :t AND e.kind = 'earn' ORDER BY e.seq, p.line_no"),
                {"t": tenant})]
        return entries, postings
    finally:
        db.engine.dispose()


def copy_accounts(source: str, target: str, tenant: str) -> None:
    """The ledger accounts the import created (the cashback unit's ``issued``...) into the
    raw database, with zero counters (not timed)."""
    table = ledger.LedgerAccount.__table__
    src, dst = Database(source), Database(target)
    try:
        with src.read() as s:
            rows = [dict(r._mapping) for r in s.execute(
                select(table).where(table.c.tenant_id == tenant))]
        with dst.transaction() as s:
            known = set(s.scalars(select(table.c.id).where(table.c.tenant_id == tenant)))
            missing = [{**r, "debits_posted": 0, "credits_posted": 0, "debits_pending": 0,
                        "credits_pending": 0} for r in rows if r["id"] not in known]
            if missing:
                s.execute(table.insert(), missing)
    finally:
        src.engine.dispose()
        dst.engine.dispose()


def raw_insert(url: str, entries: list[tuple[Any, ...]], postings: list[tuple[Any, ...]],
               aging: list[tuple[Any, ...]], per_chunk: int) -> float:
    """Seconds to insert the rows, ``per_chunk`` entries (and their postings, and an equal
    share of the aging rows) per transaction, by executemany (SQLite) or binary COPY
    (PostgreSQL), the aging trigger paused as the import's batched writer pauses it (the
    aging rows are among the rows inserted)."""
    by_entry: dict[str, list[tuple[Any, ...]]] = {}
    for row in postings:
        by_entry.setdefault(row[1], []).append(row)
    chunks = []
    count = max(1, -(-len(entries) // per_chunk))
    share = -(-len(aging) // count)
    for n, start in enumerate(range(0, len(entries), per_chunk)):
        part = entries[start:start + per_chunk]
        chunks.append((part, [p for e in part for p in by_entry.get(e[1], [])],
                       aging[n * share:(n + 1) * share]))
    insert_entry = (f"INSERT INTO journal_entry ({', '.join(ENTRY_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in ENTRY_COLUMNS)})")
    insert_posting = (f"INSERT INTO posting ({', '.join(POSTING_COLUMNS)}) "
                      f"VALUES ({', '.join('?' for _ in POSTING_COLUMNS)})")
    insert_aging = (f"INSERT INTO ledger_aging ({', '.join(AGING_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in AGING_COLUMNS)})")
    tenant = entries[0][0] if entries else ""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        for pragma in ("foreign_keys = ON", "journal_mode = WAL", "synchronous = FULL"):
            conn.execute(f"PRAGMA {pragma}")
        started = time.perf_counter()
        for part, lines, days in chunks:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(PAUSE["sqlite"][0], (tenant,))
            conn.executemany(insert_entry, [_lite(r) for r in part])
            conn.executemany(insert_posting, lines)
            conn.executemany(insert_aging, days)
            conn.execute(PAUSE["sqlite"][1], (tenant,))
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        conn.close()
        return seconds
    with psycopg.connect(url) as pg:
        with pg.cursor() as cur:  # the column types, before any COPY (not timed)
            types = {"journal_entry": _types(cur, "journal_entry", ENTRY_COLUMNS),
                     "posting": _types(cur, "posting", POSTING_COLUMNS),
                     "ledger_aging": _types(cur, "ledger_aging", AGING_COLUMNS)}
        pg.commit()
        started = time.perf_counter()
        for part, lines, days in chunks:
            with pg.transaction(), pg.cursor() as cur:
                cur.execute(PAUSE["postgres"][0], (tenant,))
                for table, columns, rows in (("journal_entry", ENTRY_COLUMNS, part),
                                             ("posting", POSTING_COLUMNS, lines),
                                             ("ledger_aging", AGING_COLUMNS, days)):
                    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                            sql.Identifier(table),
                            sql.SQL(", ").join(map(sql.Identifier, columns)))) as cp:
                        cp.set_types(types[table])
                        for row in rows:
                            cp.write_row(row)
                cur.execute(PAUSE["postgres"][1], (tenant,))
        return time.perf_counter() - started


def _lite(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in row)


def _types(cur: psycopg.Cursor[Any], table: str, columns: tuple[str, ...]) -> list[str]:
    cur.execute("SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = %s", (table,))
    found = {name: kind for name, kind in cur.fetchall()}
    return [found[c] for c in columns]


def checks_of(url: str, tenant: str, engine: str, label: str) -> list[Check]:
    db = Database(url)
    try:
        with db.read() as s:
            _, mismatches = ledger.reconcile(s, tenant)
            entries = s.scalar(select(func.count()).select_from(ledger.JournalEntry).where(
                ledger.JournalEntry.tenant_id == tenant,
                ledger.JournalEntry.kind == "earn")) or 0
            earned = s.scalar(select(func.count(func.distinct(events.EventAward.event_id)))
                              .where(events.EventAward.tenant_id == tenant,
                                     events.EventAward.entry_id.is_not(None))) or 0
            aging = s.execute(text(
                "SELECT COALESCE(SUM(g.credits - g.debits), 0) FROM ledger_aging g JOIN "
                "ledger_account a ON a.tenant_id = g.tenant_id AND a.id = g.account_id "
                "WHERE g.tenant_id = :t AND a.purpose = 'wallet'"), {"t": tenant}).scalar_one()
            wallets = s.execute(text(
                "SELECT COALESCE(SUM(credits_posted - debits_posted), 0) FROM ledger_account "
                "WHERE tenant_id = :t AND purpose = 'wallet'"), {"t": tenant}).scalar_one()
    finally:
        db.engine.dispose()
    return [Check(f"{label}.ledger", engine, not mismatches and entries == earned,
                  f"{entries} entries, {earned} events that earned, {len(mismatches)} "
                  "mismatches"),
            Check(f"{label}.aging", engine, int(aging) == int(wallets),
                  f"aging {aging}, wallets {wallets}")]


def _engine(engine: str, args: argparse.Namespace, folder: Path, figures: list[Figure],
            checks: list[Check], raw: dict[str, Any]) -> None:
    n_events = args.ingest_events or (50_000 if args.quick else 1_000_000)
    n_members = args.ingest_members or max(1000, n_events // 50)
    uniform = folder / "uniform.parquet"
    skewed = folder / "zipf.parquet"
    if not uniform.exists():
        generate(uniform, n_events, n_members, args.seed, zipf=False)
        generate(skewed, n_events, n_members, args.seed + 1, zipf=True)
    with databases(engine) as dbs:
        base = dbs.new()
        tenant = setup(base, n_members, args.seed)
        limit_url = copy_database(base, "raw", dbs)
        hot_url = copy_database(base, "hot", dbs)
        started = time.perf_counter()
        report = import_file(base, tenant, uniform, args.ingest_batch)
        first = time.perf_counter() - started
        entries, postings = journal_rows(base, tenant)
        aging = aging_rows(base, tenant)
        per_chunk = max(1, len(entries) * args.ingest_batch // max(1, report.rows))
        copy_accounts(base, limit_url, tenant)
        raw_seconds = raw_insert(limit_url, entries, postings, aging, per_chunk)
        floor = 50_000 if engine == "sqlite" else None
        name = f"ingest.{engine}"
        method = "executemany" if engine == "sqlite" else "COPY binary"
        figure = Figure(name, engine, n_events, first, limit_name=f"raw.{method}",
                        limit_rate=n_events / raw_seconds, goal=0.5,
                        note=(f"{report.rows} rows, {len(entries)} entries, {len(postings)} "
                              f"postings, {len(aging)} aging rows, bulk {report.paths.bulk} / per-event "
                              f"{report.paths.per_event}"))
        figures.append(figure)
        if floor is not None:
            checks.append(Check(f"{name}.floor", engine, figure.rate >= floor,
                                f"{figure.rate:.0f} events/s, floor {floor}"))
        checks.append(Check(f"{name}.counts", engine, report.created == n_events,
                            f"{report.created} of {n_events} created"))
        checks.extend(checks_of(base, tenant, engine, name))
        started = time.perf_counter()
        again = import_file(base, tenant, uniform, args.ingest_batch)
        replay = time.perf_counter() - started
        figures.append(Figure("ingest.replay", engine, n_events, replay, limit_name=name,
                              limit_rate=figure.rate, goal=0.8,
                              note=f"{again.replayed} replayed, {again.created} created"))
        after, _ = journal_rows(base, tenant)
        checks.append(Check("ingest.replay.adds_nothing", engine,
                            again.created == 0 and len(after) == len(entries),
                            f"{again.created} created, {len(after) - len(entries)} entries"))
        started = time.perf_counter()
        hot = import_file(hot_url, tenant, skewed, args.ingest_batch)
        hot_seconds = time.perf_counter() - started
        figures.append(Figure("ingest.hot", engine, n_events, hot_seconds, limit_name=name,
                              limit_rate=figure.rate, goal=0.8,
                              note=(f"Zipf members, bulk {hot.paths.bulk} / per-event "
                                    f"{hot.paths.per_event}")))
        checks.extend(checks_of(hot_url, tenant, engine, "ingest.hot"))
        raw[engine] = {"events": n_events, "members": n_members, "rows": report.rows,
                       "import_seconds": first, "raw_seconds": raw_seconds,
                       "replay_seconds": replay, "hot_seconds": hot_seconds,
                       "report": report.to_dict(), "hot": hot.to_dict()}


def run(args: argparse.Namespace) -> bool:
    engines = list(args.engine or ["sqlite", "postgres"])
    figures: list[Figure] = []
    checks: list[Check] = []
    raw: dict[str, Any] = {"seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="allegiance-bench-ingest-") as folder:
        for engine in engines:
            _engine(engine, args, Path(folder), figures, checks, raw)
    for figure in figures:
        print(figure.line())
    for check in checks:
        print(check.line())
    write_results("ingest", raw, figures, checks)
    return all(f.passed is not False for f in figures) and all(c.ok for c in checks)
