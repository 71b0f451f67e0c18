"""The bulk path of imports (:mod:`allegiance.events.bulk`) against the per-event service:
the same state for the same events, which events take which path, caps, budgets and tier
moves inside a chunk, and the ledger's aging rows."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import func, select

from allegiance import events, imports, ledger, members, tiers
from allegiance.kit.db import Database
from tests.integration.events_support import NOW, Shop
from tests.integration.test_imports_property import LADDER, MEMBERS, bulk_definition, state_of
from tests.support.invariants import assert_ledger_invariants

COLUMNS = ["external_id", "occurred_at", "member_number", "channel", "sku", "line_quantity",
           "unit_price"]


def shop(db: Database, *, gold: str | None = None) -> Shop:
    s = Shop(db, bulk_definition())
    with db.transaction() as session:
        tiers.create_ladder(session, s.tenant_id, s.program_id, LADDER)
    for m in MEMBERS:
        account = s.account(name=m, member_number=m)
        if m == gold:
            with db.transaction() as session:
                tiers.place(session, s.tenant_id, s.program_id, account, level="gold",
                            reason="test", actor="test", at=NOW)
    return s


def purchases(rng: random.Random, count: int, price: tuple[int, int]) -> list[dict[str, Any]]:
    return [{"external_id": f"P{n}", "member": rng.choice(MEMBERS),
             "at": NOW + timedelta(hours=rng.randint(0, 24 * 40)),
             "channel": rng.choice(["web", "store"]),
             "lines": [{"sku": rng.choice(["SKU-1", "SKU-2", "SKU-9"]),
                        "quantity": rng.randint(1, 3), "unit_price": rng.randint(*price)}
                       for _ in range(rng.randint(1, 3))]}
            for n in range(count)]


def write(items: list[dict[str, Any]], path: Path) -> Path:
    rows = [[p["external_id"], p["at"].isoformat(), p["member"], p["channel"], ln["sku"],
             str(ln["quantity"]), str(ln["unit_price"])] for p in items for ln in p["lines"]]
    pl.DataFrame(rows, schema=dict.fromkeys(COLUMNS, pl.String), orient="row").write_parquet(path)
    return path


def one_by_one(s: Shop, items: list[dict[str, Any]]) -> None:
    for p in items:
        s.event(external_id=p["external_id"], source="import", member_number=p["member"],
                occurred_at=p["at"], channel=p["channel"], lines=p["lines"])


def run(s: Shop, path: Path, **kw: Any) -> imports.Report:
    return imports.run(s.db, s.tenant_id, "main", "purchases", path, **kw)


def test_small_purchases_all_take_the_bulk_path_with_caps_and_a_multiplier(
        db: Database, tmp_path: Path) -> None:
    items = purchases(random.Random(3), 60, (1, 2_000))  # nobody reaches silver
    path = write(items, tmp_path / "p.parquet")
    bulk, by_hand = shop(db, gold="M1"), shop(db, gold="M1")
    report = run(bulk, path, batch=50)
    one_by_one(by_hand, items)
    assert report.created == 60
    assert (report.paths.bulk, report.paths.per_event) == (60, 0)
    state = state_of(db, bulk)
    assert state == state_of(db, by_hand)
    assert any(u[1] == "sku9" and u[4] == 100 for u in state["usage"])  # a cap was reached
    assert any(u[1] == "web" and u[5] == 2 for u in state["usage"])  # a times limit too
    assert_ledger_invariants(db)


def test_a_budget_running_out_inside_a_bulk_chunk_gives_what_one_by_one_gives(
        db: Database, tmp_path: Path) -> None:
    # each purchase over 600.00 earns 300 from a budget of 700: 300, 300, 100, then nothing
    items = [{"external_id": f"B{n}", "member": MEMBERS[n % 3],
              "at": NOW + timedelta(minutes=n), "channel": "store",
              "lines": [{"sku": "SKU-2", "quantity": 1, "unit_price": 61_000}]}
             for n in range(5)]
    path = write(items, tmp_path / "b.parquet")
    bulk, by_hand = shop(db), shop(db)
    with db.transaction() as session:  # levels locked: nobody moves, all take the bulk path
        for s in (bulk, by_hand):
            for m in MEMBERS:
                account = members.find_account(session, s.tenant_id, member_number=m).id
                tiers.place(session, s.tenant_id, s.program_id, account, level="silver",
                            reason="test", actor="test", lock=True, at=NOW)
    report = run(bulk, path)
    one_by_one(by_hand, items)
    state = state_of(db, bulk)
    assert state == state_of(db, by_hand)
    big = sorted(a[5] for awards in state["awards"].values() for a in awards if a[1] == "big")
    assert big == [100, 300, 300]
    assert (report.created, report.paths.bulk) == (5, 5)
    assert_ledger_invariants(db)


def test_a_member_moving_up_inside_a_chunk_earns_the_multiplier_from_that_point_on(
        db: Database, tmp_path: Path) -> None:
    # M1 buys 1 000.00 each time: silver after the first purchase, gold after the third
    items = [{"external_id": f"T{n}", "member": "M1" if n % 2 == 0 else "M2",
              "at": NOW + timedelta(hours=n), "channel": "store",
              "lines": [{"sku": "SKU-1", "quantity": 1,
                         "unit_price": 100_000 if n % 2 == 0 else 500}]}
             for n in range(12)]
    path = write(items, tmp_path / "t.parquet")
    bulk, by_hand = shop(db), shop(db)
    report = run(bulk, path, batch=1000)
    one_by_one(by_hand, items)
    state = state_of(db, bulk)
    assert state == state_of(db, by_hand)
    assert report.paths.per_event >= 6  # M1's purchases, event by event
    assert report.paths.bulk >= 6  # M2's
    base = {ext: a[5] for ext, awards in state["awards"].items() for a in awards
            if a[1] == "base"}
    assert base["T0"] == 1000 and base["T10"] == 2000  # gold doubles the base rule
    assert ("M1", "gold") in state["enrolled"]
    assert_ledger_invariants(db)


def test_re_importing_adds_nothing_and_aging_matches_the_wallets(
        db: Database, tmp_path: Path) -> None:
    items = purchases(random.Random(9), 40, (1, 2_000))
    path = write(items, tmp_path / "p.parquet")
    s = shop(db)
    first = run(s, path, batch=16)
    assert first.created == 40 and first.paths.bulk == 40
    with db.read() as session:
        entries = session.scalar(select(func.count()).select_from(ledger.JournalEntry).where(
            ledger.JournalEntry.tenant_id == s.tenant_id))
    again = run(s, path, batch=7)
    assert (again.created, again.replayed) == (0, 40)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(ledger.JournalEntry).where(
            ledger.JournalEntry.tenant_id == s.tenant_id)) == entries
        _, mismatches = ledger.reconcile(session, s.tenant_id)
    assert mismatches == []
    assert_ledger_invariants(db)


# T14 (CI): a kill at every batch boundary of a 1,000-row file
KILL_AFTER = """
import os, signal, sys
from pathlib import Path
from allegiance import imports
from allegiance.kit.db import Database

