"""Counters can never overflow: the database refuses a sum past 2^62 (SQLite would otherwise
turn it into a float), the API answers 422, and nothing is written."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from allegiance import ledger, tenants
from allegiance.api.app import create_app
from allegiance.kit.db import Database
from allegiance.kit.money import MAX_AMOUNT, MAX_COUNTER


def test_a_counter_near_its_limit_refuses_more_and_writes_nothing(db: Database) -> None:
    with db.transaction() as s:
        t = tenants.create_tenant(s, "t")
        key = tenants.create_api_key(s, t.id, name="k", scopes=["admin"]).secret
        p = tenants.create_program(s, t.id, code="p", name="p", base_currency="USD")
        u = tenants.create_unit(s, t.id, p.id, code="pts", name="pts", kind="points")
        wallet = ledger.wallet(s, t.id, p.id, u.id, "account", "acc_1")
        issued = ledger.program_account(s, t.id, p.id, u.id, "issued")
    # Force the wallet's credits just below the counter limit (as after decades of earning).
    with db.transaction() as s:
        s.execute(text("UPDATE ledger_account SET credits_posted = :v WHERE id = :id"),
                  {"v": MAX_COUNTER - 10, "id": wallet.id})
    client = TestClient(create_app(db, rate_limit_per_minute=0), raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"program_id": p.id, "kind": "earn", "postings": [
        {"account_id": issued.id, "unit_id": u.id, "side": "debit", "amount": 100},
        {"account_id": wallet.id, "unit_id": u.id, "side": "credit", "amount": 100}]}
    response = client.post("/v1/entries", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in ("constraint_violation", "value_out_of_range")
    with db.read() as s:
        entries = s.execute(text("SELECT COUNT(*) FROM journal_entry")).scalar_one()
        credits = s.execute(text("SELECT credits_posted FROM ledger_account WHERE id = :id"),
                            {"id": wallet.id}).scalar_one()
    assert entries == 0
    assert credits == MAX_COUNTER - 10 and isinstance(credits, int)
    # One posting can never be that large in the first place.
    body["postings"][0]["amount"] = body["postings"][1]["amount"] = MAX_AMOUNT
    assert client.post("/v1/entries", json=body, headers=headers).status_code == 422
