"""``python -m bench analytics``: the reports on a large ledger, against DuckDB.

Generates members (with tiers and enrolment dates over a year), earn and redeem entries (two
postings each) over two years and a purchase event per earning, bulk-loads them with the
driver (not timed; the ledger's aging rows, which the posting trigger keeps, are computed
from the same arrays and loaded with them; the analytics summaries the other triggers keep
are built after the load by the migration's backfill statements), loads the same rows into an in-memory DuckDB
through Parquet (not timed), then times on each engine, back to back with DuckDB:

* ``liability`` (goal ≤ 1 s on 10 M ledger rows and 1 M members): the report "now", checked
  against the wallets' counters, the generator's sums and DuckDB's FIFO aging from the
  postings (every tier × age bucket equal);
* ``aggregates``: the RFM summary per member, the CLV inputs (≤ 3 s), checked against
  DuckDB's;
* ``cohorts_and_fit``: retention by enrolment month plus the BG/NBD and Gamma-Gamma fits
  (≤ 15 s), the cohorts checked against DuckDB's;
* ``balance_p99``: balance reads through the HTTP API (``GET /v1/wallets/{id}``, sent by
  ``bench.api_load`` in a process of its own, after an untimed warm-up), open loop
  at 200 requests/s for D seconds, while a separate process runs the three reports in a loop
  (goal p99 ≤ 50 ms); the same reads on the idle server for comparison.

Each timed figure must also be ≤ 3× DuckDB's time for the same report in the same run.
Prints ``analytics.NAME engine=… time=… limit=duckdb:… ratio=… goal=… PASS|FAIL`` and writes
``bench/results/analytics-<time>.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from allegiance import analytics, tenants
from allegiance.analytics import clv_report
from allegiance.analytics import sql as analytics_sql
from allegiance.analytics.liability import aged_now
from allegiance.kit import clock, priority, zones
from allegiance.kit.db import Database
from bench import analytics_duck as duck
from bench.api import load as http_load
from bench.api import server
from bench.common import (
    Check,
    Figure,
    bulk_load,
    databases,
    postgres_available,
    timed,
    write_results,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)
TODAY = (NOW.date() - date(1970, 1, 1)).days
DAYS = 730
CHUNK = 50_000
GOALS = {"liability": 1.0, "aggregates": 3.0, "cohorts_and_fit": 15.0}
RATIO = 3.0
P99_MS = 50.0
RATE = 200
TIERS = np.array(["", "silver", "gold"])
SPAN = ("2024-11-01", "2026-10-31")
ZONES = ("UTC", "America/Los_Angeles", "Asia/Kolkata")
CALIBRATION_END = date(2026, 10, 31)


@dataclass
class Data:
    member: np.ndarray  # per entry
    earn: np.ndarray  # per entry: True earn, False redeem
    amount: np.ndarray
    day: np.ndarray  # per entry: days before NOW (the entry is at NOW − day days − 12 h)
    n_members: int
    tier: np.ndarray  # per member: "", "silver", "gold"
    enrolled: np.ndarray  # per member: days before NOW of the enrolment

    def balances(self) -> np.ndarray:
        signed = np.where(self.earn, self.amount, -self.amount)
        return np.bincount(self.member, weights=signed, minlength=self.n_members).astype(np.int64)

    def day_number(self) -> np.ndarray:
        """Per entry: its UTC day as days since 1970-01-01."""
        return TODAY - self.day - 1

    def aging(self) -> pl.DataFrame:
        """What the posting trigger keeps: per member and day, credits, debits and the part
        of the balance those credits make up (newest first)."""
        frame = pl.DataFrame({"member": self.member, "day": self.day_number(),
                              "credit": np.where(self.earn, self.amount, 0),
                              "debit": np.where(self.earn, 0, self.amount)})
        grouped = frame.group_by("member", "day").agg(pl.sum("credit"), pl.sum("debit"))
        return grouped.sort(["member", "day"], descending=[False, True]).with_columns(
            (pl.col("credit") - pl.col("debit")).sum().over("member").alias("balance"),
            pl.col("credit").cum_sum().over("member").alias("newer"),
        ).with_columns(
            pl.min_horizontal(pl.col("credit"),
                              pl.max_horizontal(pl.lit(0), pl.col("balance") - pl.col("newer")
                                                + pl.col("credit"))).alias("remaining"))


def generate(n_members: int, n_rows: int, seed: int) -> Data:
    """Entries of members who buy at their own rate (Gamma-distributed weights) during their
    own active span (from a first day to an exponentially distributed drop-out), so that the
    purchase histories look like the ones BG/NBD describes."""
    rng = np.random.default_rng(seed)
    entries = n_rows // 2
    weight = rng.gamma(0.8, 1.0, n_members)
    member = rng.choice(n_members, entries, p=weight / weight.sum())
    first = rng.integers(0, DAYS, n_members)  # days before NOW of the first activity
    life = np.minimum(rng.exponential(300.0, n_members), first)
    day = np.round(first[member] - rng.random(entries) * life[member]).astype(np.int64)
    order = np.argsort(-day, kind="stable")  # oldest entry first
    member, day = member[order], day[order]
    earn = rng.random(entries) < 0.7
    amount = rng.integers(1, 500, entries)
    tier = TIERS[rng.integers(0, len(TIERS), n_members)]
    enrolled = rng.integers(DAYS - 365, DAYS, n_members)
    return Data(member, earn, amount, day, n_members, tier, enrolled)


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
        yield "enrolment", ("tenant_id", "id", "program_id", "account_id", "status", "tier",
                            "application", "created_at", "updated_at"), [
            (t, f"enr_b{i:024d}", p, f"acc_b{i:024d}", "active", str(data.tier[i]) or None,
             "{}", joined, joined)
            for i in members
            for joined in [_stamp(engine, NOW - timedelta(days=int(data.enrolled[i]),
                                                          hours=6))]]
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
    aging = data.aging()
    for first in range(0, aging.height, CHUNK * 4):
        part = aging.slice(first, CHUNK * 4)
        yield "ledger_aging", ("tenant_id", "account_id", "day", "credits", "debits",
                               "remaining"), [
            (t, f"wal_b{m:024d}", d, c, b, r) for m, d, c, b, r in zip(
                part["member"].to_list(), part["day"].to_list(), part["credit"].to_list(),
                part["debit"].to_list(), part["remaining"].to_list(), strict=True)]


def _migration(name: str = "20261124_0026_analytics") -> Any:
    """A migration's module: 0026_analytics (its trigger names), 0028_localday (the summary
    tables' backfill by the program's local day)."""
    path = (Path(analytics.__file__).resolve().parent.parent / "migrations" / "versions"
            / f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(engine: str, url: str, ids: dict[str, str], data: Data) -> None:
    """Bulk-load with the driver, constraint checks off (consistent by construction). The
    triggers are set aside (SQLite: dropped and put back; PostgreSQL: replica mode): the aging
    rows come with the load, and the analytics summaries (``liability_holding``,
    ``purchase_day``, ``member_month``) are then built by the migration's own backfill
    statements, in the same transaction."""
    summaries = _migration()
    aside = ["ledger_aging_track"] + [name for name, _ in summaries.trigger_names("sqlite")]
    local = _migration("20261124_0028_localday")
    bulk_load(engine, url, _rows(engine, ids, data), trigger_aside=aside,
              after=local.backfill_sql("sqlite" if engine == "sqlite" else "postgresql"))


# --- DuckDB frames (the same rows) ------------------------------------------------------------


def duck_frames(data: Data) -> dict[str, pl.DataFrame]:
    day = data.day_number()
    on = np.datetime64("1970-01-01") + day.astype("timedelta64[D]")
    months = on.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    joined = (np.datetime64(NOW.replace(tzinfo=None), "h")
              - (data.enrolled * 24 + 6).astype("timedelta64[h]"))
    aging = data.aging()
    return {
        "posting": pl.DataFrame({"member": data.member, "day": day,
                                 "seq": np.arange(len(day)), "credit": data.earn,
                                 "amount": data.amount}),
        "member": pl.DataFrame({"member": np.arange(data.n_members),
                                "tier": pl.Series(data.tier).replace("", None)}),
        "aging": aging.select("member", "day", "remaining"),
        "event": pl.DataFrame({"member": data.member[data.earn], "day": day[data.earn],
                               "month": (months + 1970 * 12 + 1)[data.earn],
                               "amount": data.amount[data.earn].astype(np.float64)}),
        "enrolment": pl.DataFrame({
            "member": np.arange(data.n_members),
            "month": joined.astype("datetime64[M]").astype(np.int64) + 1970 * 12 + 1}),
    }


# --- the run ---------------------------------------------------------------------------------


def run_engine(engine: str, url: str, data: Data, con: Any, args: argparse.Namespace,
               figures: list[Figure], checks: list[Check]) -> bool:
    db = Database(url)
    try:
        with db.transaction() as s:
            tenant = tenants.create_tenant(s, "Bench")
            program = tenants.create_program(s, tenant.id, code="bench", name="Bench",
                                             base_currency="USD",
                                             time_zone=args.analytics_zone)
            unit = tenants.create_unit(s, tenant.id, program.id, code="points", name="Points",
                                       kind="points", value_in_base="0.01",
                                       expiry_policy={"kind": "never"})
            key = tenants.create_api_key(s, tenant.id, name="bench", scopes=["admin"]).secret
            ids = {"tenant": tenant.id, "program": program.id, "unit": unit.id}
        seconds, _ = timed(lambda: load(engine, url, ids, data))
        print(f"analytics.load engine={engine} rows={2 * len(data.member)} "
              f"members={data.n_members} seconds={seconds:.1f} (not a goal)", flush=True)
        t, p = ids["tenant"], ids["program"]
        zone = args.analytics_zone
        # the program's local days and months (rows are at 12:00 and 18:00 UTC: the same
        # dates in the zones offered, so DuckDB's UTC answer is the answer)
        span = analytics.period(*SPAN, NOW, zone)
        calibrated = zones.day_start(zone, CALIBRATION_END + timedelta(days=1))
        ok = True
        with clock.frozen(NOW), db.read() as s:
            took, report = timed(lambda: analytics.liability(s, t, p))
            d_took, d_rows = timed(lambda: duck.liability(con, TODAY))
            a_took, _ = timed(lambda: duck.liability_from_aging(con, TODAY))
            unit_row = report.summary["units"][0]
            expected = int(data.balances().sum())
            got = {(r["tier"], r["age"]): r["outstanding"] for r in report.rows}
            right = unit_row["reconciled"] and unit_row["outstanding"] == expected
            checks.append(Check("analytics.liability.reconciled", engine, right,
                                f"outstanding {unit_row['outstanding']}, expected {expected}"))
            checks.append(Check("analytics.liability.equals_duckdb", engine, got == d_rows,
                                f"{len(got)} tier × age rows"))
            ok &= _figure(figures, "liability", engine, took, d_took, right and got == d_rows,
                          f"DuckDB over the maintained aging: {a_took:.2f}s")
            took, rfm = timed(lambda: clv_report.rfm_of(s, t, p, start=None, end=calibrated,
                                                        calibration_end=CALIBRATION_END))
            last = (CALIBRATION_END - date(1970, 1, 1)).days
            d_took, d_rfm = timed(lambda: duck.rfm(con, last))
            same = (len(rfm) == len(d_rfm) and np.array_equal(rfm.x, d_rfm.x)
                    and np.array_equal(rfm.T, d_rfm.T) and np.allclose(rfm.m_x, d_rfm.m_x)
                    and np.allclose(rfm.total, d_rfm.total))
            checks.append(Check("analytics.aggregates.equal_duckdb", engine, same,
                                f"{len(rfm)} members summarised"))
            ok &= _figure(figures, "aggregates", engine, took, d_took, same, "")
            took, retention = timed(lambda: analytics.retention(s, t, p, span))
            took_fit, fitted = timed(lambda: clv_report.fit_rfm(rfm))
            first = analytics_sql.month_number(span.start, zone)
            end = analytics_sql.month_number(span.end, zone)
            d_took, d_cohorts = timed(lambda: duck.cohorts(con, first, end))
            d_fit, _ = timed(lambda: clv_report.fit_rfm(d_rfm))
            same = _retention_matches(retention.rows, d_cohorts, data)
            checks.append(Check("analytics.cohorts.equal_duckdb", engine, same,
                                f"{len(retention.rows)} cohorts; BG/NBD r={fitted[0].r:.3f}"))
            ok &= _figure(figures, "cohorts_and_fit", engine, took + took_fit, d_took + d_fit,
                          same, f"cohorts {took:.2f}s + fit {took_fit:.2f}s; DuckDB cohorts "
                          f"{d_took:.2f}s + the same fit {d_fit:.2f}s")
        ok &= _latency(engine, url, ids, key, data, args, figures)
        return ok
    finally:
        db.dispose()


def _retention_matches(rows: list[dict[str, Any]], counts: dict[tuple[int, int], int],
                       data: Data) -> bool:
    for row in rows:
        year, month = (int(x) for x in row["cohort"].split("-"))
        cohort = year * 12 + month
        for name, share in row.items():
            if name.startswith("m") and share is not None:
                expected = counts.get((cohort, int(name[1:])), 0) / row["size"]
                if abs(share - expected) > 1e-12:
                    return False
    return bool(sum(r["size"] for r in rows) == data.n_members)


def _figure(figures: list[Figure], name: str, engine: str, seconds: float, duck_seconds: float,
            right: bool, note: str) -> bool:
    goal = GOALS[name]
    ratio = seconds / duck_seconds if duck_seconds > 0 else float("inf")
    passed = right and seconds <= goal and ratio <= RATIO
    print(f"analytics.{name} engine={engine} time={seconds:.2f}s limit=duckdb:{duck_seconds:.2f}s "
          f"ratio={ratio:.2f} goal=<={goal:g}s,<={RATIO:g}x {'PASS' if passed else 'FAIL'}"
          + ("" if right else " (WRONG ANSWER)") + (f" ({note})" if note else ""), flush=True)
    figures.append(Figure(f"analytics.{name}", engine, 1, seconds, note=note, extra={
        "seconds": seconds, "duckdb_seconds": duck_seconds, "time_ratio": ratio,
        "goal_seconds": goal, "goal_ratio": RATIO, "right": right, "passed": passed}))
    return passed


def report_loop(url: str, tenant_id: str, program_id: str, seconds: float) -> None:
    """The three reports again and again for ``seconds`` (at most 1,000 rounds), in a
    process of its own — a report process as the product runs one (``allegiance report``,
    ``allegiance jobs run``): at background CPU priority (``ALLEGIANCE_BATCH_NICE``)."""
    priority.background()
    db = Database(url)
    deadline = time.monotonic() + seconds
    with db.read() as s:
        zone = tenants.get_program(s, tenant_id, program_id).time_zone
    span = analytics.period(*SPAN, NOW, zone)
    end = zones.day_start(zone, CALIBRATION_END + timedelta(days=1))
    rounds = 0
    try:
        with clock.frozen(NOW):
            while time.monotonic() < deadline and rounds < 1000:
                with db.read() as s:
                    aged_now(s, tenant_id, program_id)
                    rfm = clv_report.rfm_of(s, tenant_id, program_id, start=None, end=end,
                                            calibration_end=CALIBRATION_END)
                    analytics.retention(s, tenant_id, program_id, span)
                clv_report.fit_rfm(rfm)
                rounds += 1
    finally:
        db.dispose()
    print(f"analytics.report_loop rounds={rounds} in {seconds:g}s", flush=True)


def _latency(engine: str, url: str, ids: dict[str, str], key: str, data: Data,
             args: argparse.Namespace, figures: list[Figure]) -> bool:
    seconds = 5.0 if args.quick else args.analytics_load_seconds
    rng = np.random.default_rng(args.seed)
    rate = args.analytics_rate
    total = int(rate * seconds)
    picks = rng.integers(0, data.n_members, total + 1)
    # The reads come from ``bench.api_load`` in a process of its own (raw keep-alive
    # sockets, microseconds of client CPU per request), as in ``bench api``.
    job = {"mode": "open", "rate": rate, "seconds": seconds, "connections": 32,
           "request": {"kind": "balance", "key": key,
                       "wallets": [f"wal_b{int(p):024d}" for p in picks]}}
    with server(url) as base:
        http_load(base, {"mode": "closed", "connections": 4, "seconds": 2.0, "max_requests": 200,
                    "request": job["request"]})  # warm-up, untimed
        idle = http_load(base, job)
        spawn = multiprocessing.get_context("spawn")
        child = spawn.Process(target=report_loop,
                              args=(url, ids["tenant"], ids["program"], seconds + 2))
        child.start()
        try:
            time.sleep(1.0)  # let the reports start before the reads (a bench, not a test)
            loaded = http_load(base, job)
        finally:
            child.join(timeout=seconds + 600)
            if child.is_alive():
                child.terminate()
                child.join(timeout=10)

    def worst(result: dict[str, Any]) -> float:
        complete = result["answered"] == total and result["p99_ms"] is not None
        return float(result["p99_ms"]) if complete else float("inf")

    errors, idle_errors = loaded["errors"], idle["errors"]
    passed = worst(loaded) <= P99_MS and errors == 0 and rate >= RATE
    print(f"analytics.balance_p99 engine={engine} offered={rate}/s for {seconds:g}s "
          f"p50={loaded['p50_ms']}ms p99={worst(loaded):.1f}ms errors={errors} "
          f"(idle server: p99={worst(idle):.1f}ms errors={idle_errors}) "
          f"goal=p99<={P99_MS:g}ms {'PASS' if passed else 'FAIL'}", flush=True)
    figures.append(Figure("analytics.balance_p99", engine, loaded["answered"], seconds, extra={
        "p99_ms": worst(loaded), "errors": errors, "idle_p99_ms": worst(idle),
        "idle_errors": idle_errors, "rate": rate, "goal_p99_ms": P99_MS, "passed": passed,
        "loaded": loaded, "idle": idle}))
    return passed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--analytics-members", type=int, default=1_000_000,
                        help="analytics: members (quick: 10,000)")
    parser.add_argument("--analytics-rows", type=int, default=10_000_000,
                        help="analytics: ledger rows, two per entry (quick: 200,000)")
    parser.add_argument("--analytics-load-seconds", type=float, default=20.0,
                        help="analytics: seconds of balance reads under report load (quick: 5)")
    parser.add_argument("--analytics-rate", type=int, default=RATE,
                        help="analytics: balance reads per second offered (the goal's: 200)")
    parser.add_argument("--analytics-zone", default="UTC", choices=ZONES,
                        help="analytics: the program's time zone (its reports by local day)")


def run(args: argparse.Namespace) -> bool:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("analytics SKIPPED: install the bench extra (duckdb) for the limit")
        return False
    members = 10_000 if args.quick else args.analytics_members
    rows = 200_000 if args.quick else args.analytics_rows
    data = generate(members, rows, args.seed)
    figures: list[Figure] = []
    checks: list[Check] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="allegiance-duck-") as folder:
        con = duck.connect(duck_frames(data), Path(folder))
        for engine in args.engine:
            if engine == "postgres" and not postgres_available():
                print("analytics engine=postgres SKIPPED (no server)")
                continue
            with databases(engine) as dbs:
                ok = run_engine(engine, dbs.new(), data, con, args, figures, checks) and ok
        con.close()
    for check in checks:
        print(check.line())
        ok = ok and check.ok
    path = write_results("analytics", {"members": members, "rows": rows, "seed": args.seed,
                                       "rate": args.analytics_rate,
                                       "zone": args.analytics_zone}, figures, checks)
    print(f"analytics results: {path}")
    return ok
