"""Imports of returns, accounts, users and catalogue items, and XLSX files: each record once
(re-imports add nothing), bad rows in the error report, the services' own rules apply."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
from sqlalchemy import func, select

from allegiance import imports, members, rewards
from allegiance.kit.db import Database
from tests.integration.events_support import NOW, Shop
from tests.support.invariants import assert_ledger_invariants


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_xlsx(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    sheet.append([None] * len(header))  # an empty row is skipped
    book.save(path)
    return path


def errors_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run(shop: Shop, kind: str, path: Path, **kw: Any) -> imports.Report:
    return imports.run(shop.db, shop.tenant_id, "main", kind, path,
                       errors_path=path.with_suffix(".errors.csv"), **kw)


def test_accounts_with_parents_attributes_and_external_ids(db: Database, tmp_path: Path) -> None:
    shop = Shop(db)
    path = write_csv(tmp_path / "accounts.csv",
                     ["Code", "Name", "Parent", "region", "crm", "attributes.segment"],
                     [["D1", "Distributor", "", "ES", "c-1", "gold"],
                      ["S1", "Shop one", "D1", "ES-MD", "c-2", ""],
                      ["S2", "", "D1", "", "", ""],          # no name
                      ["S3", "Shop three", "NOPE", "", "", ""]])  # unknown parent
    mapping = imports.mapping_from({"columns": {"member_number": "Code", "name": "Name",
                                                "parent_member_number": "Parent",
                                                "account_external_id": "crm"},
                                    "account_source": "crm"}, "accounts")
    report = run(shop, "accounts", path, mapping=mapping)
    assert (report.created, report.replayed, report.rejected_events) == (2, 0, 2)
    problems = {(e["row"], e["column"]) for e in errors_of(tmp_path / "accounts.errors.csv")}
    assert problems == {("3", "Name"), ("4", "Parent")}
    with db.read() as s:
        d1 = members.find_account(s, shop.tenant_id, member_number="D1")
        s1 = members.find_account(s, shop.tenant_id, external_id=("crm", "c-2"))
        assert s1.member_number == "S1" and s1.parent_id == d1.id
        assert d1.attributes == {"segment": "gold"} and s1.region == "ES-MD"
        assert [e.status for e in members.list_enrolments(s, shop.tenant_id,
                                                            account_id=d1.id).items] == ["active"]
    again = run(shop, "accounts", path, mapping=mapping)
    assert (again.created, again.replayed) == (0, 2)


def test_users_from_xlsx(db: Database, tmp_path: Path) -> None:
    shop = Shop(db)
    account = shop.account(name="Shop", member_number="007")
    path = write_xlsx(tmp_path / "users.xlsx", ["external_id", "name", "email", "role",
                                                "member_number"],
                      [["u1", "Ana", "ana@example.com", "owner", "007"],
                       ["u2", "Bo", None, "rep", "007"],
                       ["u3", "Cy", None, "boss", "007"],      # unknown role
                       ["u4", "Di", None, "rep", "999"]])      # unknown account
    report = run(shop, "users", path)
    assert (report.created, report.rejected_events) == (2, 2)
    reasons = {e["row"]: e for e in errors_of(tmp_path / "users.errors.csv")}
    assert reasons["3"]["column"] == "role" and reasons["4"]["column"] == "member_number"
    with db.read() as s:
        users = sorted(u.external_id or "" for u in members.list_users(s, shop.tenant_id,
                                                                        account))
    assert users == ["u1", "u2"]
    assert run(shop, "users", path).replayed == 2


def test_catalogue_from_parquet(db: Database, tmp_path: Path) -> None:
    shop = Shop(db)
    frame = pl.DataFrame({
        "code": ["mug", "trip", "bad"], "name": ["Mug", "Trip", "Bad"],
        "kind": ["physical", "experience", "teleport"], "unit": ["points"] * 3,
        "cost": [500, 90_000, 10], "stock": [10, None, None],
        "eligible_regions": ["ES;FR", None, None], "requires_approval": [None, "yes", None],
    })
    path = tmp_path / "catalogue.parquet"
    frame.write_parquet(path)
    report = run(shop, "catalogue", path)
    assert (report.created, report.rejected_events) == (2, 1)
    assert errors_of(tmp_path / "catalogue.errors.csv")[0]["column"] == "kind"
    with db.read() as s:
        found = {r.code: (r.stock, r.eligible_regions, r.requires_approval)
                 for r in rewards.list_rewards(s, shop.tenant_id, shop.program_id)}
    assert found == {"mug": (10, ["ES", "FR"], False), "trip": (None, [], True)}
    assert run(shop, "catalogue", path).replayed == 2


def test_returns_reverse_imported_purchases(db: Database, tmp_path: Path) -> None:
    shop = Shop(db)
    account = shop.account(name="Shop", member_number="M1")
    purchases = write_csv(tmp_path / "p.csv", ["external_id", "occurred_at", "member_number",
                                               "sku", "line_quantity", "unit_price"],
                          [["INV1", NOW.isoformat(), "M1", "SKU-1", 2, 10_000],
                           ["INV1", NOW.isoformat(), "M1", "SKU-9", 1, 5_000],
                           ["INV2", NOW.isoformat(), "M1", "SKU-2", 1, 3_000]])
    assert run(shop, "purchases", purchases).created == 2
    earned = shop.wallet(account).posted
    returns = write_csv(tmp_path / "r.csv", ["external_id", "original_external_id", "line_no",
                                             "line_quantity", "reason"],
                        [["RET1", "INV1", 1, 1, "damaged"],
                         ["RET2", "INV2", "", "", ""],           # the whole purchase
                         ["RET3", "INV404", "", "", ""],         # no such purchase
                         ["RET4", "INV1", "", 1, ""]])           # a quantity without a line
    report = run(shop, "returns", returns)
    assert (report.created, report.rejected_events) == (2, 2)
    rows = {e["row"]: e for e in errors_of(tmp_path / "r.errors.csv")}
    assert rows["3"]["column"] == "original_external_id" and rows["4"]["column"] == \
        "line_quantity"
    # INV1 line 1: 1 of 2 units of 10,000 (100 points base + 5 genuine); INV2: 30 + 5
    assert shop.wallet(account).posted == earned - (100 + 5) - (30 + 5)
    assert run(shop, "returns", returns).replayed == 2
    assert shop.wallet(account).posted == earned - 140
    assert_ledger_invariants(db)


def test_xlsx_purchases_earn_like_csv_and_check_only_stores_nothing(
        db: Database, tmp_path: Path) -> None:
    shop = Shop(db)
    account = shop.account(name="Shop", member_number="M1")
    header = ["external_id", "occurred_at", "member_number", "sku", "line_quantity",
              "unit_price"]
    rows = [["X1", NOW.replace(tzinfo=None), "M1", "SKU-1", 3, 1_000.0],
            ["X2", NOW.replace(tzinfo=None), "M1", "SKU-3", "two", 1_000]]
    path = write_xlsx(tmp_path / "sales.xlsx", header, rows)
    mapping = imports.mapping_from({"time_zone": "UTC"}, "purchases")
    checked = run(shop, "purchases", path, mapping=mapping, check_only=True)
    assert (checked.checked, checked.rejected_events, checked.created) == (1, 1, 0)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(members.Account)) == 1
    assert shop.wallet(account).posted == 0
    report = run(shop, "purchases", path, mapping=mapping)
    assert (report.created, report.rejected_events) == (1, 1)
    assert shop.wallet(account).posted == 30 + 15  # base 1/dollar + 5 per genuine item
    assert_ledger_invariants(db)
