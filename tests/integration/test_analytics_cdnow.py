"""The issue's check against a published table, through the product: the CDNOW sample as
purchase events of a program, then ``allegiance report clv`` — Fader, Hardie & Lee (2005)
within 1 %.

The fast test stores the purchases as the bulk import stores them (one processed purchase event
per row, matched by member number) in one set-based insert, with the 2,357 accounts, then runs the report through the
CLI. ``test_through_the_bulk_import`` runs the real ``imports.run`` on the same file (a few
seconds since purchases take the bulk path of ``events.bulk``).
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from allegiance import definitions, events, imports, members, tenants
from allegiance.analytics import cdnow
from allegiance.cli import app
from allegiance.kit.db import Database
from allegiance.kit.ids import new_id
from tests.unit.test_clv_cdnow import CDNOW, needs_cdnow

pytestmark = needs_cdnow

DOCUMENT = {
    "program": {"code": "cdnow", "name": "CDNOW", "base_currency": "USD"},
    "units": [{"code": "points", "name": "Points", "kind": "points", "value_in_base": "0.01"}],
    "rules": [],
}
CALIBRATION_END = "1997-09-30"


def cdnow_program(db: Database) -> tuple[str, str, dict[str, str]]:
    """A tenant with the CDNOW program in force from 1997 and its 2,357 customers."""
    with db.transaction() as s:
        tenant = tenants.create_tenant(s, "CDNOW")
        definitions.apply(s, tenant.id, DOCUMENT, actor="test",
                          effective_from=datetime(1997, 1, 1, tzinfo=UTC))
        program_id = tenants.program_by_code(s, tenant.id, "cdnow").id
        now = datetime(1997, 1, 1, tzinfo=UTC)
        numbers = {str(n): new_id("acc") for n in range(1, 2358)}
        s.execute(insert(members.Account), [
            {"tenant_id": tenant.id, "id": account_id, "parent_id": None,
             "name": f"Customer {number}", "member_number": number, "region": None,
             "email": None, "tax_id": None, "attributes": {}, "status": "active",
             "merged_into_id": None, "created_at": now, "updated_at": now}
            for number, account_id in numbers.items()])
    return tenant.id, program_id, numbers


def store_as_imported(db: Database, tenant_id: str, program_id: str,
                      accounts: dict[str, str], rows: list[dict[str, str]]) -> None:
    values = []
    for row in rows:
        when = datetime.fromisoformat(row["occurred_at"])
        values.append({
            "tenant_id": tenant_id, "id": new_id("evt"), "program_id": program_id,
            "kind": "purchase", "activity_type": None, "source": imports.DEFAULT_SOURCE,
            "external_id": row["external_id"], "reported_by": "operator",
            "reporter_account_id": None, "account_id": accounts[row["member_number"]],
            "match_key": {"member_number": row["member_number"]}, "user_id": None,
            "occurred_at": when, "currency": row["currency"], "amount": int(row["amount"]),
            "quantity": 0, "returned_amount": 0, "channel": None, "attributes": {},
            "status": "processed", "reason": None, "original_event_id": None, "version": None,
            "created_at": when, "processed_at": when,
        })
    with db.transaction() as s:
        s.execute(insert(events.Event), values)


def check_published(parameters: dict[str, dict[str, float]], summary: dict[str, int]) -> None:
    got = parameters["bgnbd"]
    for name, paper in cdnow.PUBLISHED_BGNBD.items():
        assert got[name] == pytest.approx(paper, rel=0.01), name
    assert got["log_likelihood"] == pytest.approx(cdnow.PUBLISHED_BGNBD_LL, rel=0.01)
    got = parameters["gamma_gamma"]
    for name, paper in cdnow.PUBLISHED_GAMMA_GAMMA.items():
        assert got[name] == pytest.approx(paper, rel=0.01), name
    assert summary["members"] == 2357
    assert summary["repeat_buyers"] == cdnow.PUBLISHED_REPEAT_BUYERS
    assert summary["repeat_transactions"] == 2457


def report_clv(db: Database, *extra: str) -> str:
    result = CliRunner().invoke(app, [
        "report", "clv", "--program", "cdnow", "--calibration-end", CALIBRATION_END,
        "--database-url", db.url, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_published_fit_through_events_and_the_report(sqlite_db: Database,
                                                         tmp_path: Path) -> None:
    assert CDNOW is not None
    db = sqlite_db
    tenant_id, program_id, accounts = cdnow_program(db)
    path = tmp_path / "cdnow.csv"
    assert cdnow.write_import_csv(CDNOW, path) == 6919
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    store_as_imported(db, tenant_id, program_id, accounts, rows)
    data = json.loads(report_clv(db, "--format", "json", "--limit", "5"))
    check_published(data["summary"], data["summary"])
    assert len(data["rows"]) == 5
    # The table prints the fitted parameters.
    text = report_clv(db)
    assert "bgnbd" in text and "r 0.24" in text and "gamma_gamma" in text


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_through_the_bulk_import(sqlite_db: Database, tmp_path: Path) -> None:
    assert CDNOW is not None
    db = sqlite_db
    tenant_id, _program_id, _accounts = cdnow_program(db)
    path = tmp_path / "cdnow.csv"
    cdnow.write_import_csv(CDNOW, path)
    result = imports.run(db, tenant_id, "cdnow", "purchases", path, batch=2000)
    assert (result.created, result.unmatched, result.rejected_events) == (6919, 0, 0)
    with db.read() as s:
        stored = s.scalars(select(events.Event.status).where(
            events.Event.tenant_id == tenant_id)).all()
    assert len(stored) == 6919 and set(stored) == {"processed"}
    data = json.loads(report_clv(db, "--format", "json"))
    check_published(data["summary"], data["summary"])
