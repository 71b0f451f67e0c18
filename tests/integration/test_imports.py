"""Bulk import: files earn exactly what the same events earn one by one through the API's
path, bad rows go to the error report, and re-imports and interrupted imports apply every
row exactly once (T14)."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import func, select, text

from allegiance import events, imports, ledger
from allegiance.kit.db import Database
from tests.integration.events_support import NOW, Shop, definition
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

MEMBERS = ("M1", "M2", "M3")
SKUS = ("SKU-1", "SKU-2", "SKU-9")
COLUMNS = ["external_id", "occurred_at", "member_number", "sku", "line_quantity", "unit_price"]


def make_purchases(rng: random.Random, count: int, prefix: str = "INV") -> list[dict[str, Any]]:
    """Purchases with 1-3 lines; about one in six has a bad line, one in ten an unknown
    member (stored as unmatched, not an error)."""
    out = []
    for n in range(count):
        member = "M-UNKNOWN" if rng.random() < 0.1 else rng.choice(MEMBERS)
        lines = [{"sku": rng.choice(SKUS), "quantity": rng.randint(1, 4),
                  "unit_price": rng.randint(1, 50_000)} for _ in range(rng.randint(1, 3))]
        bad = rng.random() < 1 / 6
        out.append({"external_id": f"{prefix}-{n}", "member": member, "lines": lines,
                    "bad": bad})
    return out


def rows_of(purchases: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for p in purchases:
        for index, line in enumerate(p["lines"]):
            quantity = str(line["quantity"])
            if p["bad"] and index == len(p["lines"]) - 1:
                quantity = "many"
            rows.append({"external_id": p["external_id"], "occurred_at": NOW.isoformat(),
                         "member_number": p["member"], "sku": line["sku"],
                         "line_quantity": quantity, "unit_price": str(line["unit_price"])})
    return rows


def write(rows: list[dict[str, str]], path: Path) -> Path:
    frame = pl.DataFrame(rows, schema=dict.fromkeys(COLUMNS, pl.String))
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
    return path


def bulk_definition() -> dict[str, Any]:
    """The events tests' definition without its member counter (a program with counters
    takes the per-event path), so that imports take the bulk path."""
    doc = definition()
    doc.pop("counters")
    doc["rules"] = [r for r in doc["rules"] if r["code"] != "two-mandatory"]
    return doc


def shop_with_members(db: Database) -> tuple[Shop, dict[str, str]]:
    shop = Shop(db, bulk_definition())
    return shop, {m: shop.account(name=m, member_number=m) for m in MEMBERS}


def entries(db: Database, tenant_id: str) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(ledger.JournalEntry)
                            .where(ledger.JournalEntry.tenant_id == tenant_id)) or 0)


def event_count(db: Database, tenant_id: str) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(events.Event)
                            .where(events.Event.tenant_id == tenant_id)) or 0)


def balances(shop: Shop, accounts: dict[str, str]) -> dict[str, tuple[int, int]]:
    out = {}
    for member, account_id in accounts.items():
        b = shop.wallet(account_id)
        out[member] = (b.posted, b.available)
    return out


def run(shop: Shop, path: Path, kind: str = "purchases", **kw: Any) -> imports.Report:
    return imports.run(shop.db, shop.tenant_id, "main", kind, path, **kw)


@pytest.mark.parametrize("seed, suffix", [(1, ".csv"), (2, ".parquet"), (3, ".csv")])
def test_a_file_earns_exactly_what_the_same_events_earn_one_by_one(
        db: Database, tmp_path: Path, seed: int, suffix: str) -> None:
    rng = random.Random(seed)
    purchases = make_purchases(rng, 40)
    path = write(rows_of(purchases), tmp_path / f"purchases{suffix}")
    imported, imported_accounts = shop_with_members(db)
    errors = tmp_path / "errors.csv"
    report = run(imported, path, batch=rng.choice([1, 7, 25, 1000]), errors_path=errors)

    by_hand, by_hand_accounts = shop_with_members(db)
    good = [p for p in purchases if not p["bad"]]
    for p in good:
        by_hand.event(external_id=p["external_id"], source="import", member_number=p["member"],
                      lines=[{"sku": x["sku"], "quantity": x["quantity"],
                              "unit_price": x["unit_price"]} for x in p["lines"]])

    assert balances(imported, imported_accounts) == balances(by_hand, by_hand_accounts)
    assert entries(db, imported.tenant_id) == entries(db, by_hand.tenant_id) > 0
    assert event_count(db, imported.tenant_id) == len(good)
    assert report.created == len(good)
    assert report.paths.bulk > 0  # the matched members' purchases took the bulk path
    assert report.unmatched == sum(p["member"] == "M-UNKNOWN" for p in good)
    bad = [p for p in purchases if p["bad"]]
    assert report.rejected_events == len(bad)
    with errors.open(newline="") as f:
        reported = list(csv.DictReader(f))
    assert report.rejected_rows == len(reported) == sum(len(p["lines"]) for p in bad)
    quantity_errors = [r for r in reported if r["column"] == "line_quantity"]
    assert len(quantity_errors) == len(bad)
    assert all(r["value"] == "many" and "whole number" in r["reason"] for r in quantity_errors)
    lines_of = {i + 1: row for i, row in enumerate(rows_of(purchases))}
    assert all(lines_of[int(r["row"])]["line_quantity"] == "many" for r in quantity_errors)
    assert_ledger_invariants(db)


def test_re_importing_the_same_or_an_overlapping_file_adds_nothing(
        db: Database, tmp_path: Path) -> None:
    shop, accounts = shop_with_members(db)
    purchases = make_purchases(random.Random(7), 30)
    first = write(rows_of(purchases[:20]), tmp_path / "first.csv")
    run(shop, first, batch=8)
    before = (entries(db, shop.tenant_id), balances(shop, accounts))
    again = run(shop, first, batch=3)
    assert again.created == 0 and again.replayed == sum(not p["bad"] for p in purchases[:20])
    assert (entries(db, shop.tenant_id), balances(shop, accounts)) == before
    overlapping = write(rows_of(purchases[10:]), tmp_path / "overlap.parquet")
    report = run(shop, overlapping, batch=5)
    assert report.created == sum(not p["bad"] for p in purchases[20:])
    assert report.replayed == sum(not p["bad"] for p in purchases[10:20])
    assert event_count(db, shop.tenant_id) == sum(not p["bad"] for p in purchases)
    assert_ledger_invariants(db)


class Interrupted(Exception):
    pass


def test_an_import_interrupted_after_a_batch_resumes_and_applies_every_row_once(
        db: Database, tmp_path: Path) -> None:
    shop, accounts = shop_with_members(db)
    purchases = [dict(p, bad=False) for p in make_purchases(random.Random(11), 30)]
    path = write(rows_of(purchases), tmp_path / "purchases.csv")

    def boom(batches: int) -> None:
        if batches >= 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        run(shop, path, batch=10, after_batch=boom)
    part = event_count(db, shop.tenant_id)
    assert 0 < part < len(purchases)
    report = run(shop, path, batch=10)
    assert report.replayed == part and report.created == len(purchases) - part
    assert event_count(db, shop.tenant_id) == len(purchases)

    reference, reference_accounts = shop_with_members(db)
    run(reference, path, batch=1000)
    assert balances(shop, accounts) == balances(reference, reference_accounts)
    assert entries(db, shop.tenant_id) == entries(db, reference.tenant_id)
    assert_ledger_invariants(db)


class _Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


def test_a_batch_that_loses_a_deadlock_runs_again_and_every_row_counts_once(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL rolls back the loser of a deadlock (a batch's member locks against an API
    write's): the batch runs again instead of ending the import, and rows it rejected in the
    rolled-back attempt are reported once."""
    from sqlalchemy.exc import OperationalError

    from allegiance.imports import service

    purchases = make_purchases(random.Random(5), 30)
    path = write(rows_of(purchases), tmp_path / "purchases.csv")
    real = service.apply_batch
    calls = {"n": 0}

    def losing_the_second_batch_once(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        result = real(*args, **kw)  # the work is done in the transaction, then rolled back
        if calls["n"] == 2:
            raise OperationalError("INSERT", None, _Deadlock("deadlock detected"))
        return result

    shop, accounts = shop_with_members(db)
    monkeypatch.setattr(service, "apply_batch", losing_the_second_batch_once)
    errors = tmp_path / "errors.csv"
    report = run(shop, path, batch=10, errors_path=errors)
    monkeypatch.undo()
    reference, reference_accounts = shop_with_members(db)
    expected = run(reference, path, batch=10, errors_path=tmp_path / "reference.csv")

    assert calls["n"] == report.batches + 1
    assert (report.created, report.rejected_events, report.rejected_rows) == (
        expected.created, expected.rejected_events, expected.rejected_rows)
    assert errors.read_text() == (tmp_path / "reference.csv").read_text()
    assert event_count(db, shop.tenant_id) == event_count(db, reference.tenant_id)
    assert balances(shop, accounts) == balances(reference, reference_accounts)
    assert_ledger_invariants(db)

    def failing(*args: Any, **kw: Any) -> Any:
        raise OperationalError("INSERT", None, Exception("disk I/O error"))

    monkeypatch.setattr(service, "apply_batch", failing)
    before = event_count(db, shop.tenant_id)
    with pytest.raises(OperationalError):  # not a deadlock: the import stops, nothing written
        run(shop, write(rows_of(make_purchases(random.Random(6), 5, "NEW")),
                        tmp_path / "more.csv"))
    assert event_count(db, shop.tenant_id) == before


def test_activities_import_with_attributes_and_events_service_errors(
        db: Database, tmp_path: Path) -> None:
    shop, accounts = shop_with_members(db)
    rows = [
        {"external_id": "A1", "member_number": "M1", "activity_type": "course_completed",
         "Course": "C-1", "occurred_at": NOW.isoformat()},
        {"external_id": "A2", "member_number": "M2", "activity_type": "webinar",  # unknown
         "Course": "C-2", "occurred_at": NOW.isoformat()},
        {"external_id": "A3", "member_number": "M1", "activity_type": "course_completed",
         "Course": "C-3", "occurred_at": NOW.isoformat()},
    ]
    path = tmp_path / "activities.csv"
    pl.DataFrame(rows).write_csv(path)
    errors = tmp_path / "errors.csv"
    mapping = imports.mapping_from({"attributes": {"course_id": "Course"}}, "activities")
    report = run(shop, path, "activities", mapping=mapping, errors_path=errors)
    assert (report.created, report.rejected_events) == (2, 1)
    assert shop.wallet(accounts["M1"]).posted == 100  # 50 per course
    with errors.open(newline="") as f:
        (reported,) = list(csv.DictReader(f))
    assert (reported["row"], reported["column"], reported["value"]) == (
        "2", "activity_type", "webinar")
    assert "unknown activity type" in reported["reason"]
    assert_ledger_invariants(db)


# ---------------------------------------------------------------------------------------------
# T14 (CI size): SIGKILL at a random point, then resume


def test_an_import_killed_with_sigkill_resumes_and_applies_every_row_once(
        sqlite_db: Database, tmp_path: Path) -> None:
    db = sqlite_db
    shop, accounts = shop_with_members(db)
    rows = rows_of([dict(p, bad=False) for p in make_purchases(random.Random(5), 600)])[:1000]
    purchases = {r["external_id"] for r in rows}
    path = write(rows, tmp_path / "big.csv")
    url = db.url
    command = [sys.executable, "-c", "from allegiance.cli import main; main()", "import",
               "purchases", str(path), "--program", "main", "--tenant", shop.tenant_id,
               "--batch", "100", "--quiet", "--database-url", url]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while event_count(db, shop.tenant_id) < 150:  # about 300 rows
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the import made no progress"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    killed_at = event_count(db, shop.tenant_id)
    assert 150 <= killed_at < len(purchases)

    resume_started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    resume_seconds = time.monotonic() - resume_started
    assert done.returncode == 0, done.stderr
    imported = event_count(db, shop.tenant_id)
    assert imported == len(purchases)
    again = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert '"created": 0' in again.stdout, again.stdout + again.stderr

    with db.read() as s:
        _, mismatches = ledger.reconcile(s, shop.tenant_id)
    assert mismatches == []
    reference, reference_accounts = shop_with_members(db)
    run(reference, path)
    assert balances(shop, accounts) == balances(reference, reference_accounts)
    assert entries(db, shop.tenant_id) == entries(db, reference.tenant_id)
    assert_ledger_invariants(db)
    with db.read() as s:
        integrity = s.execute(text("PRAGMA integrity_check")).scalar_one()
    assert integrity == "ok"
    figures.record("T14", engine="sqlite", rows=len(rows), purchases=len(purchases),
                   kills=1, purchases_before_kill=killed_at, purchases_imported=imported,
                   duplicates=0, missing=len(purchases) - imported, integrity_check=integrity,
                   resume_seconds=round(resume_seconds, 2),
                   rows_per_second=round(len(rows) / resume_seconds, 1))


def test_the_cli_imports_with_a_mapping_file_and_reports_json(
        db: Database, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from allegiance.cli import app

    shop, accounts = shop_with_members(db)
    path = tmp_path / "erp.csv"
    pl.DataFrame({"Invoice": ["X1", "X1", "X2"], "Dealer": ["M1", "M1", "M2"],
                  "Date": ["2026-01-15 10:00"] * 3, "Article": ["SKU-1", "SKU-2", "SKU-9"],
                  "Qty": ["1", "2", "0"], "Price": ["1000", "500", "100"]}).write_csv(path)
    mapping = tmp_path / "erp.yaml"
    mapping.write_text("columns: {external_id: Invoice, member_number: Dealer, "
                       "occurred_at: Date, sku: Article, line_quantity: Qty, unit_price: Price}\n"
                       "time_zone: Europe/Berlin\n", encoding="utf-8")
    args = ["import", "purchases", str(path), "--program", "main", "--tenant", shop.tenant_id,
            "--mapping", str(mapping), "--source", "erp", "--database-url", db.url, "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["rows"], out["created"], out["rejected_rows"]) == (3, 1, 1)
    assert out["errors_file"] == str(tmp_path / "erp.errors.csv")
    # 1 point per dollar on 20.00 + 5 per genuine item (3 items): 35
    assert shop.wallet(accounts["M1"]).posted == 35
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert (again["created"], again["replayed"]) == (0, 1)
    by_id = [*args[:4], shop.program_id, *args[5:]]  # the id make run prints works too
    replayed = CliRunner().invoke(app, by_id)
    assert replayed.exit_code == 0, (replayed.output, replayed.exception)
    assert json.loads(replayed.stdout)["replayed"] == 1, replayed.output

    wrong = tmp_path / "erp.xlsx"
    wrong.write_bytes(b"")
    refused = CliRunner().invoke(app, [*args[:2], str(wrong), *args[3:]])
    assert isinstance(refused.exception, imports.MappingInvalid)
    assert_ledger_invariants(db)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_prices_in_dollars_earn_what_the_same_prices_in_cents_earn(
        db: Database, tmp_path: Path, suffix: str) -> None:
    """A file priced in major units (``decimals: 2`` in the mapping) earns exactly what the
    same file priced in cents earns; a price with a third decimal is a row error."""
    rng = random.Random(7)
    purchases = [p for p in make_purchases(rng, 12) if not p["bad"]]
    in_cents = rows_of(purchases)
    in_dollars = [{**r, "unit_price": f"{int(r['unit_price']) // 100}."
                                      f"{int(r['unit_price']) % 100:02d}"} for r in in_cents]
    in_dollars.append({**in_dollars[0], "external_id": "BAD", "unit_price": "1.005"})
    cents_shop, cents_accounts = shop_with_members(db)
    dollars_shop, dollars_accounts = shop_with_members(db)  # another tenant, same program
    cents_report = run(cents_shop, write(in_cents, tmp_path / f"cents{suffix}"))
    dollars_report = run(dollars_shop, write(in_dollars, tmp_path / f"dollars{suffix}"),
                         mapping=imports.mapping_from({"decimals": 2}, "purchases"))
    assert dollars_report.created == cents_report.created > 0
    assert (cents_report.rejected_rows, dollars_report.rejected_rows) == (0, 1)
    assert balances(dollars_shop, dollars_accounts) == balances(cents_shop, cents_accounts)
    assert_ledger_invariants(db)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_reader_numbers_rows_across_chunks_and_slices(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    from allegiance.imports import reader

    monkeypatch.setattr(reader, "PARQUET_SLICE", 7)
    rows = [{"external_id": f"E{n}", "sku": f"S{n}"} for n in range(1, 24)]
    path = tmp_path / f"rows{suffix}"
    frame = pl.DataFrame(rows)
    frame.write_csv(path) if suffix == ".csv" else frame.write_parquet(path)
    source = reader.open_source(path)
    assert (source.headers, source.rows) == (["external_id", "sku"], 23)
    chunks = list(source.chunks(3, ["external_id"]))
    assert all(len(chunk) <= 3 for chunk in chunks)
    flat = [item for chunk in chunks for item in chunk]
    assert flat == [(n, {"external_id": f"E{n}"}) for n in range(1, 24)]


def test_accounts_are_matched_by_external_id_with_the_mapping_source(
        db: Database, tmp_path: Path) -> None:
    shop = Shop(db)
    account_id = shop.account(name="Dealer", external_ids=[("erp", "D-42")])
    path = tmp_path / "p.csv"
    pl.DataFrame({"external_id": ["P1", "P2"], "dealer": ["D-42", "D-43"],
                  "occurred_at": [NOW.isoformat()] * 2,
                  "amount": ["1000", "500"]}).write_csv(path)
    with pytest.raises(imports.MappingInvalid):
        run(shop, path, mapping=imports.mapping_from(
            {"columns": {"account_external_id": "dealer"}}, "purchases"))
    mapping = imports.mapping_from({"columns": {"account_external_id": "dealer"},
                                    "account_source": "erp"}, "purchases")
    report = run(shop, path, mapping=mapping)
    assert (report.created, report.unmatched) == (2, 1)
    assert shop.wallet(account_id).posted == 10
    assert_ledger_invariants(db)
