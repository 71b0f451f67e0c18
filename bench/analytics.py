"""``python -m bench analytics``: the reports on a large ledger.

Generates members, earn and redeem entries (two postings each) over two years and a purchase
event per earning, bulk-loads them (not timed), then times, on each engine:

* ``liability`` (goal ≤ 1 s on 10 M ledger rows and 1 M members) and checks that it
  reconciles with the wallets' counters and with the generator's own sums;
* per-member aggregates: the CLV inputs (purchases read, one RFM summary per member; ≤ 3 s);
* cohorts + CLV fit: retention by enrolment month and the BG/NBD + Gamma-Gamma fit (≤ 15 s).

The DuckDB comparison of the issue is run only when ``duckdb`` is installed (it is not a
dependency); otherwise the line says so.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from allegiance import analytics, tenants
from allegiance.analytics import clv_report
from allegiance.kit import clock
from allegiance.kit.db import Database
from bench.common import databases, postgres_available, timed

NOW = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 730
CHUNK = 50_000
GOALS = {"liability": 1.0, "aggregates": 3.0, "cohorts_and_fit": 15.0}


@dataclass
class Data:
    member: np.ndarray  # per entry
    earn: np.ndarray  # per entry: True earn, False redeem
    amount: np.ndarray
    day: np.ndarray  # days before NOW
    n_members: int

    def balances(self) -> np.ndarray:
        signed = np.where(self.earn, self.amount, -self.amount)
        return np.bincount(self.member, weights=signed, minlength=self.n_members).astype(np.int64)


def generate(n_members: int, n_rows: int, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    entries = n_rows // 2
    member = rng.integers(0, n_members, entries)
    earn = rng.random(entries) < 0.7
    amount = rng.integers(1, 500, entries)
    day = np.sort(rng.integers(0, DAYS, entries))[::-1].copy()
    return Data(member, earn, amount, day, n_members)


def _stamp(engine: str, at: datetime) -> Any:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f") if engine == "sqlite" else at


def _rows(engine: str, ids: dict[str, str], data: Data) -> Iterator[tuple[str, tuple[str, ...],
                                                                        list[tuple[Any, ...]]]]:
    t, p, u = ids["tenant"], ids["program"], ids["unit"]
    created = _stamp(engine, NOW - timedelta(days=DAYS + 1))
    no: Any = 0 if engine == "sqlite" else False
    balances_c = np.bincount(data.member, weights=np.where(data.earn, data.amount, 0),
                             minlength=data.n_members).astype(np.int64)
    balances_d = np.bincount(data.member, weights=np.where(data.earn, 0, data.amount),
                             minlength=data.n_members).astype(np.int64)
    for first in range(0, data.n_members, CHUNK):
        members = range(first, min(first + CHUNK, data.n_members))
        yield "account", ("tenant_id", "id", "name", "member_number", "attributes", "status",
                          "created_at", "updated_at"), [
            (t, f"acc_b{i:024d}", "Bench", f"B{i:09d}", "{}", "active", created, created)
            for i in members]
        yield "enrolment", ("tenant_id", "id", "program_id", "account_id", "status",
                            "application", "created_at", "updated_at"), [
            (t, f"enr_b{i:024d}", p, f"acc_b{i:024d}", "active", "{}", created, created)
            for i in members]
        yield "ledger_account", ("tenant_id", "id", "program_id", "unit_id", "owner_type",
                                 "owner_id", "purpose", "normal", "no_overdraw", "floor",
                                 "debits_posted", "credits_posted", "debits_pending",
                                 "credits_pending", "created_at"), [
            (t, f"wal_b{i:024d}", p, u, "account", f"acc_b{i:024d}", "wallet", "credit", no, 0,
             int(balances_d[i]), int(balances_c[i]), 0, 0, created) for i in members]
    issued = int(data.amount[data.earn].sum())
    redeemed = int(data.amount[~data.earn].sum())
    yield "ledger_account", ("tenant_id", "id", "program_id", "unit_id", "owner_type", "owner_id",
                             "purpose", "normal", "no_overdraw", "floor", "debits_posted",
                             "credits_posted", "debits_pending", "credits_pending",
                             "created_at"), [
        (t, "lac_bissued", p, u, "program", p, "issued", "debit", no, 0, issued, 0, 0, 0, created),
        (t, "lac_bredeemed", p, u, "program", p, "redeemed", "credit", no, 0, 0, redeemed, 0, 0,
         created)]
    for first in range(0, len(data.member), CHUNK):
        span = range(first, min(first + CHUNK, len(data.member)))
        entries, postings, events = [], [], []
        for k in span:
            m, is_earn, amount = int(data.member[k]), bool(data.earn[k]), int(data.amount[k])
            at = _stamp(engine, NOW - timedelta(days=int(data.day[k]), hours=12))
            entry = f"jen_b{k:024d}"
            entries.append((t, entry, k + 1, p, "earn" if is_earn else "redeem", "{}", at, at,
                            "0" * 64))
            wallet = f"wal_b{m:024d}"
            other = "lac_bissued" if is_earn else "lac_bredeemed"
            debit, credit = (other, wallet) if is_earn else (wallet, other)
            postings += [(t, entry, 1, debit, u, "D", amount), (t, entry, 2, credit, u, "C", amount)]
            if is_earn:
                events.append((t, f"evt_b{k:024d}", p, "purchase", "bench", str(k), "operator",
                               f"acc_b{m:024d}", "{}", at, "USD", amount * 100, 0, 0, "{}",
                               "processed", at, at))
        yield "journal_entry", ("tenant_id", "id", "seq", "program_id", "kind", "meta",
                                "effective_at", "created_at", "hash"), entries
        yield "posting", ("tenant_id", "entry_id", "line_no", "account_id", "unit_id", "side",
                          "amount"), postings
        yield "event", ("tenant_id", "id", "program_id", "kind", "source", "external_id",
                        "reported_by", "account_id", "match_key", "occurred_at", "currency",
                        "amount", "quantity", "returned_amount", "attributes", "status",
                        "created_at", "processed_at"), events


def load(engine: str, url: str, ids: dict[str, str], data: Data) -> None:
    """Bulk-load with the driver, constraint checks off (consistent by construction)."""
    if engine == "sqlite":
        lite = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            lite.execute("PRAGMA journal_mode = WAL")
            lite.execute("PRAGMA synchronous = OFF")
            lite.execute("PRAGMA foreign_keys = OFF")
            lite.execute("BEGIN IMMEDIATE")
            for table, cols, rows in _rows(engine, ids, data):
                lite.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                                 f"({', '.join('?' for _ in cols)})", rows)
            lite.execute("COMMIT")
            lite.execute("ANALYZE")
        finally:
            lite.close()
        return
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        with pg.transaction(), pg.cursor() as cur:
            cur.execute("SET LOCAL session_replication_role = replica")
            for table, cols, rows in _rows(engine, ids, data):
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
        pg.autocommit = True
        pg.execute("VACUUM ANALYZE")


def run_engine(engine: str, url: str, data: Data) -> bool:
    db = Database(url)
    try:
        with db.transaction() as s:
            tenant = tenants.create_tenant(s, "Bench")
            program = tenants.create_program(s, tenant.id, code="bench", name="Bench",
                                             base_currency="USD")
            unit = tenants.create_unit(s, tenant.id, program.id, code="points", name="Points",
                                       kind="points", value_in_base="0.01",
                                       expiry_policy={"kind": "never"})
            ids = {"tenant": tenant.id, "program": program.id, "unit": unit.id}
        seconds, _ = timed(lambda: load(engine, url, ids, data))
        print(f"analytics.load engine={engine} rows={2 * len(data.member)} "
              f"members={data.n_members} seconds={seconds:.1f} (not a goal)")
        ok = True
        with clock.frozen(NOW), db.read() as s:
            took, report = timed(lambda: analytics.liability(s, ids["tenant"], ids["program"]))
            unit_row = report.summary["units"][0]
            expected = int(data.balances().sum())
            right = unit_row["reconciled"] and unit_row["outstanding"] == expected
            ok &= _line("liability", engine, took, right, f"outstanding {expected}")
            end = date(2026, 10, 31)
            took, frame = timed(lambda: clv_report.purchases(
                s, ids["tenant"], ids["program"], start=None, end=NOW))
            took_rfm, rfm = timed(lambda: analytics.rfm_summary(
                frame["member"].to_numpy(), frame["day"].to_numpy().astype("datetime64[D]"),
                frame["amount"].to_numpy(), np.datetime64(end, "D")))
            buyers = len(np.unique(data.member[data.earn]))
            ok &= _line("aggregates", engine, took + took_rfm, len(rfm) == buyers,
                        f"{len(rfm)} members summarised")
            span = analytics.period("2024-11-01", "2026-10-31", NOW)
            took, _ = timed(lambda: analytics.retention(s, ids["tenant"], ids["program"], span))
            took_fit, _ = timed(lambda: (analytics.fit_bgnbd(rfm.x, rfm.t_x, rfm.T),
                                         analytics.fit_gamma_gamma(rfm.x, rfm.m_x)))
            ok &= _line("cohorts_and_fit", engine, took + took_fit, True, "")
        try:
            import duckdb  # noqa: F401
            print("analytics.duckdb: installed, comparison not implemented yet")
        except ImportError:
            print("analytics.duckdb: not installed; the ≤ 3× DuckDB comparison is skipped")
        return ok
    finally:
        db.dispose()


def _line(name: str, engine: str, seconds: float, right: bool, note: str) -> bool:
    goal = GOALS[name]
    passed = right and seconds <= goal
    print(f"analytics.{name} engine={engine} seconds={seconds:.2f} goal<={goal:g}s "
          f"{'PASS' if passed else 'FAIL'}" + ("" if right else " (WRONG ANSWER)")
          + (f" ({note})" if note else ""))
    return passed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--analytics-members", type=int, default=1_000_000,
                        help="analytics: members (quick: 10,000)")
    parser.add_argument("--analytics-rows", type=int, default=10_000_000,
                        help="analytics: ledger rows, two per entry (quick: 200,000)")


def run(args: argparse.Namespace) -> bool:
    members = 10_000 if args.quick else args.analytics_members
    rows = 200_000 if args.quick else args.analytics_rows
    data = generate(members, rows, args.seed)
    ok = True
    for engine in args.engine:
        if engine == "postgres" and not postgres_available():
            print("analytics engine=postgres SKIPPED (no server)")
            continue
        with databases(engine) as dbs:
            ok = run_engine(engine, dbs.new(), data) and ok
    return ok