url, tenant, path, batch, kill_after = sys.argv[1:6]

def boundary(batches: int) -> None:
    if batches >= int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)

imports.run(Database(url), tenant, "main", "purchases", Path(path), batch=int(batch),
            after_batch=boundary)
"""


def test_an_import_killed_at_every_batch_boundary_ends_with_every_row_once(
        sqlite_db: Database, tmp_path: Path) -> None:
    db = sqlite_db
    items = purchases(random.Random(14), 520, (1, 2_000))
    path = write(items, tmp_path / "k.parquet")
    rows = sum(len(p["lines"]) for p in items)
    assert rows >= 1000
    s = shop(db)
    batch = 250
    boundaries = -(-rows // batch)
    for kill_after in range(1, boundaries):
        done = subprocess.run(
            [sys.executable, "-c", KILL_AFTER, db.url, s.tenant_id, str(path), str(batch),
             str(kill_after)], capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    last = run(s, path, batch=batch)
    assert last.created + last.replayed == 520
    with db.read() as session:
        stored = session.scalar(select(func.count()).select_from(events.Event).where(
            events.Event.tenant_id == s.tenant_id))
        _, mismatches = ledger.reconcile(session, s.tenant_id)
    assert stored == 520 and mismatches == []
    reference = shop(db)
    run(reference, path, batch=1000)
    assert state_of(db, s)["balances"] == state_of(db, reference)["balances"]
    mine, theirs = state_of(db, s), state_of(db, reference)
    assert (mine["awards"], mine["usage"], mine["metrics"], mine["tallies"]) == (
        theirs["awards"], theirs["usage"], theirs["metrics"], theirs["tallies"])
    assert_ledger_invariants(db)


def test_a_typed_parquet_file_stores_and_reports_what_the_same_file_as_text_does(
        db: Database, tmp_path: Path) -> None:
    """Typed columns (whole numbers, date-times with a zone) take the typed row parser; its
    events, awards, ledger and error report (bad rows named by row and column) equal those of
    the same cells written as text, which every row reads through parse_row."""
    items = purchases(random.Random(5), 40, (1, 2_000))
    typed_rows = [{"external_id": p["external_id"], "occurred_at": p["at"],
                   "member_number": p["member"], "channel": p["channel"], "sku": ln["sku"],
                   "line_quantity": ln["quantity"], "unit_price": ln["unit_price"]}
                  for p in items for ln in p["lines"]]
    typed_rows[3]["line_quantity"] = 0  # a zero quantity
    typed_rows[7]["member_number"] = "  "  # names no account
    typed_rows[11]["unit_price"] = -4  # out of range
    typed_rows[15]["sku"] = "S" * 201  # too long
    frame = pl.DataFrame(typed_rows, schema={
        "external_id": pl.String, "occurred_at": pl.Datetime("us", "UTC"),
        "member_number": pl.String, "channel": pl.String, "sku": pl.String,
        "line_quantity": pl.Int64, "unit_price": pl.Int64})
    typed_path = tmp_path / "typed.parquet"
    frame.write_parquet(typed_path)
    text_path = tmp_path / "text.parquet"
    frame.with_columns(pl.col("occurred_at").dt.to_string("%Y-%m-%dT%H:%M:%S%:z"),
                       pl.col("line_quantity", "unit_price").cast(pl.String)
                       ).write_parquet(text_path)
    typed_shop, text_shop = shop(db), shop(db)
    typed_report = run(typed_shop, typed_path, batch=16, errors_path=tmp_path / "typed.csv")
    text_report = run(text_shop, text_path, batch=16, errors_path=tmp_path / "text.csv")
    assert typed_report.rejected_events == text_report.rejected_events == 4
    assert typed_report.created == text_report.created == 36
    assert (tmp_path / "typed.csv").read_text() == (tmp_path / "text.csv").read_text()
    reasons = (tmp_path / "typed.csv").read_text()
    assert "line_quantity,0,must be more than 0" in reasons and "unit_price,-4," in reasons
    assert state_of(db, typed_shop) == state_of(db, text_shop)
    assert_ledger_invariants(db)
