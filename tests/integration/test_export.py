"""``allegiance export ENTITY``: one tenant's rows as CSV or Parquet, secrets left out."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from allegiance import members, tenants
from allegiance.cli import app
from allegiance.cli.export import exportable
from allegiance.kit.db import Database
from tests.conftest import build_world


def test_export_is_tenant_scoped_in_csv_and_parquet(db: Database, tmp_path: Path) -> None:
    a = build_world(db)
    b = build_world(db)
    with db.transaction() as s:
        for i in range(3):
            members.create_account(s, a.tenant_id, name=f"A{i}", attributes={"n": i})
        members.create_account(s, b.tenant_id, name="B0")
        tenants.create_api_key(s, a.tenant_id, name="k", scopes=["read"])
    runner = CliRunner()
    out = runner.invoke(app, ["export", "account", "--tenant", a.tenant_id,
                              "--database-url", db.url])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert sorted(r["name"] for r in rows) == ["A0", "A1", "A2"]
    assert {r["tenant_id"] for r in rows} == {a.tenant_id}
    assert json.loads(rows[0]["attributes"]) in ({"n": 0}, {"n": 1}, {"n": 2})

    target = tmp_path / "units.parquet"
    out = runner.invoke(app, ["export", "ledger_account", "--tenant", a.tenant_id,
                              "--format", "parquet", "-o", str(target),
                              "--database-url", db.url])
    assert out.exit_code == 0, out.output
    frame = pl.read_parquet(target)
    assert frame.height >= 2 and set(frame["tenant_id"].to_list()) == {a.tenant_id}

    keys = tmp_path / "keys.csv"
    out = runner.invoke(app, ["export", "api_key", "--tenant", a.tenant_id, "-o", str(keys),
                              "--database-url", db.url])
    assert out.exit_code == 0, out.output
    header = keys.read_text().splitlines()[0].split(",")
    assert "secret_hash" not in header and "name" in header

    empty = tmp_path / "empty.parquet"
    out = runner.invoke(app, ["export", "webhook_endpoint", "--tenant", a.tenant_id,
                              "--format", "parquet", "-o", str(empty), "--database-url", db.url])
    assert out.exit_code == 0 and pl.read_parquet(empty).height == 0
    assert "secret" not in pl.read_parquet(empty).columns


def test_export_refuses_unknown_entities_and_lists_them(db: Database) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["export", "list"])
    assert listed.exit_code == 0 and "account" in listed.stdout.split()
    assert set(listed.stdout.split()) == set(exportable())
    bad = runner.invoke(app, ["export", "tenant_secrets", "--tenant", "t",
                              "--database-url", db.url])
    assert bad.exit_code == 1
    missing = runner.invoke(app, ["export", "account", "--database-url", db.url])
    assert missing.exit_code == 1
