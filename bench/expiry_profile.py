"""``python -m bench.expiry_profile [--engine E] [--members N] [--runs K]``: where the expiry
job's time goes, per step of :mod:`allegiance.ledger.expiry_bulk` (a diagnostic, not a
benchmark with goals).

The data of ``bench expiry`` (same generator, same load) is loaded once per engine into a
snapshot (a SQLite file; a PostgreSQL template database); each run starts from a copy of it,
times ``tiers.recalculate`` and then the job with every step of a chunk timed (the reads, the
counters, the journal, the aging, the lots, the commit), and prints the sums. The snapshots
are kept (``--keep``) for the next invocation: remove them by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from allegiance import ledger, tiers
from allegiance.kit import clock, sequences
from allegiance.kit.db import Database
from allegiance.kit.migrate import upgrade
from allegiance.ledger import aging_writes, expiry
from allegiance.ledger import expiry_bulk as bulk
from bench.common import PG_ADMIN, create_pg_database, drop_pg_database, pg_url
from bench.expiry import NOW, generate, load, setup_program

Timings = dict[str, float]
EXPLAIN_MS: int | None = None


def _setup(engine: str, url: str, data: Any) -> dict[str, str]:
    db = Database(url)
    try:
        ids = setup_program(db)
    finally:
        db.dispose()
    load(engine, url, ids, data)
    return ids


def _instrument(timings: Timings) -> Callable[[], None]:
    """Wrap the job's steps so each call adds its seconds to ``timings``; returns the undo."""
    targets: list[tuple[Any, str, str]] = [
        (bulk, "due_chunk", "read due"), (bulk, "inactive_chunk", "read inactive"),
        (bulk, "_debit_wallets_sqlite", "counters"), (bulk.repo, "apply_deltas", "counters"),
        (bulk, "_check_unchanged", "counters check"),
        (bulk, "_debit_wallets_postgres", "counters"), (bulk, "program_account", "accounts"),
        (sequences, "reserve", "journal reserve"),
        (bulk, "_write_journal_sqlite", "journal sql"),
        (bulk, "_write_journal_postgres", "journal sql"),
        (bulk, "_write_journal", "journal (all)"), (bulk, "_track_aging", "aging"),
        (bulk, "_take_from_lots", "lots"), (aging_writes, "pause", "pause"),
    ]
    undo: list[tuple[Any, str, Any]] = []
    for module, name, label in targets:
        original = getattr(module, name, None)
        if original is None:  # a step of another version of the job
            continue

        def wrapped(*args: Any, _f: Any = original, _l: str = label, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                timings[_l] += time.perf_counter() - started

        undo.append((module, name, original))
        setattr(module, name, functools.wraps(original)(wrapped))

    def restore() -> None:
        for module, name, original in undo:
            setattr(module, name, original)
    return restore


class _TimedCursor:
    """A driver cursor (or connection) whose ``execute`` adds its seconds to ``timings`` under
    the statement's first words."""

    def __init__(self, inner: Any, timings: Timings) -> None:
        self._inner, self._timings = inner, timings

    def execute(self, sql: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = self._inner.execute(sql, *args, **kwargs)
        finally:
            label = "sql: " + " ".join(str(sql).split())[:70]
            self._timings[label] += time.perf_counter() - started
        return self if result is self._inner else result

    def cursor(self, *args: Any, **kwargs: Any) -> _TimedCursor:
        return _TimedCursor(self._inner.cursor(*args, **kwargs), self._timings)

    def __enter__(self) -> _TimedCursor:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._inner.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _time_statements(timings: Timings) -> Callable[[], None]:
    """Every driver statement of the job's modules timed (``driver_connection`` wrapped)."""
    modules = [bulk, aging_writes, sequences]
    originals = [m.driver_connection for m in modules]

    @contextlib.contextmanager
    def timed(session: Session) -> Iterator[Any]:
        with originals[0](session) as conn:
            yield _TimedCursor(conn, timings)

    for module in modules:
        module.driver_connection = timed  # type: ignore[attr-defined]

    def restore() -> None:
        for module, original in zip(modules, originals, strict=True):
            module.driver_connection = original  # type: ignore[attr-defined]
    return restore


def _timed_transaction(db: Database, timings: Timings) -> Callable[[], Any]:
    @contextlib.contextmanager
    def transaction() -> Iterator[Session]:
        started = time.perf_counter()
        with db.transaction() as session:
            if EXPLAIN_MS is not None and not db.is_sqlite:
                # plans of the slow statements (analyzed) in the server's log
                session.execute(text("LOAD 'auto_explain'"))
                session.execute(text(f"SET LOCAL auto_explain.log_min_duration = {EXPLAIN_MS}"))
                session.execute(text("SET LOCAL auto_explain.log_analyze = on"))
            yield session
            body = time.perf_counter()
        timings["commit"] += time.perf_counter() - body
        timings["chunks"] += 1
        timings["transactions (all)"] += time.perf_counter() - started
    return transaction


def _run(url: str, ids: dict[str, str], batch: int) -> tuple[float, float, Timings]:
    timings: Timings = defaultdict(float)
    db = Database(url)
    try:
        with clock.frozen(NOW):
            started = time.perf_counter()
            with db.transaction() as s:
                tiers.recalculate(s, ids["tenant"], ids["program"], at=NOW)
            limit = time.perf_counter() - started
            restore = _instrument(timings)
            unstatement = _time_statements(timings)
            try:
                started = time.perf_counter()
                report = ledger.run_expiry(_timed_transaction(db, timings), batch=batch)
                seconds = time.perf_counter() - started
            finally:
                unstatement()
                restore()
        timings["lots expired"] = report.lots
    finally:
        db.dispose()
    return limit, seconds, timings


def _snapshot(engine: str, members: int, seed: int, keep: Path) -> tuple[str, dict[str, str]]:
    """The loaded database of ``members`` (built once, kept in ``keep`` / as a PostgreSQL
    database named after it) and the ids of its tenant, program and units."""
    keep.mkdir(parents=True, exist_ok=True)
    meta = keep / f"{engine}-{members}-{seed}.json"
    if meta.exists():
        saved = json.loads(meta.read_text())
        return saved["source"], saved["ids"]
    data = generate(members, 3, 0.25, seed)
    if engine == "sqlite":
        path = keep / f"{engine}-{members}-{seed}.db"
        path.unlink(missing_ok=True)
        upgrade(f"sqlite:///{path}")
        source = str(path)
        url = f"sqlite:///{path}"
    else:
        source = f"allegiance_expsnap_{members}_{seed}"
        drop_pg_database(source)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{source}"')
        url = pg_url(source)
        upgrade(url)
    started = time.perf_counter()
    ids = _setup(engine, url, data)
    if engine == "sqlite":  # everything in the file itself: the runs copy the file alone
        with contextlib.closing(sqlite3.connect(source)) as lite:
            lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"{engine}: snapshot {source} loaded in {time.perf_counter() - started:.1f}s",
          flush=True)
    meta.write_text(json.dumps({"source": source, "ids": ids}))
    return source, ids


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.expiry_profile")
    parser.add_argument("--engine", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--keep", type=Path, default=Path("/tmp/expiry-profile"),
                        help="where the loaded snapshots are kept between invocations")
    parser.add_argument("--batch", type=int, default=expiry.CHUNK,
                        help="lots per chunk (the job's default)")
    parser.add_argument("--explain", type=int, default=None, metavar="MS",
                        help="PostgreSQL: log the analyzed plans of statements slower than MS")
    args = parser.parse_args()
    global EXPLAIN_MS
    EXPLAIN_MS = args.explain
    for engine in args.engine:
        source, ids = _snapshot(engine, args.members, args.seed, args.keep)
        for run in range(args.runs):
            if engine == "sqlite":
                copy = args.keep / f"run-{run}.db"
                shutil.copyfile(source, copy)
                target, drop = f"sqlite:///{copy}", None
            else:
                name = create_pg_database(source)
                target, drop = pg_url(name), name
            try:
                limit, seconds, timings = _run(target, ids, args.batch)
            finally:
                if drop:
                    drop_pg_database(drop)
                else:
                    copy.unlink(missing_ok=True)
            print(f"{engine} run {run}: job {seconds:.2f}s recalculation {limit:.2f}s "
                  f"ratio {seconds / limit:.2f} (load {os.getloadavg()[0]:.1f})", flush=True)
            for label, value in sorted(timings.items(), key=lambda kv: -kv[1]):
                print(f"    {label:22} {value:9.2f}", flush=True)


if __name__ == "__main__":
    main()
