"""``python -m bench expiry``: the expiry job over N members' lots against the tier
recalculation of the same members, in the same run.

Goal (issue "Bulk ingestion, simulation and the benchmark suite"): the expiry job over 1M
members with lots takes ≤ 2× the time of ``tiers.recalculate`` on the same data.

Per engine, one fresh migrated database: a tenant and program (services) with a ``points`` unit
whose lots expire 12 months after earning, a ``credits`` unit whose points expire after 12
months without activity, and a 4-level primary ladder on ``points_earned`` (calendar year).
Seeded, bulk-loaded by the driver (constraint checks and the aging trigger off during the
load; the aging rows are loaded with the rest, as the trigger would have kept them): N
accounts with active enrolments and a points wallet each; per member ``--expiry-lots`` earnings
(one journal entry, two postings and one lot each), a share ``--expiry-due`` of them earned
more than a year ago (due at the run's clock); 30 % of members with one redemption that
consumed their oldest lots (partly consumed lots), 5 % with a pending hold reserving part of
the balance, 10 % with a credits wallet of two lots, half of those inactive for 14 months; the
wallets' counters and the program accounts' consistent with the postings; the
``tier_metric`` rows of the same earnings (per member and month). Then, back to back:

- **limit** ``tiers.recalculate``: ``tiers.recalculate(session, tenant, program, at=NOW)`` in
  one transaction (every member new: statuses, history and enrolment tiers written);
- ``expiry``: ``ledger.run_expiry(db.transaction)`` at the same clock (chunks of 20,000 lots,
  each committed).

Correctness: ``ledger reconcile`` clean (every account's counters equal its postings and
pending holds); every due lot's remaining is 0, or its wallet has a pending hold that covers
what is left; the points expired equal the generator's expectation (per wallet: its due lots
in expiry order, each losing what the available balance still covers) and so does the number
of lots; the expiry entries' hash chain verifies from the loaded journal's last hash to the
sequence's; the aging table equals its recomputation for 1,000 sampled wallets; a second run
expires nothing.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import text

from allegiance import ledger, tenants, tiers
from allegiance.kit import clock, sequences
from allegiance.kit.db import Database
from allegiance.kit.expiry import add_months
from allegiance.ledger.aging import day_number
from bench.common import (
    Check,
    Figure,
    bulk_load,
    databases,
    postgres_available,
    write_results,
)
from bench.tiers import TimeFigure

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
GOAL = 2.0
CHUNK = 100_000
HOLD_SHARE, REDEEM_SHARE, CREDITS_SHARE = 0.05, 0.30, 0.10
LOADED_HASH = "b" * 64  # the loaded journal's last hash (its entries are not chained)
LADDER: dict[str, Any] = {
    "code": "status", "name": "Status", "metric": "points_earned", "primary": True,
    "period": {"kind": "calendar_year"},
    "levels": [{"code": "bronze", "name": "Bronze", "threshold": 500},
               {"code": "silver", "name": "Silver", "threshold": 1_500},
               {"code": "gold", "name": "Gold", "threshold": 3_000},
               {"code": "platinum", "name": "Platinum", "threshold": 5_000}]}


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class Lot:
    member: int
    wallet: str
    amount: int
    remaining: int
    earned: datetime
    expires: datetime | None
    credits: bool  # a lot of the inactivity unit


@dataclass
class Data:
    n: int
    lots: list[Lot]
    redeemed: dict[int, tuple[int, datetime]]  # member → (amount, at)
    holds: dict[int, int]  # member → pending amount
    idle: dict[int, datetime]  # member with a credits wallet → its last activity
    expected_points: int
    expected_lots: int


def generate(n: int, per_member: int, due_share: float, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    lots: list[Lot] = []
    due = rng.random((n, per_member)) < due_share
    days_due = rng.integers(367, 720, (n, per_member))
    days_fresh = rng.integers(1, 360, (n, per_member))
    amounts = rng.integers(10, 1_000, (n, per_member))
    seconds = rng.integers(0, 86_400, (n, per_member))
    redeem = rng.random(n) < REDEEM_SHARE
    hold = rng.random(n) < HOLD_SHARE
    fraction = rng.uniform(0.1, 0.9, n)
    credits = rng.random(n) < CREDITS_SHARE
    inactive = rng.random(n) < 0.5
    redeemed: dict[int, tuple[int, datetime]] = {}
    holds: dict[int, int] = {}
    idle: dict[int, datetime] = {}
    expected_points = expected_lots = 0
    for m in range(n):
        wallet = f"wal_b{m:024d}"
        days = np.where(due[m], days_due[m], days_fresh[m])
        earned = sorted(NOW - timedelta(days=int(d), seconds=int(s))
                        for d, s in zip(days, seconds[m], strict=True))
        mine = [Lot(m, wallet, int(a), int(a), at, add_months(at, 12), False)
                for a, at in zip(amounts[m], earned, strict=True)]
        balance = sum(x.amount for x in mine)
        if redeem[m]:  # consumes the oldest lots first
            amount = max(1, int(balance * fraction[m] * 0.5))
            redeemed[m] = (amount, NOW - timedelta(days=2))
            left = amount
            for lot in mine:
                use = min(lot.remaining, left)
                lot.remaining -= use
                left -= use
            balance -= amount
        budget = balance
        if hold[m] and balance > 1:
            holds[m] = max(1, int(balance * fraction[m]))
            budget -= holds[m]
        for lot in mine:  # what the job must expire, in expiry order
            assert lot.expires is not None
            if lot.expires <= NOW and lot.remaining > 0:
                take = min(lot.remaining, max(0, budget))
                budget -= take
                expected_points += take
                expected_lots += take > 0
        lots.extend(mine)
        if credits[m]:
            last = NOW - timedelta(days=425 if inactive[m] else 60)
            idle[m] = last
            for k in range(2):
                amount = int(amounts[m][k]) // 2 + 1
                lots.append(Lot(m, f"wac_b{m:024d}", amount, amount,
                                last - timedelta(days=10 * k), None, True))
                if inactive[m]:
                    expected_points += amount
                    expected_lots += 1
    return Data(n, lots, redeemed, holds, idle, expected_points, expected_lots)


def _stamp(engine: str, at: datetime) -> Any:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f") if engine == "sqlite" else at


ACCOUNT = ("tenant_id", "id", "name", "member_number", "attributes", "status", "created_at",
           "updated_at")
ENROLMENT = ("tenant_id", "id", "program_id", "account_id", "status", "application",
             "created_at", "updated_at")
LEDGER_ACCOUNT = ("tenant_id", "id", "program_id", "unit_id", "owner_type", "owner_id",
                  "purpose", "normal", "no_overdraw", "floor", "debits_posted", "credits_posted",
                  "debits_pending", "credits_pending", "last_activity_at", "created_at")
ENTRY = ("tenant_id", "id", "seq", "program_id", "kind", "meta", "effective_at", "created_at",
         "hash")
POSTING = ("tenant_id", "entry_id", "line_no", "account_id", "unit_id", "side", "amount")
LOT = ("tenant_id", "id", "account_id", "entry_id", "line_no", "amount", "remaining",
       "earned_at", "expires_at")
HOLD = ("tenant_id", "id", "program_id", "debit_account_id", "credit_account_id", "unit_id",
        "amount", "posted_amount", "state", "kind", "expires_at", "created_at")
AGING = ("tenant_id", "account_id", "day", "credits", "debits", "remaining")
METRIC = ("tenant_id", "program_id", "metric", "account_id", "bucket", "value", "updated_at")


def _rows(engine: str, ids: dict[str, str], data: Data) -> Iterator[
        tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    t, p, u, c = ids["tenant"], ids["program"], ids["points"], ids["credits"]
    st = lambda at: _stamp(engine, at)  # noqa: E731
    created = st(NOW - timedelta(days=800))
    yes: Any = 1 if engine == "sqlite" else True
    no: Any = 0 if engine == "sqlite" else False
    credited: dict[str, int] = {}
    last_at: dict[str, datetime] = {}
    # Aging: (wallet, day) → [credits, debits]; the remaining follows per wallet.
    aging: dict[str, dict[int, list[int]]] = {}
    metrics: dict[tuple[int, int], int] = {}
    entries: list[tuple[Any, ...]] = []
    postings: list[tuple[Any, ...]] = []
    lots: list[tuple[Any, ...]] = []
    issued = {u: 0, c: 0}
    for k, lot in enumerate(data.lots):
        unit = c if lot.credits else u
        entry = f"txn_b{k:024d}"
        at = st(lot.earned)
        entries.append((t, entry, k + 1, p, "earn", "{}", at, at, "a" * 64))
        postings += [(t, entry, 1, ids[f"issued:{unit}"], unit, "D", lot.amount),
                     (t, entry, 2, lot.wallet, unit, "C", lot.amount)]
        lots.append((t, f"lot_b{k:024d}", lot.wallet, entry, 2, lot.amount, lot.remaining, at,
                     None if lot.expires is None else st(lot.expires)))
        issued[unit] += lot.amount
        credited[lot.wallet] = credited.get(lot.wallet, 0) + lot.amount
        last_at[lot.wallet] = max(last_at.get(lot.wallet, lot.earned), lot.earned)
        day = aging.setdefault(lot.wallet, {}).setdefault(day_number(lot.earned), [0, 0])
        day[0] += lot.amount
        if not lot.credits:
            bucket = lot.earned.year * 12 + lot.earned.month - 1
            metrics[(lot.member, bucket)] = metrics.get((lot.member, bucket), 0) + lot.amount
        if len(entries) >= CHUNK:
            yield "journal_entry", ENTRY, entries
            yield "posting", POSTING, postings
            yield "lot", LOT, lots
            entries, postings, lots = [], [], []
    seq = len(data.lots)
    redeemed_total = 0
    for m, (amount, at) in sorted(data.redeemed.items()):
        seq += 1
        wallet, entry = f"wal_b{m:024d}", f"txr_b{m:024d}"
        entries.append((t, entry, seq, p, "redeem", "{}", st(at), st(at), "a" * 64))
        postings += [(t, entry, 1, wallet, u, "D", amount),
                     (t, entry, 2, ids["redeemed"], u, "C", amount)]
        redeemed_total += amount
        last_at[wallet] = max(last_at[wallet], at)
        aging[wallet].setdefault(day_number(at), [0, 0])[1] += amount
    yield "journal_entry", ENTRY, entries
    yield "posting", POSTING, postings
    yield "lot", LOT, lots
    yield "sequence", ("tenant_id", "name", "last_value", "last_hash"), [
        (t, "journal", seq, LOADED_HASH)]
    for first in range(0, data.n, CHUNK):
        span = range(first, min(first + CHUNK, data.n))
        yield "account", ACCOUNT, [(t, f"acc_b{m:024d}", "Bench", f"B{m:09d}", "{}", "active",
                                    created, created) for m in span]
        yield "enrolment", ENROLMENT, [(t, f"enr_b{m:024d}", p, f"acc_b{m:024d}", "active",
                                        "{}", created, created) for m in span]
        rows = []
        for m in span:
            for wallet, unit in ((f"wal_b{m:024d}", u), (f"wac_b{m:024d}", c)):
                if wallet not in credited:
                    continue
                debits = data.redeemed[m][0] if m in data.redeemed and unit == u else 0
                pending = data.holds.get(m, 0) if unit == u else 0
                last = data.idle[m] if unit == c else last_at[wallet]
                rows.append((t, wallet, p, unit, "account", f"acc_b{m:024d}", "wallet",
                             "credit", yes, 0, debits, credited[wallet], pending, 0, st(last),
                             created))
        yield "ledger_account", LEDGER_ACCOUNT, rows
    held = sum(data.holds.values())
    yield "ledger_account", LEDGER_ACCOUNT, [
        (t, ids[f"issued:{u}"], p, u, "program", p, "issued", "debit", no, 0, issued[u], 0, 0, 0,
         None, created),
        (t, ids[f"issued:{c}"], p, c, "program", p, "issued", "debit", no, 0, issued[c], 0, 0, 0,
         None, created),
        (t, ids["redeemed"], p, u, "program", p, "redeemed", "credit", no, 0, 0, redeemed_total,
         0, held, None, created)]
    yield "hold", HOLD, [
        (t, f"hld_b{m:024d}", p, f"wal_b{m:024d}", ids["redeemed"], u, amount, 0, "pending",
         "redeem", st(NOW + timedelta(days=1)), st(NOW - timedelta(hours=1)))
        for m, amount in sorted(data.holds.items())]
    rows = []
    for wallet, by_day in aging.items():
        left = sum(cr - db for cr, db in by_day.values())
        for day in sorted(by_day, reverse=True):
            cr, db = by_day[day]
            part = max(0, min(cr, left))
            left -= part
            rows.append((t, wallet, day, cr, db, part))
    yield "ledger_aging", AGING, rows
    yield "tier_metric", METRIC, [
        (t, p, "points_earned", f"acc_b{m:024d}", bucket, value, created)
        for (m, bucket), value in sorted(metrics.items())]


def load(engine: str, url: str, ids: dict[str, str], data: Data) -> None:
    """Bulk-load with the driver, constraint checks and the aging trigger off (the rows are
    consistent by construction, the aging rows included)."""
    bulk_load(engine, url, _rows(engine, ids, data), trigger_aside="ledger_aging_track",
              before=["DELETE FROM sequence WHERE name = 'journal'"])


# ---------------------------------------------------------------------------------------------
# Checks


def _scalar(db: Database, sql: str, **params: Any) -> int:
    with db.read() as s:
        return int(s.execute(text(sql), params).scalar_one() or 0)


def check_chain(db: Database, tenant_id: str) -> tuple[bool, str]:
    """The expiry entries' hashes chain from the loaded journal's last hash to the sequence's
    last hash (what ``ledger.verify_chain`` computes, over the entries the job wrote)."""
    with db.read() as s:
        entries = s.execute(text(
            "SELECT id, seq, program_id, kind, effective_at, entry_key, hash FROM journal_entry "
            "WHERE tenant_id = :t AND kind = 'expiry' ORDER BY seq"), {"t": tenant_id}).all()
        lines: dict[str, list[str]] = {}
        for entry_id, line_no, account, unit, side, amount in s.execute(text(
                "SELECT p.entry_id, p.line_no, p.account_id, p.unit_id, p.side, p.amount "
                "FROM posting p JOIN journal_entry e ON e.tenant_id = p.tenant_id "
                "AND e.id = p.entry_id WHERE e.tenant_id = :t AND e.kind = 'expiry' "
                "ORDER BY p.entry_id, p.line_no"), {"t": tenant_id}):
            lines.setdefault(entry_id, []).append(f"{line_no}:{account}:{unit}:{side}:{amount}")
        last = s.execute(text("SELECT last_hash FROM sequence WHERE tenant_id = :t "
                              "AND name = 'journal'"), {"t": tenant_id}).scalar_one()
        loaded = s.execute(text("SELECT MAX(seq) FROM journal_entry WHERE tenant_id = :t "
                                "AND kind <> 'expiry'"), {"t": tenant_id}).scalar_one()
    previous, expected_seq = LOADED_HASH, int(loaded) + 1
    for entry_id, seq, program_id, kind, effective_at, key, stored in entries:
        at = effective_at if isinstance(effective_at, datetime) else datetime.fromisoformat(
            str(effective_at)).replace(tzinfo=UTC)
        previous = sequences.chain(previous, (
            f"{seq}|{entry_id}|{program_id}|{kind}|{at.astimezone(UTC).isoformat()}|{key}||"
            + ";".join(lines.get(entry_id, []))))
        if previous != stored or seq != expected_seq:
            return False, f"entry seq {seq} does not verify"
        expected_seq += 1
    ok = previous == last
    return ok, f"{len(entries)} expiry entries chained, sequence hash {'=' if ok else '≠'} last"


def check_aging(db: Database, tenant_id: str, seed: int) -> tuple[bool, str]:
    """For 1,000 sampled wallets with an expiry entry: the aging rows equal their
    recomputation from the wallet's postings."""
    with db.read() as s:
        wallets = sorted({str(r[0]) for r in s.execute(text(
            "SELECT DISTINCT p.account_id FROM posting p JOIN journal_entry e "
            "ON e.tenant_id = p.tenant_id AND e.id = p.entry_id WHERE e.tenant_id = :t "
            "AND e.kind = 'expiry' AND p.side = 'D'"), {"t": tenant_id})})
        picks = random.Random(seed).sample(wallets, min(1_000, len(wallets)))
        wrong = 0
        for wallet in picks:
            days: dict[int, list[int]] = {}
            for at, side, amount in s.execute(text(
                    "SELECT e.effective_at, p.side, p.amount FROM posting p JOIN journal_entry e "
                    "ON e.tenant_id = p.tenant_id AND e.id = p.entry_id "
                    "WHERE p.tenant_id = :t AND p.account_id = :a"), {"t": tenant_id, "a": wallet}):
                moment = at if isinstance(at, datetime) else datetime.fromisoformat(
                    str(at)).replace(tzinfo=UTC)
                day = days.setdefault(day_number(moment), [0, 0])
                day[0 if side == "C" else 1] += int(amount)
            left = sum(c - d for c, d in days.values())
            want = {}
            for day in sorted(days, reverse=True):
                part = max(0, min(days[day][0], left))
                left -= part
                want[day] = (days[day][0], days[day][1], part)
            got = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in s.execute(text(
                "SELECT day, credits, debits, remaining FROM ledger_aging WHERE tenant_id = :t "
                "AND account_id = :a"), {"t": tenant_id, "a": wallet})}
            wrong += got != want
    return wrong == 0, f"{len(picks) - wrong}/{len(picks)} sampled wallets' aging right"


