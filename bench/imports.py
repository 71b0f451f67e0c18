"""``python -m bench imports``: the memory of bulk imports (``ingest.memory``).

A seeded CSV of purchase lines (1–3 lines per purchase, 1,000 members) is imported by the
real command, ``allegiance import purchases FILE``, in a child process whose peak resident
memory is read from the kernel (``wait4``'s ``ru_maxrss``) — the whole process: Python,
SQLAlchemy, Polars, the reader, the grouping, the error report. The files are generated in
another child so that this process stays small: a child's ``ru_maxrss`` includes the memory it
shared with its parent before ``exec`` (a first version generated the files here, and its 1M-row
frame showed in the measurement as a 302 MiB "peak" of the import).

* ``ingest.memory.check``: ``--check`` (read, validate, group every row, write the error
  report; nothing stored) over N rows (default 1,000,000; ``--quick`` 200,000) and over N/10
  rows. Goal: peak RSS ≤ 1 GiB, and the larger file needs at most 1.25× the memory of the
  smaller (memory does not grow with the file).
* ``ingest.memory.import``: a real import through the events service (rules, limits, ledger)
  of M rows (default 20,000; quick 4,000) and M/4 rows into SQLite, same goals.

Correctness: the import creates one event per purchase and rejects the generated bad rows
(one in 500) exactly; importing the file again creates nothing; ``ledger.reconcile`` finds no
mismatch; the journal has one entry per event that earned.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import func, select

from allegiance import definitions, events, ledger, members, tenants
from allegiance.kit.db import Database
from bench.common import ROOT, Check, databases, write_results

MIB = 1024 * 1024
LIMIT = 1024 * MIB
GROWTH = 1.25
N_MEMBERS = 1000
DEFINITION = {
    "program": {"code": "main", "name": "Main", "base_currency": "USD"},
    "units": [{"code": "points", "name": "Points", "kind": "points", "value_in_base": "0.01"}],
    "product_lists": {"genuine": [f"SKU-{i}" for i in range(0, 200, 3)]},
    "rules": [
        {"code": "base", "effects": [{"type": "points_per_amount", "unit": "points",
                                      "rate": "0.01"}]},
        {"code": "genuine", "condition": 'in_list(line.sku, "genuine")',
         "effects": [{"type": "points_per_item", "unit": "points", "points": 5}],
         "limits": [{"per": "member", "period": "month", "max": 500}]},
    ],
}


def write_csv(path: Path, rows: int, seed: int) -> tuple[int, int]:
    """Purchase lines, rows with one purchase's lines together; (purchases, bad purchases)."""
    rng = np.random.default_rng(seed)
    lines = rng.integers(1, 4, rows)
    purchase_of_row = np.repeat(np.arange(rows), lines)[:rows]
    n_purchases = int(purchase_of_row[-1]) + 1
    bad = rng.random(n_purchases) < 1 / 500
    day = rng.integers(0, 365, n_purchases)
    quantity = rng.integers(1, 5, rows).astype(str).astype(object)
    quantity[bad[purchase_of_row]] = "many"
    frame = pl.DataFrame({
        "external_id": pl.Series(purchase_of_row).cast(pl.Utf8).str.pad_start(9, "0"),
        "occurred_at": (pl.Series(day[purchase_of_row]).cast(pl.Int64) * 86_400_000_000
                        + 1_767_225_600_000_000).cast(pl.Datetime("us", "UTC"))
        .dt.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "member_number": pl.Series(rng.integers(0, N_MEMBERS, n_purchases)[purchase_of_row])
        .cast(pl.Utf8).str.pad_start(5, "0"),
        "sku": "SKU-" + pl.Series(rng.integers(0, 200, rows)).cast(pl.Utf8),
        "line_quantity": pl.Series(quantity.tolist(), dtype=pl.Utf8),
        "unit_price": rng.integers(100, 50_000, rows),
    })
    frame.write_csv(path)
    return n_purchases, int(bad.sum())


def write_csv_apart(path: Path, rows: int, seed: int) -> tuple[int, int]:
    """:func:`write_csv` in a child process. This process must stay small: a child's
    ``ru_maxrss`` counts the memory it shared with this process before ``exec``, so a
    parent grown by the generator would show in every measurement."""
    code = ("import json, sys; from pathlib import Path; from bench.imports import write_csv; "
            "print(json.dumps(write_csv(Path(sys.argv[1]), int(sys.argv[2]), "
            "int(sys.argv[3]))))")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(rows), str(seed)],
                          cwd=ROOT, capture_output=True, text=True, check=True, timeout=3600)
    purchases, bad = json.loads(done.stdout.strip().splitlines()[-1])
    return int(purchases), int(bad)


