"""``python -m bench ledger``: the ledger's write path against its limits.

Per engine (SQLite, PostgreSQL), each in a fresh migrated database of the same schema:

- ``ledger.single``: earn entries (issued → member wallet, 2 postings) through the service,
  one ``db.transaction()`` per entry;
- ``ledger.batched``: the same kind of entries through ``post_entries``, one transaction per
  batch;
- ``raw.insert``: the same journal_entry and posting rows (same columns, ids, hashes, keys,
  same indexes and constraints) written by the driver's fastest path (SQLite ``executemany``;
  PostgreSQL ``COPY``, and ``executemany`` shown beside it), one transaction per batch. This is
  the limit of ``ledger.batched``. ``raw.insert+counters`` also applies the per-account counter
  updates the service makes (shown for information). Batched and raw writers run interleaved
  batch by batch, so a change of the machine's load hits them alike;
- on PostgreSQL, ``hordak.transfer_to``: django-hordak's ``Account.transfer_to`` on the same
  server, one transaction per transfer, in a subprocess (``bench/hordak_app``).

Then every database is checked: reconciliation finds no mismatch, the sums of the balances equal
the sums posted, the hash chain verifies, and re-posting entries with the same keys adds none.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import func, insert, select

from allegiance import ledger, tenants
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.ids import new_id
from bench.common import (
    ROOT,
    Check,
    Figure,
    create_pg_database,
    databases,
    drop_pg_database,
    pg_url,
    postgres_available,
    timed,
    write_results,
)
from bench.ledger_checks import check_world

HORDAK_REFERENCE = 860.0  # transfers/s the issue measured for django-hordak on this machine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ledger")
    group.add_argument("--ledger-single", type=int, help="entries posted one per transaction")
    group.add_argument("--ledger-batched", type=int, help="entries posted in batches")
    group.add_argument("--ledger-batch-size", type=int, default=1000)
    group.add_argument("--ledger-wallets", type=int, help="member wallets the entries spread over")
    group.add_argument("--ledger-hordak", type=int, help="hordak transfers (default: as single)")
    group.add_argument("--ledger-callers", type=int, default=32,
                       help="concurrent callers of the grouped figures (ours and hordak's)")


@dataclass(frozen=True)
class Params:
    single: int
    batched: int
    batch_size: int
    wallets: int
    hordak: int
    callers: int
    seed: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> Params:
        quick = bool(args.quick)
        single = args.ledger_single or (2_000 if quick else 20_000)
        return cls(
            single=single,
            batched=args.ledger_batched or (20_000 if quick else 200_000),
            batch_size=args.ledger_batch_size,
            wallets=args.ledger_wallets or (2_000 if quick else 10_000),
            hordak=args.ledger_hordak or single,
            callers=args.ledger_callers,
            seed=args.seed,
        )


# ---------------------------------------------------------------------------------------------
# Setup and data


@dataclass
class World:
    db: Database
    tenant_id: str
    program_id: str
    unit_id: str
    issued_id: str
    wallet_ids: list[str]


def build_world(url: str, wallets: int) -> World:
    db = Database(url)
    with db.transaction() as s:
        tenant = tenants.create_tenant(s, "Bench")
        program = tenants.create_program(s, tenant.id, code="bench", name="Bench",
                                         base_currency="USD")
        unit = tenants.create_unit(s, tenant.id, program.id, code="points", name="Points",
                                   kind="points", value_in_base="0.01",
                                   expiry_policy={"kind": "never"})
        issued = ledger.program_account(s, tenant.id, program.id, unit.id, "issued")
        first = ledger.wallet(s, tenant.id, program.id, unit.id, "account", "member-0")
        # The other wallets in one statement (setup is not measured); the same attributes as
        # ledger.wallet() gives them.
        now = clock.now()
        rows = [
            {"tenant_id": tenant.id, "id": new_id("wal"), "program_id": program.id,
             "unit_id": unit.id, "owner_type": "account", "owner_id": f"member-{i}",
             "purpose": "wallet", "normal": first.normal, "no_overdraw": first.no_overdraw,
             "floor": first.floor, "debits_posted": 0, "credits_posted": 0, "debits_pending": 0,
             "credits_pending": 0, "last_activity_at": None, "created_at": now}
            for i in range(1, wallets)
        ]
        if rows:
            s.execute(insert(ledger.LedgerAccount.__table__), rows)
        world = World(db, tenant.id, program.id, unit.id, issued.id,
                      [first.id] + [r["id"] for r in rows])
    with db.transaction() as s:  # the bulk-made wallets are the ones the service finds
        found = ledger.wallet(s, world.tenant_id, world.program_id, world.unit_id, "account",
                              f"member-{wallets - 1}")
        assert found.id == world.wallet_ids[-1]
    return world


def warm(world: World, events: Sequence[tuple[int, int]]) -> None:
    """Post a first batch (not timed) and ANALYZE: a database in service is never empty and
    never analysed. On a fresh PostgreSQL database the foreign-key checks of ``posting``
    otherwise plan a sequential scan of the (then empty) ``journal_entry`` and keep it, so
    every batch gets slower than the last (both for us and for hordak)."""
    with world.db.transaction() as s:
        ledger.post_entries(s, world.tenant_id, requests(world, events, "w"))
    with world.db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def plan(seed: int, count: int, wallets: int) -> list[tuple[int, int]]:
    """Seeded (wallet index, amount) pairs."""
    rng = random.Random(seed)
    return [(rng.randrange(wallets), rng.randint(1, 1000)) for _ in range(count)]


def requests(world: World, events: Sequence[tuple[int, int]], prefix: str) -> list[Any]:
    out = []
    for i, (w, amount) in enumerate(events):
        out.append(ledger.EntryRequest(
            program_id=world.program_id, kind="earn",
            lines=(ledger.Line(world.issued_id, world.unit_id, ledger.Side.DEBIT, amount),
                   ledger.Line(world.wallet_ids[w], world.unit_id, ledger.Side.CREDIT, amount)),
            source_type="event", source_id=f"evt_{prefix}{i}", entry_key=f"earn:{prefix}{i}",
            actor="bench",
        ))
    return out


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------
# The service


def post_single(world: World, reqs: Sequence[Any]) -> None:
    db, tenant_id = world.db, world.tenant_id
    for request in reqs:
        with db.transaction() as s:
            ledger.post_entry(s, tenant_id, request)


def post_grouped(world: World, reqs: Sequence[Any], callers: int) -> int:
    """``callers`` threads, each posting its share one entry per call through the ledger's
    group-commit writer (``ledger.BatchWriter``): every call returns once its entry is
    committed, and the writer commits whatever has queued meanwhile in one transaction.
    Returns the number of transactions."""
    writer = ledger.BatchWriter(world.db)
    tenant_id = world.tenant_id

    def caller(k: int) -> None:
        for request in reqs[k::callers]:
            writer.post(tenant_id, request)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        writer.close()
    return writer.batches


def post_batched(world: World, reqs: Sequence[Any], size: int) -> None:
    db, tenant_id = world.db, world.tenant_id
    for batch in chunks(reqs, size):
        with db.transaction() as s:
            ledger.post_entries(s, tenant_id, batch)


# ---------------------------------------------------------------------------------------------
# The limit: the same rows, raw


ENTRY_COLUMNS = ("tenant_id", "id", "seq", "program_id", "kind", "source_type", "source_id",
                 "entry_key", "reverses_entry_id", "hold_id", "memo", "meta", "actor",
                 "effective_at", "created_at", "hash")
POSTING_COLUMNS = ("tenant_id", "entry_id", "line_no", "account_id", "unit_id", "side", "amount",
                   "reverses_line_no")


@dataclass
class RawRows:
    entries: list[list[tuple[Any, ...]]]  # per batch
    postings: list[list[tuple[Any, ...]]]
    counters: list[list[tuple[int, int, str, str]]]  # per batch: (debits, credits, tenant, id)


def raw_rows(world: World, events: Sequence[tuple[int, int]], prefix: str, size: int,
             *, sqlite: bool, first_seq: int = 1) -> RawRows:
    """The rows ``post_entries`` writes for these events, built ahead (not timed)."""
    now = clock.now()
    stamp: Any = now.replace(tzinfo=None).isoformat(sep=" ") if sqlite else now
    out = RawRows([], [], [])
    previous = ""
    seq = first_seq - 1
    for batch_start in range(0, len(events), size):
        entries, postings = [], []
        debits: dict[str, int] = defaultdict(int)
        credits: dict[str, int] = defaultdict(int)
        for i in range(batch_start, min(batch_start + size, len(events))):
            w, amount = events[i]
            seq += 1
            entry_id = new_id("txn")
            wallet_id = world.wallet_ids[w]
            previous = hashlib.sha256(f"{previous}\n{seq}|{entry_id}|{amount}".encode()).hexdigest()
            entries.append((world.tenant_id, entry_id, seq, world.program_id, "earn", "event",
                            f"evt_{prefix}{i}", f"earn:{prefix}{i}", None, None, None, "{}",
                            "bench", stamp, stamp, previous))
            postings.append((world.tenant_id, entry_id, 1, world.issued_id, world.unit_id, "D",
                             amount, None))
            postings.append((world.tenant_id, entry_id, 2, wallet_id, world.unit_id, "C",
                             amount, None))
            debits[world.issued_id] += amount
            credits[wallet_id] += amount
        out.entries.append(entries)
        out.postings.append(postings)
        out.counters.append([(debits.get(a, 0), credits.get(a, 0), world.tenant_id, a)
                             for a in sorted(set(debits) | set(credits))])
    return out


COUNTER_SQL = ("UPDATE ledger_account SET debits_posted = debits_posted + {p}, "
               "credits_posted = credits_posted + {p} WHERE tenant_id = {p} AND id = {p}")


def _insert_sql(table: str, columns: Sequence[str], mark: str) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(mark for _ in columns)})")


class RawWriter:
    """Writes batch ``i`` of the raw rows with one driver connection of its own."""

    def __init__(self, url: str, rows: RawRows, *, method: str, counters: bool) -> None:
        self.rows, self.method, self.counters = rows, method, counters
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.lite = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            for pragma in ("foreign_keys = ON", "journal_mode = WAL", "synchronous = FULL"):
                self.lite.execute(f"PRAGMA {pragma}")
        else:
            self.pg = psycopg.connect(url)

    def write(self, i: int) -> None:
        entries, postings, deltas = self.rows.entries[i], self.rows.postings[i], self.rows.counters[i]
        if self.sqlite:
            conn = self.lite
            conn.execute("BEGIN IMMEDIATE")
            if self.counters:
                conn.executemany(COUNTER_SQL.format(p="?"), deltas)
            conn.executemany(_insert_sql("journal_entry", ENTRY_COLUMNS, "?"), entries)
            conn.executemany(_insert_sql("posting", POSTING_COLUMNS, "?"), postings)
            conn.execute("COMMIT")
            return
        with self.pg.transaction(), self.pg.cursor() as cur:
            if self.counters:
                cur.executemany(COUNTER_SQL.format(p="%s"), deltas)
            if self.method == "copy":
                with cur.copy(f"COPY journal_entry ({', '.join(ENTRY_COLUMNS)}) FROM STDIN") as cp:
                    for row in entries:
                        cp.write_row(row)
                with cur.copy(f"COPY posting ({', '.join(POSTING_COLUMNS)}) FROM STDIN") as cp:
                    for row in postings:
                        cp.write_row(row)
            else:
                cur.executemany(_insert_sql("journal_entry", ENTRY_COLUMNS, "%s"), entries)
                cur.executemany(_insert_sql("posting", POSTING_COLUMNS, "%s"), postings)

    def close(self) -> None:
        if self.sqlite:
            self.lite.close()
        else:
            self.pg.close()


def interleaved(writers: dict[str, Callable[[int], None]], batches: int) -> dict[str, float]:
    """Seconds each writer took for all batches, run batch by batch in turn (ABC CBA …), so a
    change of the machine's load hits every contender alike."""
    seconds = dict.fromkeys(writers, 0.0)
    names = list(writers)
    for i in range(batches):
        for name in names if i % 2 == 0 else reversed(names):
            took, _ = timed(lambda n=name, b=i: writers[n](b))
            seconds[name] += took
    return seconds


