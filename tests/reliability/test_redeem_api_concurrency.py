"""Concurrent redemptions through the API, on SQLite and PostgreSQL.

Writes no longer queue on the tenant's audit-chain lock for their whole transaction (the audit
rows are chained at the end of each write) and SQLite writers of one process share commits
(``kit.db.GroupCommit``). 48 threads redeem at once, released by a barrier, over 8 members, a
voucher and a gift whose stock (10) is below the demand; each request carries its own
``Idempotency-Key`` and is then sent again from as many threads. Afterwards: every created
redemption has exactly one audit row, one outbox event and one journal entry; the gift never
oversold; the audit chain verifies (API and ``allegiance audit verify``); the resent requests
added nothing; the ledger invariants hold.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from allegiance import audit, ledger, members, rewards, tenants
from allegiance.api.app import create_app
from allegiance.cli import app as cli_app
from allegiance.kit.db import Database
from tests.conftest import build_world
from tests.reliability.harness import count, run_threads
from tests.support.invariants import assert_ledger_invariants

THREADS = 48
MEMBERS = 8
GIFT_STOCK = 10
ROUTE = "POST /v1/programs/{program_id}/redemptions"


def _setup(db: Database) -> tuple[Any, str, str, list[str], str]:
    w = build_world(db)
    with db.transaction() as s:
        voucher = rewards.create_reward(s, w.tenant_id, w.program_id, code="v", name="Voucher",
                                        kind="service", unit_id=w.unit_id, cost=10).id
        gift = rewards.create_reward(s, w.tenant_id, w.program_id, code="g", name="Gift",
                                     kind="physical", unit_id=w.unit_id, cost=50,
                                     stock=GIFT_STOCK).id
        accounts = []
        for i in range(MEMBERS):
            account = members.create_account(s, w.tenant_id, name=f"Shop {i}").id
            wallet = ledger.wallet(s, w.tenant_id, w.program_id, w.unit_id, "account", account)
            ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
                program_id=w.program_id, kind="issue",
                lines=(ledger.Line(w.issued_id, w.unit_id, ledger.Side.DEBIT, 10_000),
                       ledger.Line(wallet.id, w.unit_id, ledger.Side.CREDIT, 10_000))))
            accounts.append(account)
        key = tenants.create_api_key(s, w.tenant_id, name="shop",
                                     scopes=["integration", "admin"]).secret
    return w, voucher, gift, accounts, key


def test_concurrent_api_redemptions_keep_audit_chain_stock_and_idempotency(db: Database) -> None:
    w, voucher, gift, accounts, key = _setup(db)
    app = create_app(db, rate_limit_per_minute=0)
    lock = threading.Lock()
    answers: dict[int, list[tuple[int, Any]]] = {}

    with TestClient(app) as client:
        def send(i: int) -> tuple[int, Any]:
            reward = gift if i % 2 else voucher
            response = client.post(
                f"/v1/programs/{w.program_id}/redemptions",
                json={"reward_id": reward, "account_id": accounts[i % MEMBERS]},
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"r-{i}"})
            answer = (response.status_code, response.json())
            with lock:
                answers.setdefault(i, []).append(answer)
            return answer

        def first(i: int, barrier: threading.Barrier) -> tuple[int, Any]:
            barrier.wait()
            return send(i)

        results = run_threads(THREADS, first, timeout=120)
        assert [r for r in results if isinstance(r, BaseException)] == []
        again = run_threads(THREADS, first, timeout=120)
        assert [r for r in again if isinstance(r, BaseException)] == []
        verified = client.get("/v1/audit-log/verify",
                              headers={"Authorization": f"Bearer {key}"}).json()

    statuses = [status for status, _ in results]
    assert set(statuses) <= {201, 409}, statuses
    refused = [body for status, body in results if status == 409]
    assert all(body["error"]["code"] == "out_of_stock" for body in refused), refused
    created = {body["id"] for status, body in results if status == 201}
    # the gift ran out exactly: every voucher and GIFT_STOCK gifts were created
    assert len(created) == THREADS // 2 + GIFT_STOCK
    # the resent requests were answered as the first time (replay), adding nothing
    for i, pair in answers.items():
        assert pair[0] == pair[1], f"request {i}: {pair}"

    assert count(db, "SELECT COUNT(*) FROM redemption WHERE tenant_id = :t",
                 t=w.tenant_id) == len(created)
    assert count(db, "SELECT COUNT(*) FROM journal_entry WHERE tenant_id = :t"
                 " AND kind = 'redeem'", t=w.tenant_id) == len(created)
    assert count(db, "SELECT COUNT(*) FROM outbox_message WHERE tenant_id = :t"
                 " AND event_type = 'reward.redeemed'", t=w.tenant_id) == len(created)
    assert count(db, "SELECT COUNT(*) FROM audit_log WHERE tenant_id = :t AND action = :a",
                 t=w.tenant_id, a=ROUTE) == len(created)
    with db.read() as s:
        assert rewards.get_reward(s, w.tenant_id, gift).stock == 0
        check = audit.verify(s, w.tenant_id)
    assert check.first_bad_seq is None and check.rows >= len(created)
    assert verified["ok"] is True and verified["rows"] == check.rows
    result = CliRunner().invoke(cli_app, ["audit", "verify", "--database-url", db.url])
    assert result.exit_code == 0, result.output
    assert_ledger_invariants(db)