def setup(url: str) -> str:
    db = Database(url)
    try:
        with db.transaction() as s:
            tenant = tenants.create_tenant(s, "Bench")
            definitions.apply(s, tenant.id, DEFINITION, actor="bench",
                              effective_from=datetime(2020, 1, 1, tzinfo=UTC))
            for n in range(N_MEMBERS):
                members.create_account(s, tenant.id, name=f"M{n}", member_number=f"{n:05d}")
        return tenant.id
    finally:
        db.engine.dispose()


def run_import(url: str, tenant: str, path: Path, check: bool) -> tuple[int, dict[str, Any]]:
    """(peak RSS in bytes, the JSON report) of ``allegiance import purchases`` in a child."""
    command = [sys.executable, "-c", "from allegiance.cli import main; main()", "import",
               "purchases", str(path), "--program", "main", "--tenant", tenant,
               "--database-url", url, "--json", "--quiet",
               "--errors", str(path.with_suffix(".errors.csv"))]
    if check:
        command.append("--check")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"import failed: {err.read().decode()[-2000:]}")
        text = out.read().decode()
    return usage.ru_maxrss * 1024, json.loads(text.strip().splitlines()[-1])


def _line(name: str, rows: int, rss: int, small_rows: int, small_rss: int) -> tuple[str, bool]:
    ok = rss <= LIMIT and rss <= GROWTH * small_rss
    return (f"{name} engine=sqlite rows={rows} peak_rss={rss / MIB:.0f}MiB "
            f"limit=1024MiB at_{small_rows}_rows={small_rss / MIB:.0f}MiB "
            f"growth={rss / small_rss:.2f} goal=<=1024MiB,growth<={GROWTH:g} "
            f"{'PASS' if ok else 'FAIL'}"), ok


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--imports-rows", type=int, default=None,
                        help="rows of the --check run (default 1,000,000; quick 200,000)")
    parser.add_argument("--imports-full-rows", type=int, default=None,
                        help="rows of the real import (default 20,000; quick 4,000)")


def run(args: argparse.Namespace) -> bool:
    check_rows = args.imports_rows or (200_000 if args.quick else 1_000_000)
    full_rows = args.imports_full_rows or (4_000 if args.quick else 20_000)
    results: dict[str, Any] = {}
    checks: list[Check] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="allegiance-bench-imports-") as folder, \
            databases("sqlite") as dbs:
        url = dbs.new()
        tenant = setup(url)
        for name, rows, check in (("ingest.memory.check", check_rows, True),
                                  ("ingest.memory.import", full_rows, False)):
            small = rows // (10 if check else 4)
            sizes = {}
            for size in (small, rows):
                path = Path(folder) / f"{name}-{size}.csv"
                purchases, bad = write_csv_apart(path, size, args.seed + size)
                target = url if check else dbs.new()
                if not check:
                    tenant_here = setup(target)
                rss, report = run_import(target, tenant if check else tenant_here, path, check)
                sizes[size] = (rss, report, purchases, bad, target, path)
                results[f"{name}.{size}"] = {"peak_rss": rss, "report": report}
            line, passed = _line(name, rows, sizes[rows][0], small, sizes[small][0])
            print(line)
            ok = ok and passed
            _, report, purchases, bad, target, path = sizes[rows]
            done = report["checked"] if check else report["created"] + report["unmatched"]
            checks.append(Check(f"{name}.counts", "sqlite",
                                done == purchases - bad and report["rejected_events"] == bad,
                                f"{purchases} purchases, {bad} bad"))
            if not check:
                _, again = run_import(target, tenant_here, path, False)
                checks.append(Check("ingest.replay_adds_nothing", "sqlite",
                                    again["created"] == 0 and again["replayed"] == done,
                                    f"{again['replayed']} replayed"))
                db = Database(target)
                try:
                    with db.read() as s:
                        _, mismatches = ledger.reconcile(s)
                        entries = s.scalar(select(func.count()).select_from(
                            ledger.JournalEntry)) or 0
                        earned = s.scalar(select(func.count(func.distinct(
                            events.EventAward.event_id))).where(
                            events.EventAward.entry_id.is_not(None))) or 0
                finally:
                    db.engine.dispose()
                checks.append(Check("ingest.ledger", "sqlite",
                                    not mismatches and entries == earned,
                                    f"{entries} entries, {len(mismatches)} mismatches"))
    for c in checks:
        print(c.line())
    write_results("imports", {"check_rows": check_rows, "full_rows": full_rows,
                              "seed": args.seed, "results": results}, [], checks)
    return ok and all(c.ok for c in checks)
