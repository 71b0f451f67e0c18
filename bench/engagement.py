"""``python -m bench engagement``: segments, RFM scores and a leaderboard at scale.

Generates members (region, tier, JSON attributes) and purchase events over 400 days, turns
the events into the daily engagement tallies the earning path keeps (one row per account and
local day: purchases, sales) and the running totals it keeps beside them (board totals per
account and period kind, RFM inputs per buyer of the window — ``running_rows``), bulk-loads
members, enrolments, tallies and running totals (not timed), then
times, on each engine, back to back with DuckDB over the same rows (in memory, loaded from
the same arrays, not timed):

* ``refresh``: the segments job for the program — RFM scores of every buyer of the 365-day
  window (quintiles) and five segments (three by rule over region, tier and attributes, two
  by RFM score), membership written; DuckDB computes the same scores and memberships into
  tables;
* ``refresh_steady``: the same job again with nothing changed (no membership writes);
* ``leaderboard``: the year's top 10 by sales with one member's standing.

Goal: each ≤ 3× the DuckDB time of the same run. Correctness: the engine's segment sizes,
RFM score distribution and leaderboard equal DuckDB's. A last line times DuckDB computing the
RFM scores from the raw events (for scale; not a goal).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from allegiance import campaigns, definitions, engagement
from allegiance.campaigns import rfm
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.tenants import create_tenant
from bench.common import bulk_load, databases, postgres_available, timed

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
DAYS = 400
WINDOW = 365
CHUNK = 100_000
GOAL = 3.0
REGIONS = np.array(["ES", "PT", "FR", "DE", "US-NY", "US-CA"])
TIERS = np.array(["", "silver", "gold"])
KINDS = np.array(["retailer", "distributor", "installer"])
SEGMENTS = {
    "iberia": 'member.country == "ES" or member.country == "PT"',
    "big-gold": 'member.tier == "gold" and member.attributes.employees >= 250',
    "distributors": 'member.attributes.kind == "distributor"',
    "champions": "member.rfm.recency >= 4 and member.rfm.frequency >= 4 "
                 "and member.rfm.monetary >= 4",
    "at-risk": "member.rfm.recency <= 2 and member.rfm.frequency >= 4",
}
DUCK_SEGMENTS = {
    "iberia": "split_part(region, '-', 1) IN ('ES', 'PT')",
    "big-gold": "tier = 'gold' AND CAST(json_extract(attributes, '$.employees') AS BIGINT) "
                ">= 250",
    "distributors": "json_extract_string(attributes, '$.kind') = 'distributor'",
    "champions": "r >= 4 AND f >= 4 AND m >= 4",
    "at-risk": "r <= 2 AND f >= 4",
}
DOCUMENT: dict[str, Any] = {
    "program": {"code": "bench", "name": "Bench", "base_currency": "EUR", "time_zone": "UTC"},
    "units": [{"code": "points", "name": "Points", "kind": "points", "value_in_base": "0.01"}],
    "member_attributes": {"employees": "int", "kind": "str"},
    "rules": [{"code": "base", "trigger": "purchase",
               "effects": [{"type": "points_per_amount", "unit": "points", "rate": "0.01"}]}],
}


@dataclass
class Data:
    n_members: int
    n_events: int
    region: np.ndarray
    tier: np.ndarray
    employees: np.ndarray
    kind: np.ndarray
    # events
    member: np.ndarray
    days_ago: np.ndarray
    amount: np.ndarray
    # daily tallies (member, local day ordinal, purchases, sales)
    t_member: np.ndarray
    t_day: np.ndarray
    t_purchases: np.ndarray
    t_sales: np.ndarray


def account_id(i: int) -> str:
    return f"acc_e{i:024d}"


def generate(n_members: int, n_events: int, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    # a skewed activity: some members buy far more often than others
    weights = rng.pareto(1.5, n_members) + 0.05
    member = rng.choice(n_members, n_events, p=weights / weights.sum())
    days_ago = rng.integers(0, DAYS, n_events)
    amount = rng.integers(100, 50_000, n_events)
    today = NOW.date().toordinal()
    key = member.astype(np.int64) * DAYS + days_ago
    keys, inverse = np.unique(key, return_inverse=True)
    purchases = np.bincount(inverse).astype(np.int64)
    sales = np.bincount(inverse, weights=amount).astype(np.int64)
    return Data(
        n_members, n_events, REGIONS[rng.integers(0, len(REGIONS), n_members)],
        TIERS[rng.integers(0, len(TIERS), n_members)], rng.integers(1, 500, n_members),
        KINDS[rng.integers(0, len(KINDS), n_members)], member, days_ago, amount,
        keys // DAYS, today - keys % DAYS, purchases, sales)


def _rows(engine: str, ids: dict[str, str],
          data: Data) -> Iterator[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    t, p = ids["tenant"], ids["program"]
    at: Any = (NOW - timedelta(days=DAYS + 30))
    if engine == "sqlite":
        at = at.strftime("%Y-%m-%d %H:%M:%S.%f")
    for first in range(0, data.n_members, CHUNK):
        span = range(first, min(first + CHUNK, data.n_members))
        yield "account", ("tenant_id", "id", "name", "member_number", "region", "attributes",
                          "status", "created_at", "updated_at"), [
            (t, account_id(i), f"Member {i}", f"E{i:09d}", str(data.region[i]),
             json.dumps({"employees": int(data.employees[i]), "kind": str(data.kind[i])}),
             "active", at, at) for i in span]
        yield "enrolment", ("tenant_id", "id", "program_id", "account_id", "status", "tier",
                            "application", "created_at", "updated_at"), [
            (t, f"enr_e{i:024d}", p, account_id(i), "active", str(data.tier[i]) or None, "{}",
             at, at) for i in span]
    for first in range(0, len(data.t_member), CHUNK):
        span = range(first, min(first + CHUNK, len(data.t_member)))
        yield "engagement_tally", ("tenant_id", "program_id", "day", "account_id", "points",
                                   "sales", "purchases", "activities", "challenges"), [
            (t, p, int(data.t_day[k]), account_id(int(data.t_member[k])),
             int(data.t_sales[k]) // 100, int(data.t_sales[k]), int(data.t_purchases[k]), 0, 0)
            for k in span]
    boards, inputs = running_rows(data)
    yield "engagement_rfm_window", ("tenant_id", "program_id", "first_day"), [
        (t, p, NOW.date().toordinal() - WINDOW + 1)]
    for first in range(0, inputs.height, CHUNK):
        yield "engagement_rfm_input", ("tenant_id", "program_id", "account_id", "last_day",
                                       "purchases", "spend"), [
            (t, p, account_id(m), d, n, v) for m, d, n, v in
            inputs.slice(first, CHUNK).select("member", "last_day", "purchases", "spend")
            .iter_rows()]
    for first in range(0, boards.height, CHUNK):
        yield "engagement_board_total", ("tenant_id", "program_id", "kind", "account_id",
                                         "period_index", "points", "sales", "purchases",
                                         "activities", "challenges"), [
            (t, p, kind, account_id(m), i, pts, sales, n, 0, 0) for m, i, pts, sales, n, kind
            in boards.slice(first, CHUNK).select("member", "period_index", "points", "sales",
                                                 "purchases", "kind").iter_rows()]


def running_rows(data: Data) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What the earning path keeps beside the tallies it wrote: per account and period kind
    the totals of its latest period (board totals), and per buyer of the RFM window's days the
    last purchase day, purchases and spend (RFM inputs) — derived from the same tallies."""
    tally = pl.DataFrame({"member": data.t_member, "day": data.t_day,
                          "purchases": data.t_purchases, "sales": data.t_sales}).with_columns(
        points=pl.col("sales") // 100)
    epoch = datetime(1970, 1, 1).toordinal()  # Polars dates count days from 1970-01-01
    tally = tally.with_columns((pl.col("day") - epoch).cast(pl.Int32).cast(pl.Date)
                               .alias("date"))
    index = {"week": (pl.col("day") - datetime(2001, 1, 1).toordinal()) // 7,
             "month": pl.col("date").dt.year() * 12 + pl.col("date").dt.month() - 1,
             "quarter": pl.col("date").dt.year() * 4 + (pl.col("date").dt.month() - 1) // 3,
             "year": pl.col("date").dt.year(), "all": pl.lit(0)}
    boards = []
    for kind, expr in index.items():
        one = tally.with_columns(expr.cast(pl.Int64).alias("period_index"))
        latest = one.group_by("member").agg(pl.col("period_index").max().alias("latest"))
        boards.append(one.join(latest, on="member").filter(
            pl.col("period_index") == pl.col("latest")).group_by("member", "period_index").agg(
            pl.col("points").sum(), pl.col("sales").sum(), pl.col("purchases").sum())
            .with_columns(pl.lit(kind).alias("kind")))
    first = NOW.date().toordinal() - WINDOW + 1
    inputs = tally.filter((pl.col("day") >= first) & (pl.col("purchases") > 0)).group_by(
        "member").agg(pl.col("day").max().alias("last_day"), pl.col("purchases").sum(),
                      pl.col("sales").sum().alias("spend"))
    return pl.concat(boards), inputs


def load(engine: str, url: str, ids: dict[str, str], data: Data) -> None:
    """Bulk-load with the driver, constraint checks off (consistent by construction)."""
    bulk_load(engine, url, _rows(engine, ids, data))


# --- DuckDB, the limit -----------------------------------------------------------------------


def duck_connect(data: Data, folder: Path) -> Any:
    """An in-memory DuckDB with the same members, tallies and events (via Parquet files)."""
    import duckdb

    ids = pl.Series("account_id", [account_id(i) for i in range(data.n_members)])
    frames = {
        "member": pl.DataFrame({
            "account_id": ids, "region": data.region,
            "tier": pl.Series(data.tier).replace("", None),
            "attributes": [json.dumps({"employees": int(e), "kind": str(k)})
                           for e, k in zip(data.employees, data.kind, strict=True)]}),
        "tally": pl.DataFrame({"account_id": ids.gather(data.t_member), "day": data.t_day,
                               "purchases": data.t_purchases, "sales": data.t_sales}),
        "event": pl.DataFrame({"account_id": ids.gather(data.member),
                               "day": NOW.date().toordinal() - data.days_ago,
                               "amount": data.amount}),
    }
    con = duckdb.connect()
    for name, frame in frames.items():
        path = folder / f"{name}.parquet"
        frame.write_parquet(path)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{path}')")
    return con


def _duck_rfm_sql(source: str, last_day: int) -> str:
    first = last_day - WINDOW + 1
    return f"""
    CREATE OR REPLACE TABLE rfm AS
    SELECT account_id,
           (5 * RANK() OVER (ORDER BY last_day) + buyers - 1) // buyers AS r,
           (5 * RANK() OVER (ORDER BY purchases) + buyers - 1) // buyers AS f,
           (5 * RANK() OVER (ORDER BY spend) + buyers - 1) // buyers AS m
    FROM (SELECT account_id, MAX(day) AS last_day, SUM(purchases) AS purchases,
                 SUM(sales) AS spend, COUNT(*) OVER () AS buyers
          FROM {source} WHERE day BETWEEN {first} AND {last_day} AND purchases > 0
          GROUP BY account_id)"""


def duck_refresh(con: Any, last_day: int) -> None:
    con.execute(_duck_rfm_sql("tally", last_day))
    parts = " UNION ALL ".join(
        f"SELECT '{code}' AS segment, account_id FROM scored WHERE {where}"
        for code, where in DUCK_SEGMENTS.items())
    con.execute(f"""
    CREATE OR REPLACE TABLE segment_member AS
    WITH scored AS (
      SELECT mb.*, COALESCE(r, 0) AS r, COALESCE(f, 0) AS f, COALESCE(m, 0) AS m
      FROM member mb LEFT JOIN rfm USING (account_id))
    {parts}""")


def duck_raw_rfm(con: Any, last_day: int) -> None:
    con.execute(_duck_rfm_sql(
        "(SELECT account_id, day, 1 AS purchases, amount AS sales FROM event)", last_day))


def duck_leaderboard(con: Any, first: int, last: int, who: str) -> tuple[list[Any], int, Any]:
    board = f"""SELECT account_id, SUM(sales) AS score FROM tally
                WHERE day >= {first} AND day < {last} GROUP BY account_id HAVING SUM(sales) > 0"""
    rows = con.execute(f"""SELECT account_id, score, COUNT(*) OVER () FROM ({board})
                           ORDER BY score DESC, account_id LIMIT 10""").fetchall()
    mine = con.execute(f"SELECT score FROM ({board}) WHERE account_id = ?", [who]).fetchone()
    above = con.execute(f"SELECT COUNT(*) FROM ({board}) WHERE score > ?",
                        [mine[0] if mine else 0]).fetchone()
    return [(a, int(s)) for a, s, _ in rows], int(rows[0][2]) if rows else 0, \
        (int(mine[0]), int(above[0]) + 1) if mine else None


# --- the engine ------------------------------------------------------------------------------


def run_engine(engine: str, url: str, data: Data, con: Any) -> bool:
    db = Database(url)
    try:
        with clock.frozen(NOW), db.transaction() as s:
            tenant = create_tenant(s, "Bench")
            program_id = definitions.apply(s, tenant.id, DOCUMENT, actor="bench",
                                           effective_from=NOW - timedelta(days=DAYS + 60)
                                           ).program_id
            for code, condition in SEGMENTS.items():
                campaigns.create_segment(s, tenant.id, program_id, code=code, name=code,
                                         condition=condition)
            rfm.set_model(s, tenant.id, program_id, WINDOW)
        ids = {"tenant": tenant.id, "program": program_id}
        seconds, _ = timed(lambda: load(engine, url, ids, data))
        print(f"engagement.load engine={engine} members={data.n_members} "
              f"events={data.n_events} tally_rows={len(data.t_member)} "
              f"seconds={seconds:.1f} (not a goal)")
        ok = True
        last_day = NOW.date().toordinal()

        def refresh() -> dict[str, int]:
            with clock.frozen(NOW), db.transaction() as s:
                return campaigns.refresh_program(s, ids["tenant"], ids["program"])

        took, done = timed(refresh)
        duck, _ = timed(lambda: duck_refresh(con, last_day))
        sizes = dict(con.execute("SELECT segment, COUNT(*) FROM segment_member "
                                 "GROUP BY segment").fetchall())
        with db.read() as s:
            mine = {g.code: g.members for g in campaigns.list_segments(
                s, ids["tenant"], ids["program"])}
            dist = rfm.distribution(s, ids["tenant"], ids["program"])
        duck_dist = {name: dict(con.execute(f"SELECT {col}, COUNT(*) FROM rfm GROUP BY {col}")
                                .fetchall()) for name, col in
                     (("recency", "r"), ("frequency", "f"), ("monetary", "m"))}
        right = mine == {c: sizes.get(c, 0) for c in SEGMENTS} and dist == duck_dist \
            and done["entered"] == sum(sizes.values())
        ok &= _line("refresh", engine, took, duck, right,
                    f"{done['entered']} memberships written; sizes {mine}")
        took, done = timed(refresh)
        duck, _ = timed(lambda: duck_refresh(con, last_day))
        ok &= _line("refresh_steady", engine, took, duck,
                    done["entered"] == 0 and done["left"] == 0, "nothing changed")
        who = account_id(int(data.member[0]))
        year = (datetime(NOW.year, 1, 1).toordinal(), datetime(NOW.year + 1, 1, 1).toordinal())

        def board() -> engagement.Board:
            with db.read() as s:
                return engagement.leaderboard(s, ids["tenant"], ids["program"], metric="sales",
                                              period="year", at=NOW, account_id=who)

        took, got = timed(board)
        duck, (top, total, me) = timed(lambda: duck_leaderboard(con, *year, who))
        right = [(e.account_id, e.score) for e in got.entries] == top and got.total == total \
            and (got.me is None if me is None else (got.me.score, got.me.rank) == me)
        ok &= _line("leaderboard", engine, took, duck, right,
                    f"{total} ranked; top score {top[0][1] if top else 0}")
        return ok
    finally:
        db.dispose()


def _line(name: str, engine: str, seconds: float, duck: float, right: bool,
          note: str) -> bool:
    ratio = seconds / duck if duck > 0 else float("inf")
    passed = right and ratio <= GOAL
    print(f"engagement.{name} engine={engine} seconds={seconds:.2f} duckdb={duck:.2f} "
          f"ratio={ratio:.1f} goal<={GOAL:g}x {'PASS' if passed else 'FAIL'}"
          + ("" if right else " (WRONG ANSWER)") + (f" ({note})" if note else ""))
    return passed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engagement-members", type=int, default=1_000_000,
                        help="engagement: members (quick: 20,000)")
    parser.add_argument("--engagement-events", type=int, default=10_000_000,
                        help="engagement: purchase events (quick: 200,000)")


def run(args: argparse.Namespace) -> bool:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("engagement SKIPPED: install the bench extra (duckdb) for the limit")
        return False
    members = 20_000 if args.quick else args.engagement_members
    n_events = 200_000 if args.quick else args.engagement_events
    data = generate(members, n_events, args.seed)
    folder = Path(tempfile.mkdtemp(prefix="allegiance-bench-duck-"))
    try:
        con = duck_connect(data, folder)
        return _run(args, data, con, n_events)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(args: argparse.Namespace, data: Data, con: Any, n_events: int) -> bool:
    last_day = NOW.date().toordinal()
    took, _ = timed(lambda: duck_raw_rfm(con, last_day))
    print(f"engagement.duckdb_rfm_from_raw_events events={n_events} seconds={took:.2f} "
          "(for scale, not a goal)")
    ok = True
    for engine in args.engine:
        if engine == "postgres" and not postgres_available():
            print("engagement engine=postgres SKIPPED (no server)")
            continue
        with databases(engine) as dbs:
            ok = run_engine(engine, dbs.new(), data, con) and ok
    return ok