# ---------------------------------------------------------------------------------------------


def setup_program(db: Database) -> dict[str, str]:
    """The benchmark's tenant, program, its two expiring units and the ladder; the ids the
    loader needs (``load``)."""
    with db.transaction() as s:
        tenant = tenants.create_tenant(s, "Bench expiry")
        program = tenants.create_program(s, tenant.id, code="bench", name="Bench",
                                         base_currency="USD")
        points = tenants.create_unit(s, tenant.id, program.id, code="points", name="Points",
                                     kind="points", value_in_base="0.01", expiry_policy={
                                         "kind": "after_months", "months": 12})
        credits = tenants.create_unit(s, tenant.id, program.id, code="credits",
                                      name="Credits", kind="points", value_in_base="0.01",
                                      expiry_policy={"kind": "inactivity", "months": 12})
        tiers.create_ladder(s, tenant.id, program.id, LADDER)
    return {"tenant": tenant.id, "program": program.id, "points": points.id,
            "credits": credits.id, f"issued:{points.id}": "lac_bissuedpoints",
            f"issued:{credits.id}": "lac_bissuedcredits", "redeemed": "lac_bredeemed"}


def run_engine(engine: str, url: str, data: Data, seed: int, figures: list[Figure],
               checks: list[Check]) -> None:
    db = Database(url)
    try:
        ids = setup_program(db)
        t, p = ids["tenant"], ids["program"]
        started = time.perf_counter()
        load(engine, url, ids, data)
        print(f"expiry.setup engine={engine} members={data.n} lots={len(data.lots)} "
              f"load={time.perf_counter() - started:.1f}s (not a goal)", flush=True)
        with clock.frozen(NOW):
            started = time.perf_counter()
            with db.transaction() as s:
                recalculated = tiers.recalculate(s, t, p, at=NOW)
            limit = time.perf_counter() - started
            started = time.perf_counter()
            report = ledger.run_expiry(db.transaction)
            seconds = time.perf_counter() - started
            again = ledger.run_expiry(db.transaction)
        figures.append(TimeFigure(
            "expiry", engine, report.lots, seconds, limit_name="tiers.recalculate", goal=GOAL,
            limit_seconds=limit,
            note=f"{data.n} members, {len(data.lots)} lots; {report.lots} lots expired, "
                 f"{report.points} points; {recalculated.evaluated} members evaluated",
            extra={"lots": report.lots, "points": report.points, "entries": report.entries}))
        print(figures[-1].line(), flush=True)
        mine: list[Check] = []
        with db.read() as s:
            accounts, bad = ledger.reconcile(s, t)
        mine.append(Check("expiry.reconcile", engine, not bad,
                          f"{accounts} accounts, {len(bad)} mismatches"))
        mine.append(Check("expiry.expected", engine,
                          report.points == data.expected_points
                          and report.lots == data.expected_lots == report.entries,
                          f"{report.points} points in {report.lots} lots; generator expects "
                          f"{data.expected_points} in {data.expected_lots}"))
        expired_account = _scalar(db, "SELECT COALESCE(SUM(credits_posted), 0) FROM "
                                      "ledger_account WHERE tenant_id = :t AND purpose = "
                                      "'expired'", t=t)
        mine.append(Check("expiry.expired_account", engine,
                          expired_account == data.expected_points,
                          f"expired accounts hold {expired_account}"))
        over = _scalar(db, (
            "SELECT COUNT(*) FROM (SELECT l.account_id, SUM(l.remaining) AS left_over "
            "FROM lot l WHERE l.tenant_id = :t AND l.remaining > 0 AND l.expires_at <= :now "
            "GROUP BY l.account_id) d LEFT JOIN (SELECT debit_account_id, SUM(amount) AS held "
            "FROM hold WHERE tenant_id = :t AND state = 'pending' GROUP BY debit_account_id) h "
            "ON h.debit_account_id = d.account_id WHERE d.left_over > COALESCE(h.held, 0)"),
            t=t, now=_stamp(engine, NOW))
        mine.append(Check("expiry.due_lots_left", engine, over == 0,
                          f"{over} wallets keep due points beyond their holds"))
        ok, detail = check_chain(db, t)
        mine.append(Check("expiry.chain", engine, ok, detail))
        ok, detail = check_aging(db, t, seed)
        mine.append(Check("expiry.aging", engine, ok, detail))
        mine.append(Check("expiry.rerun", engine, again.lots == 0 and again.entries == 0,
                          f"second run: {again.lots} lots, {again.entries} entries"))
        for check in mine:
            print(check.line(), flush=True)
        checks.extend(mine)
    finally:
        db.dispose()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expiry-members", type=int, default=None,
                        help="expiry: members (default 1,000,000; quick 100,000)")
    parser.add_argument("--expiry-lots", type=int, default=3,
                        help="expiry: points lots per member (default 3)")
    parser.add_argument("--expiry-due", type=float, default=0.25,
                        help="expiry: share of lots due at the run's clock (default 0.25)")


def run(args: argparse.Namespace) -> bool:
    n = args.expiry_members or (100_000 if args.quick else 1_000_000)
    started = time.perf_counter()
    data = generate(n, args.expiry_lots, args.expiry_due, args.seed)
    print(f"expiry.generate members={n} lots={len(data.lots)} due points="
          f"{data.expected_points} in {data.expected_lots} lots "
          f"({time.perf_counter() - started:.1f}s)", flush=True)
    figures: list[Figure] = []
    checks: list[Check] = []
    for engine in args.engine:
        if engine == "postgres" and not postgres_available():
            print("expiry engine=postgres SKIPPED (no server)")
            continue
        with databases(engine) as dbs:
            run_engine(engine, dbs.new(), data, args.seed, figures, checks)
    path = write_results("expiry", {"members": n, "lots_per_member": args.expiry_lots,
                                    "due_share": args.expiry_due, "seed": args.seed},
                         figures, checks)
    print(f"expiry results: {path}")
    return all(c.ok for c in checks) and all(f.passed for f in figures)