# ---------------------------------------------------------------------------------------------
# django-hordak (PostgreSQL), in a subprocess


def hordak(params: Params, threads: int = 1) -> dict[str, Any] | str:
    """Run bench/hordak_app/run.py on a fresh PostgreSQL database (``threads`` concurrent
    callers, one transaction per transfer); its JSON, or why not."""
    try:
        import hordak as _hordak  # noqa: F401
    except ImportError:
        return "django-hordak is not installed (pip install -e '.[bench]')"
    name = create_pg_database()
    try:
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.hordak_app.settings",
                   HORDAK_BENCH_DATABASE_URL=pg_url(name))
        proc = subprocess.run(
            [sys.executable, "-m", "bench.hordak_app.run", "--transfers", str(params.hordak),
             "--accounts", str(params.wallets), "--seed", str(params.seed),
             "--threads", str(threads)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            return f"hordak run failed: {proc.stderr.strip()[-2000:]}"
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        drop_pg_database(name)


# ---------------------------------------------------------------------------------------------
# The run


def _engine_run(engine: str, params: Params, figures: list[Figure], checks: list[Check],
                say: Callable[[str], None]) -> None:
    is_sqlite = engine == "sqlite"
    single_events = plan(params.seed, params.single, params.wallets)
    batched_events = plan(params.seed + 1, params.batched, params.wallets)
    warm_events = plan(params.seed + 2, params.batch_size, params.wallets)
    grouped_events = plan(params.seed + 3, 2 * params.single, params.wallets)
    with databases(engine) as dbs:
        # (a) one transaction per entry
        w1 = build_world(dbs.new(), params.wallets)
        warm(w1, warm_events)
        reqs = requests(w1, single_events, "s")
        gc.collect()
        seconds, _ = timed(lambda: post_single(w1, reqs))
        single = Figure("ledger.single", engine, len(reqs), seconds)
        say(f"  ledger.single engine={engine} rate={single.rate:.0f}/s")

        # (a') one entry per call from concurrent callers, through the group-commit writer
        w4 = build_world(dbs.new(), params.wallets)
        warm(w4, warm_events)
        greqs = requests(w4, grouped_events, "g")
        gc.collect()
        seconds, transactions = timed(lambda: post_grouped(w4, greqs, params.callers))
        grouped = Figure("ledger.grouped", engine, len(greqs), seconds,
                         note=f"{params.callers} callers, {transactions} transactions",
                         extra={"callers": params.callers, "transactions": transactions})
        say(f"  ledger.grouped engine={engine} rate={grouped.rate:.0f}/s "
            f"({params.callers} callers, {transactions} transactions)")

        # (b) batches through post_entries and (c) the same rows raw, each in a fresh database
        # of the same schema, interleaved batch by batch
        w2 = build_world(dbs.new(), params.wallets)
        warm(w2, warm_events)
        breqs = requests(w2, batched_events, "b")
        batches = chunks(breqs, params.batch_size)

        def service_batch(i: int) -> None:
            with w2.db.transaction() as s:
                ledger.post_entries(s, w2.tenant_id, batches[i])

        variants = [("raw.insert", "executemany" if is_sqlite else "copy", False)]
        if not is_sqlite:
            variants.append(("raw.insert", "executemany", False))
        variants.append(("raw.insert+counters", "executemany" if is_sqlite else "copy", True))
        raw_worlds: list[tuple[str, str, bool, World, RawWriter]] = []
        contenders: dict[str, Callable[[int], None]] = {"ledger.batched": service_batch}
        for name, method, counters in variants:
            w3 = build_world(dbs.new(), params.wallets)
            warm(w3, warm_events)
            rows = raw_rows(w3, batched_events, "b", params.batch_size, sqlite=is_sqlite,
                            first_seq=len(warm_events) + 1)
            writer = RawWriter(w3.db.url, rows, method=method, counters=counters)
            raw_worlds.append((name, method, counters, w3, writer))
            contenders[f"{name}/{method}"] = writer.write
        # The prebuilt requests and rows (millions of objects) are the benchmark's, not the
        # service's: keep the garbage collector from rescanning them during the timings.
        gc.collect()
        gc.freeze()
        seconds = interleaved(contenders, len(batches))
        gc.unfreeze()
        batched = Figure("ledger.batched", engine, len(breqs), seconds["ledger.batched"],
                         extra={"batch_size": params.batch_size, "interleaved": True})
        say(f"  ledger.batched engine={engine} rate={batched.rate:.0f}/s")
        raws: list[Figure] = []
        for name, method, counters, w3, writer in raw_worlds:
            writer.close()
            fig = Figure(name, engine, len(batched_events), seconds[f"{name}/{method}"],
                         note=method, extra={"method": method, "interleaved": True})
            say(f"  {name} engine={engine} rate={fig.rate:.0f}/s ({method})")
            raws.append(fig)
            with w3.db.read() as s:
                n = s.scalar(select(func.count()).select_from(ledger.JournalEntry))
            checks.append(Check(f"raw.{method}{'+counters' if counters else ''}.rows", engine,
                                n == len(batched_events) + len(warm_events), f"{n} entries"))
            w3.db.dispose()
        limit = max((f for f in raws if f.name == "raw.insert"), key=lambda f: f.rate)
        batched.limit_name, batched.limit_rate, batched.goal = "raw.insert", limit.rate, 0.5
        batched.extra["limit_method"] = limit.extra["method"]

        # (d) django-hordak on PostgreSQL; on SQLite the goal is against the PostgreSQL figure
        hordak_rate = _hordak_rate(figures)
        if not is_sqlite:
            outcome = hordak(params)
            if isinstance(outcome, str):
                say(f"  hordak: {outcome}")
                checks.append(Check("hordak.run", engine, False, outcome))
            else:
                h = Figure("hordak.transfer_to", "postgres", int(outcome["transfers"]),
                           float(outcome["seconds"]), extra=outcome)
                say(f"  hordak.transfer_to engine=postgres rate={h.rate:.0f}/s")
                figures.append(h)
                checks.append(Check("hordak.balances", engine, bool(outcome["balanced"]),
                                    str(outcome.get("detail", ""))))
                hordak_rate = h.rate
            outcome = hordak(params, threads=params.callers)
            if isinstance(outcome, str):
                say(f"  hordak ({params.callers} threads): {outcome}")
                checks.append(Check("hordak.concurrent.run", engine, False, outcome))
            else:
                hc = Figure("hordak.transfer_to.concurrent", "postgres",
                            int(outcome["transfers"]), float(outcome["seconds"]),
                            note=f"{params.callers} threads", extra=outcome)
                say(f"  hordak.transfer_to.concurrent engine=postgres rate={hc.rate:.0f}/s")
                figures.append(hc)
                checks.append(Check("hordak.concurrent.balances", engine,
                                    bool(outcome["balanced"]), str(outcome.get("detail", ""))))
        hordak_name = "hordak.transfer_to" if hordak_rate else f"hordak.reference({HORDAK_REFERENCE:.0f}/s)"
        hordak_rate = hordak_rate or HORDAK_REFERENCE
        single.limit_name, single.limit_rate, single.goal = hordak_name, hordak_rate, 2.0
        figures.append(single)
        figures.append(Figure("ledger.single.stretch", engine, single.count, single.seconds,
                              limit_name=hordak_name, limit_rate=hordak_rate, goal=4.0))
        # the grouped figure against hordak's better figure: sequential or as many callers
        best_name, best_rate = max(
            [(hordak_name, hordak_rate)]
            + [(f.name, f.rate) for f in figures if f.name == "hordak.transfer_to.concurrent"],
            key=lambda pair: pair[1])
        grouped.limit_name, grouped.limit_rate, grouped.goal = best_name, best_rate, 2.0
        figures.append(grouped)
        figures.append(Figure("ledger.grouped.stretch", engine, grouped.count, grouped.seconds,
                              limit_name=best_name, limit_rate=best_rate, goal=4.0))
        figures.append(batched)
        figures.append(Figure("ledger.batched.vs_hordak", engine, batched.count, batched.seconds,
                              limit_name=hordak_name, limit_rate=hordak_rate, goal=50.0))
        figures.extend(raws)

        # correctness of what the service wrote
        say(f"  checking {engine}…")
        checks.extend(check_world(w1, engine, "single", [*warm_events, *single_events],
                                  reqs[:200]))
        checks.extend(check_world(w2, engine, "batched", [*warm_events, *batched_events],
                                  breqs[:params.batch_size]))
        checks.extend(check_world(w4, engine, "grouped", [*warm_events, *grouped_events],
                                  greqs[:200]))
        w4.db.dispose()
        w1.db.dispose()
        w2.db.dispose()


def _hordak_rate(figures: list[Figure]) -> float | None:
    for f in figures:
        if f.name == "hordak.transfer_to":
            return f.rate
    return None


def run(args: argparse.Namespace) -> bool:
    params = Params.of(args)
    engines = list(args.engine)
    # PostgreSQL first, so SQLite's goals against hordak use the figure measured in this run.
    engines.sort(key=lambda e: e != "postgres")
    figures: list[Figure] = []
    checks: list[Check] = []
    print(f"load average at start: {os.getloadavg()}")
    print(f"ledger: single={params.single} batched={params.batched} "
          f"batch_size={params.batch_size} wallets={params.wallets} hordak={params.hordak} "
          f"callers={params.callers}",
          flush=True)
    for engine in engines:
        if engine == "postgres" and not postgres_available():
            checks.append(Check("postgres.available", engine, False, "no PostgreSQL answers"))
            continue
        _engine_run(engine, params, figures, checks, lambda m: print(m, flush=True))
    print()
    for f in figures:
        if f.goal is not None:
            print(f.line())
    for f in figures:
        if f.goal is None:
            print(f.line())
    for c in checks:
        print(c.line())
    path = write_results("ledger", vars(params) | {"quick": bool(args.quick),
                                                   "at": datetime.now().isoformat()},
                         figures, checks)
    print(f"results: {path.relative_to(ROOT)}")
    return all(c.ok for c in checks) and all(
        f.passed is not False for f in figures if not f.name.endswith(".stretch")
    )
