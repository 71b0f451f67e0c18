"""``python -m bench tiers``: the set-based tier recalculation of a whole program against one
naive ``INSERT … SELECT … GROUP BY`` over the same qualifying-metric rows, in the same run.

Goal (issue "Events, earning rules, tiers"): recalculating 1M members over 10M metric rows,
writing the statuses back with their history, takes ≤ 1.0× the time of one naive
``INSERT INTO scratch SELECT account_id, SUM(value) FROM tier_metric … GROUP BY account_id`` on
the same data, on SQLite and on PostgreSQL.

One database per engine: a tenant and program (services), a primary 4-level ladder on
``points_earned`` over the calendar year (``tiers.create_ladder``), N accounts with active
enrolments and M ``tier_metric`` rows (one per account and month, the shape ``add_credit``
writes) bulk-loaded by the driver (seeded). Then, back to back: the naive GROUP BY (limit), the
first recalculation (every member new: statuses, history rows and ``enrolment.tier`` written),
the naive GROUP BY again, and a second recalculation (nobody moves). The line's ratio is
recalculation seconds / naive seconds; PASS when ≤ the goal.

Correctness: 1,000 sampled members hold the level the pure domain gives for their generated
sum (status, history value and enrolment tier); the history has one row per member with a
level; the counts the service returns match; the second run moves nobody.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select, text

from allegiance import members, tenants, tiers
from allegiance.kit.db import Database
from allegiance.tiers import domain
from bench.common import Check, Figure, bulk_load, databases, postgres_available, write_results

YEAR = 2026
AT = datetime(YEAR, 12, 20, 12, tzinfo=UTC)  # inside the year: windows of calendar 2026
METRIC = "points_earned"
LADDER: dict[str, Any] = {
    "code": "status", "name": "Status", "metric": METRIC, "primary": True,
    "period": {"kind": "calendar_year"},
    "levels": [
        {"code": "bronze", "name": "Bronze", "threshold": 2_000},
        {"code": "silver", "name": "Silver", "threshold": 8_000},
        {"code": "gold", "name": "Gold", "threshold": 15_000},
        {"code": "platinum", "name": "Platinum", "threshold": 25_000},
    ],
}
SAMPLE = 1_000
CHUNK = 200_000
GOAL = 1.0


@dataclass
class TimeFigure(Figure):
    """A duration compared with a limit's duration: ratio = seconds / limit seconds, which
    passes when ≤ ``goal`` (the opposite sense of :class:`Figure`'s rate ratio)."""

    limit_seconds: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.limit_seconds is None or self.limit_seconds <= 0:
            return None
        return self.seconds / self.limit_seconds

    @property
    def passed(self) -> bool | None:
        if self.goal is None or self.ratio is None:
            return None
        return self.ratio <= self.goal

    def line(self) -> str:
        parts = [self.name, f"engine={self.engine}", f"time={self.seconds:.2f}s"]
        if self.limit_name is not None and self.limit_seconds is not None:
            parts += [f"limit={self.limit_name}:{self.limit_seconds:.2f}s",
                      f"ratio={self.ratio:.2f}"]
        if self.goal is not None:
            parts += [f"goal=<={self.goal:g}", "PASS" if self.passed else "FAIL"]
        if self.note:
            parts.append(f"({self.note})")
        return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class Data:
    account_ids: list[str]
    member: np.ndarray  # member index of each metric row (rows sorted by member, bucket)
    bucket: np.ndarray
    value: np.ndarray
    sums: np.ndarray  # expected yearly sum per member


def generate(n_members: int, n_rows: int, seed: int) -> Data:
    """``n_rows`` metric rows over ``n_members``: each member has ``n_rows / n_members`` distinct
    months of the year (±1), its monthly credits drawn around a member-specific mean."""
    if not n_members <= n_rows <= 12 * n_members:
        raise SystemExit("tiers: need members <= rows <= 12 × members (one row per month)")
    rng = np.random.default_rng(seed)
    per = np.full(n_members, n_rows // n_members, dtype=np.int64)
    per[: n_rows % n_members] += 1
    months = np.argsort(rng.random((n_members, 12)), axis=1).astype(np.int64)
    keep = np.arange(12)[None, :] < per[:, None]
    months = np.sort(np.where(keep, months, 99), axis=1)
    member = np.repeat(np.arange(n_members, dtype=np.int64), per)
    bucket = months[months != 99] + YEAR * 12
    mean = rng.uniform(30, 3_200, n_members)
    value = (np.floor(rng.random(n_rows) * 2 * mean[member]) + 1).astype(np.int64)
    sums = np.bincount(member, weights=value, minlength=n_members).round().astype(np.int64)
    ids = [f"acc_bench{i:021d}" for i in range(n_members)]
    return Data(ids, member, bucket, value, sums)


def _stamp(engine: str, at: datetime) -> Any:
    # SQLite stores naive UTC text (SQLAlchemy's format); PostgreSQL a timestamptz.
    return at.strftime("%Y-%m-%d %H:%M:%S.%f") if engine == "sqlite" else at


def _rows(engine: str, tenant_id: str, program_id: str, data: Data) -> Iterator[
        tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Chunks of (account rows, enrolment rows, metric rows), members in id order."""
    created = _stamp(engine, datetime(YEAR - 1, 6, 1, tzinfo=UTC))
    month_stamp = {YEAR * 12 + m: _stamp(engine, datetime(YEAR, m + 1, 15, 12, tzinfo=UTC))
                   for m in range(12)}
    ids = data.account_ids
    starts = np.searchsorted(data.member, np.arange(0, len(ids) + CHUNK, CHUNK))
    for k, first in enumerate(range(0, len(ids), CHUNK)):
        last = min(first + CHUNK, len(ids))
        accounts = [(tenant_id, ids[i], None, "Bench member", f"B{i:09d}", None, None, None,
                     "{}", "active", None, created, created) for i in range(first, last)]
        enrolments = [(tenant_id, f"enr_bench{i:021d}", program_id, ids[i], "active", None,
                       "{}", created, created) for i in range(first, last)]
        lo, hi = int(starts[k]), int(starts[k + 1])
        metrics = [(tenant_id, program_id, METRIC, ids[m], b, v, month_stamp[b])
                   for m, b, v in zip(data.member[lo:hi].tolist(), data.bucket[lo:hi].tolist(),
                                      data.value[lo:hi].tolist(), strict=True)]
        yield accounts, enrolments, metrics


ACCOUNT_COLS = ("tenant_id", "id", "parent_id", "name", "member_number", "region", "email",
                "tax_id", "attributes", "status", "merged_into_id", "created_at", "updated_at")
ENROLMENT_COLS = ("tenant_id", "id", "program_id", "account_id", "status", "tier",
                  "application", "created_at", "updated_at")
METRIC_COLS = ("tenant_id", "program_id", "metric", "account_id", "bucket", "value",
               "updated_at")
TABLES = (("account", ACCOUNT_COLS), ("enrolment", ENROLMENT_COLS), ("tier_metric", METRIC_COLS))


def load(engine: str, url: str, tenant_id: str, program_id: str, data: Data) -> None:
    """Bulk-load accounts, enrolments and metric rows with the driver (not timed as a goal).

    Constraint checks are off during the load (SQLite ``foreign_keys``; PostgreSQL replica
    mode): the rows are consistent by construction, and the figures are about the reads and
    writes that follow, not the load.
    """
    tables = ((table, cols, rows)
              for chunk in _rows(engine, tenant_id, program_id, data)
              for (table, cols), rows in zip(TABLES, chunk, strict=True))
    bulk_load(engine, url, tables, analyze="account, enrolment, tier_metric")


# ---------------------------------------------------------------------------------------------
# Measurements


def naive(db: Database, tenant_id: str, program_id: str) -> tuple[float, int]:
    """One plain ``INSERT INTO scratch SELECT account_id, SUM(value) … GROUP BY account_id``
    over the program's metric rows of the year, in a transaction; (seconds, rows written)."""
    first, last = YEAR * 12, YEAR * 12 + 11
    started = time.perf_counter()
    with db.transaction() as s:
        s.execute(text("CREATE TEMPORARY TABLE naive_scratch (account_id VARCHAR(40), "
                       "value BIGINT)"))
        s.execute(text(
            "INSERT INTO naive_scratch (account_id, value) SELECT account_id, SUM(value) "
            "FROM tier_metric WHERE tenant_id = :t AND program_id = :p AND metric = :m "
            "AND bucket >= :a AND bucket <= :b GROUP BY account_id"),
            {"t": tenant_id, "p": program_id, "m": METRIC, "a": first, "b": last})
        seconds = time.perf_counter() - started
        count = int(s.execute(text("SELECT COUNT(*) FROM naive_scratch")).scalar_one())
        s.execute(text("DROP TABLE naive_scratch"))
    return seconds, count


def recalculate(db: Database, tenant_id: str, program_id: str) -> tuple[float,
                                                                        tiers.Recalculation]:
    started = time.perf_counter()
    with db.transaction() as s:
        result = tiers.recalculate(s, tenant_id, program_id, at=AT)
    return time.perf_counter() - started, result


def check_sample(db: Database, tenant_id: str, program_id: str, data: Data, engine: str,
                 seed: int, name: str) -> Check:
    """1,000 members: status, history value and enrolment tier against the pure domain."""
    ladder = domain.from_dict(LADDER)
    picks = random.Random(seed).sample(range(len(data.account_ids)),
                                       min(SAMPLE, len(data.account_ids)))
    ids = [data.account_ids[i] for i in picks]
    st, ch, en = tiers.TierStatus, tiers.TierChange, members.Enrolment
    with db.read() as s:
        held = dict(s.execute(select(st.account_id, st.level_code).where(
            st.tenant_id == tenant_id, st.account_id.in_(ids))).all())
        changes = {a: (lvl, v) for a, lvl, v in s.execute(
            select(ch.account_id, ch.to_level, ch.value).where(
                ch.tenant_id == tenant_id, ch.account_id.in_(ids))).all()}
        enrolled = dict(s.execute(select(en.account_id, en.tier).where(
            en.tenant_id == tenant_id, en.program_id == program_id,
            en.account_id.in_(ids))).all())
    wrong = []
    for i, acc in zip(picks, ids, strict=True):
        total = int(data.sums[i])
        want = domain.qualify(ladder, total)
        history = (want, total) if want is not None else None
        if held.get(acc) != want or changes.get(acc) != history or enrolled.get(acc) != want:
            wrong.append(acc)
    levels = {code: sum(1 for i in picks if domain.qualify(ladder, int(data.sums[i])) == code)
              for code in [*(lvl.code for lvl in ladder.levels), None]}
    detail = (f"{len(ids) - len(wrong)}/{len(ids)} sampled members right; sample levels "
              + ", ".join(f"{k or 'none'}={v}" for k, v in levels.items()))
    if wrong:
        detail += f"; first wrong {wrong[0]}"
    return Check(f"{name}.sample", engine, not wrong, detail)


def count_changes(db: Database, tenant_id: str) -> int:
    with db.read() as s:
        return int(s.execute(select(func.count()).select_from(tiers.TierChange).where(
            tiers.TierChange.tenant_id == tenant_id)).scalar_one())


def run_engine(engine: str, url: str, n_members: int, n_rows: int, seed: int,
               figures: list[Figure], checks: list[Check]) -> None:
    db = Database(url)
    try:
        with db.transaction() as s:
            tenant = tenants.create_tenant(s, "Bench tiers")
            program = tenants.create_program(s, tenant.id, code="bench", name="Bench",
                                             base_currency="EUR")
            tiers.create_ladder(s, tenant.id, program.id, LADDER)
            tenant_id, program_id = tenant.id, program.id
        started = time.perf_counter()
        data = generate(n_members, n_rows, seed)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        load(engine, url, tenant_id, program_id, data)
        loaded = time.perf_counter() - started
        print(f"tiers.setup engine={engine} members={n_members} rows={n_rows} "
              f"generate={generated:.1f}s load={loaded:.1f}s")
        ladder = domain.from_dict(LADDER)
        expected_levels = int((data.sums >= ladder.levels[0].threshold).sum())

        naive(db, tenant_id, program_id)  # warm-up: both measurements read a warm cache
        size = f"{n_members} members, {n_rows} rows"
        for name, expect_moves in (("tiers.recalculate.first", expected_levels),
                                   ("tiers.recalculate.repeat", 0)):
            limit_seconds, grouped = naive(db, tenant_id, program_id)
            seconds, result = recalculate(db, tenant_id, program_id)
            figures.append(TimeFigure(
                name, engine, n_members, seconds, limit_name="naive_group_by", goal=GOAL,
                limit_seconds=limit_seconds,
                note=f"{size}; {result.upgraded} upgraded, {result.evaluated} evaluated",
                extra={"limit_rows": grouped, "evaluated": result.evaluated,
                       "upgraded": result.upgraded, "downgraded": result.downgraded}))
            print(figures[-1].line())
            checks.append(Check(f"{name}.counts", engine,
                                grouped == n_members and result.evaluated == n_members
                                and result.upgraded == expect_moves and result.downgraded == 0,
                                f"naive rows={grouped}, evaluated={result.evaluated}, "
                                f"upgraded={result.upgraded} (expected {expect_moves})"))
            changes = count_changes(db, tenant_id)
            checks.append(Check(f"{name}.history", engine, changes == expected_levels,
                                f"{changes} tier_change rows, {expected_levels} members "
                                "with a level"))
            checks.append(check_sample(db, tenant_id, program_id, data, engine, seed, name))
            for check in checks[-3:]:
                print(check.line())
    finally:
        db.engine.dispose()


# ---------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tiers-members", type=int, default=None,
                        help="members (default 1,000,000; quick 100,000)")
    parser.add_argument("--tiers-rows", type=int, default=None,
                        help="tier_metric rows (default 10 per member)")


def run(args: argparse.Namespace) -> bool:
    n_members = args.tiers_members or (100_000 if args.quick else 1_000_000)
    n_rows = args.tiers_rows or 10 * n_members
    figures: list[Figure] = []
    checks: list[Check] = []
    for engine in args.engine:
        if engine == "postgres" and not postgres_available():
            print("tiers engine=postgres SKIPPED (PostgreSQL not reachable)")
            continue
        with databases(engine) as dbs:
            run_engine(engine, dbs.new(), n_members, n_rows, args.seed, figures, checks)
    write_results("tiers", {"members": n_members, "rows": n_rows, "seed": args.seed,
                            "engines": args.engine, "at": AT.isoformat(), "ladder": LADDER},
                  figures, checks)
    return bool(figures) and all(f.passed for f in figures) and all(c.ok for c in checks)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--engine", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--seed", type=int, default=20261123)
    add_arguments(parser)
    options = parser.parse_args()
    options.engine = options.engine or ["sqlite", "postgres"]
    raise SystemExit(0 if run(options) else 1)
