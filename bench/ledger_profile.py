"""``python -m bench.ledger_profile [--engine E] [--batches N] [--wallets N]``: where a batch
of 1 000 earn entries spends its time, per component (a diagnostic, not a benchmark with goals).

Each variant writes the same raw ``journal_entry`` and ``posting`` rows as ``bench ledger``'s
``raw.insert`` into its own fresh migrated database, with one part of the schema taken away
(the aging trigger on ``posting``, the liability trigger(s) on ``ledger_aging``, the secondary
indexes), or by another driver path (PostgreSQL: ``COPY``, pipelined ``executemany``, one
``INSERT … SELECT FROM unnest(…)`` per table); then the service (``ledger.post_entries``) on
the full schema. The variants run interleaved batch by batch (as in ``bench ledger``), so a
change of the machine's load hits them alike. The differences between lines are what each
component costs per entry.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from typing import Any

from allegiance import ledger
from bench.common import databases
from bench.ledger import (
    ENTRY_COLUMNS,
    POSTING_COLUMNS,
    RawWriter,
    build_world,
    chunks,
    plan,
    raw_rows,
    requests,
    warm,
)

_INDEXES = ("ix_journal_entry_source", "ix_journal_entry_reverses",
            "ix_journal_entry_program_time", "ix_posting_account")
_SQLITE_LIABILITY = ("liability_aging_insert", "liability_aging_update",
                     "liability_aging_rekey", "liability_aging_delete")


def _drop(url: str, sqlite: bool, *, aging: bool, liability: bool, indexes: bool) -> None:
    statements = []
    if aging:
        statements.append("DROP TRIGGER ledger_aging_track" if sqlite
                          else "DROP TRIGGER ledger_aging_track ON posting")
    if liability:
        statements.extend(f"DROP TRIGGER {name}" for name in _SQLITE_LIABILITY) if sqlite else \
            statements.append("DROP TRIGGER liability_aging_track ON ledger_aging")
    if indexes:
        statements.extend(f"DROP INDEX {name}" for name in _INDEXES)
    if not statements:
        return
    if sqlite:
        import sqlite3
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        for s in statements:
            conn.execute(s)
        conn.commit()
        conn.close()
    else:
        import psycopg
        with psycopg.connect(url, autocommit=True) as pg:
            for s in statements:
                pg.execute(s)


def _unnest_writer(writer: RawWriter) -> Callable[[int], None]:
    """The same rows by one ``INSERT … SELECT FROM unnest(arrays)`` per table."""
    entry_types = ("text", "text", "bigint", "text", "text", "text", "text", "text", "text",
                   "text", "text", "json", "text", "timestamptz", "timestamptz", "text")
    posting_types = ("text", "text", "bigint", "text", "text", "text", "bigint", "bigint")

    def sql(table: str, columns: tuple[str, ...], types: tuple[str, ...]) -> str:
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        return (f"INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT * FROM unnest({arrays})")

    entry_sql = sql("journal_entry", ENTRY_COLUMNS, entry_types)
    posting_sql = sql("posting", POSTING_COLUMNS, posting_types)

    def write(i: int) -> None:
        entries, postings = writer.rows.entries[i], writer.rows.postings[i]
        with writer.pg.transaction(), writer.pg.cursor() as cur:
            cur.execute(entry_sql, [list(col) for col in zip(*entries, strict=True)])
            cur.execute(posting_sql, [list(col) for col in zip(*postings, strict=True)])

    return write


def run(engine: str, batches: int, wallets: int, seed: int) -> None:
    sqlite = engine == "sqlite"
    size = 1000
    events = plan(seed, batches * size, wallets)
    warm_events = plan(seed + 2, size, wallets)
    method = "executemany" if sqlite else "copy"
    variants: list[tuple[str, str, dict[str, bool]]] = [
        ("raw full schema", method, {}),
        ("raw - aging trigger", method, {"aging": True}),
        ("raw - liability trigger", method, {"liability": True}),
        ("raw - both triggers", method, {"aging": True, "liability": True}),
        ("raw - triggers - 4 secondary indexes", method,
         {"aging": True, "liability": True, "indexes": True}),
    ]
    if not sqlite:
        variants += [("raw full schema", "executemany", {}), ("raw full schema", "unnest", {})]
    writers: dict[str, Callable[[int], None]] = {}
    keep: list[Any] = []
    with databases(engine) as dbs:
        for label, how, drops in variants:
            world = build_world(dbs.new(), wallets)
            warm(world, warm_events)
            _drop(world.db.url, sqlite, aging=drops.get("aging", False),
                  liability=drops.get("liability", False), indexes=drops.get("indexes", False))
            rows = raw_rows(world, events, "b", size, sqlite=sqlite, first_seq=size + 1)
            writer = RawWriter(world.db.url, rows, method="executemany" if how == "unnest" else how,
                               counters=False)
            keep.append((world, writer))
            writers[f"{label} ({how})"] = _unnest_writer(writer) if how == "unnest" else writer.write
        world = build_world(dbs.new(), wallets)
        warm(world, warm_events)
        reqs = chunks(requests(world, events, "b"), size)
        keep.append((world, None))

        def service(i: int) -> None:
            with world.db.transaction() as s:
                ledger.post_entries(s, world.tenant_id, reqs[i])

        writers["service post_entries (full schema)"] = service
        seconds = dict.fromkeys(writers, 0.0)
        names = list(writers)
        gc.collect()
        gc.freeze()
        for i in range(batches):
            for name in names if i % 2 == 0 else reversed(names):
                start = time.perf_counter()
                writers[name](i)
                seconds[name] += time.perf_counter() - start
        gc.unfreeze()
        print(f"engine={engine} entries={batches * size} wallets={wallets} "
              f"loadavg={os.getloadavg()[0]:.2f}")
        for name in names:
            per = seconds[name] / (batches * size) * 1e6
            print(f"  {name:<55} {batches * size / seconds[name]:>8.0f}/s {per:>7.1f} µs/entry")
        for w, writer in keep:
            if writer is not None:
                writer.close()
            w.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--wallets", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for engine in args.engine or ["postgres", "sqlite"]:
        run(engine, args.batches, args.wallets, args.seed)


if __name__ == "__main__":
    main()
