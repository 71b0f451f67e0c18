"""The ``allegiance`` command end to end: schema, tenants, the demo, reconciliation and jobs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from allegiance import ledger, members, memberships, tenants
from allegiance.cli import app
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.models import IdempotencyRecord, Tenant
from tests.support.invariants import assert_ledger_invariants

runner = CliRunner()


def invoke(url: str, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--database-url", url])
    return result


def run_json(url: str, *args: str) -> dict[str, Any]:
    result = invoke(url, *args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def entry_count(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(ledger.JournalEntry)) or 0)


def test_upgrade_then_create_a_tenant_with_an_admin_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = invoke(url, "db", "upgrade")
    assert result.exit_code == 0, result.output

    created = run_json(url, "tenant", "create", "--name", "Northwind")
    assert set(created) == {"tenant_id", "api_key"}
    db = Database(url)
    try:
        with db.read() as s:
            principal = tenants.authenticate(s, created["api_key"])
            assert principal.tenant_id == created["tenant_id"]
            assert principal.scopes == ("admin",)
            assert s.get(Tenant, created["tenant_id"]).name == "Northwind"  # type: ignore[union-attr]
    finally:
        db.dispose()

    listed = json.loads(invoke(url, "tenant", "list", "--json").stdout)
    assert [t["id"] for t in listed] == [created["tenant_id"]]


def test_tenant_create_refuses_an_empty_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert invoke(url, "db", "upgrade").exit_code == 0
    result = invoke(url, "tenant", "create", "--name", "   ")
    assert result.exit_code != 0
    assert "name must not be empty" in str(result.exception)


def test_demo_is_built_once_and_reconciles(db: Database) -> None:
    first = run_json(db.url, "demo")
    assert first["created"] is True
    assert {p["code"] for p in first["programs"]} == {"partner-rewards", "dealer-cashback"}
    assert set(first["accounts"]) == {"distributor", "dealer_west", "dealer_south", "branch_sd"}
    entries = entry_count(db)
    assert entries >= 10

    second = run_json(db.url, "demo")
    assert second["created"] is False
    assert second["tenant_id"] == first["tenant_id"]
    assert second["programs"] == first["programs"]
    assert second["api_key"] != first["api_key"]
    assert entry_count(db) == entries  # nothing posted twice
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Tenant)) == 1
        for key in (first["api_key"], second["api_key"]):
            assert tenants.authenticate(s, key).tenant_id == first["tenant_id"]
        # The demo's history: Acme (dealer_west) earned 16,500 and redeemed 2,500 tokens.
        west = ledger.get_account(s, first["tenant_id"], first["wallets"]["dealer_west"])
        assert ledger.balance_of(west).available == 14_000
        # A paid plan with perks, Bolt & Wire on its trial (made once, however often it runs).
        program = tenants.program_by_code(s, first["tenant_id"], "partner-rewards")
        plans = memberships.list_plans(s, first["tenant_id"], program.id)
        assert [p.code for p in plans] == ["partner-plus"]
        subs = memberships.subscriptions_of(s, first["tenant_id"], program.id,
                                            first["accounts"]["dealer_south"])
        assert [memberships.state(s, sub).status for sub in subs] == ["trial"]

    result = invoke(db.url, "ledger", "reconcile")
    assert result.exit_code == 0, result.output
    assert "agree with their postings" in result.output
    assert_ledger_invariants(db)


def test_expire_job_posts_the_demos_stale_tokens_to_breakage_once(db: Database) -> None:
    demo = run_json(db.url, "demo")
    stale_wallet = demo["wallets"]["branch_sd"]

    first = run_json(db.url, "jobs", "run", "expire")
    assert first["lots_expired"] == 1
    assert first["amount_expired"] == 5_000
    again = run_json(db.url, "jobs", "run", "expire")
    assert again["lots_expired"] == 0 and again["entries_posted"] == 0

    with db.read() as s:
        branch = ledger.get_account(s, demo["tenant_id"], stale_wallet)
        assert ledger.balance_of(branch).available == 1_500
    text_run = invoke(db.url, "jobs", "run", "expire")
    assert text_run.exit_code == 0 and "lots expired" in text_run.output
    assert invoke(db.url, "ledger", "reconcile").exit_code == 0
    assert_ledger_invariants(db)


def test_reconcile_reports_a_tampered_balance(sqlite_db: Database) -> None:
    demo = run_json(sqlite_db.url, "demo")
    wallet_id = demo["wallets"]["distributor"]
    with sqlite_db.transaction() as s:
        s.execute(
            text("UPDATE ledger_account SET credits_posted = credits_posted + 7 WHERE id = :id"),
            {"id": wallet_id},
        )
    result = invoke(sqlite_db.url, "ledger", "reconcile", "--tenant", demo["tenant_id"], "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [m["account_id"] for m in report["mismatches"]] == [wallet_id]
    stored, computed = report["mismatches"][0]["stored"], report["mismatches"][0]["computed"]
    assert stored[1] - computed[1] == 7

    table = invoke(sqlite_db.url, "ledger", "reconcile")
    assert table.exit_code == 1
    assert wallet_id in table.output


def test_jobs_list_and_unknown_job(sqlite_db: Database) -> None:
    listed = runner.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0 and "expire" in listed.output
    result = invoke(sqlite_db.url, "jobs", "run", "no-such-job")
    assert result.exit_code == 1
    assert "unknown job" in result.output


def test_prune_idempotency_deletes_only_expired_records(db: Database) -> None:
    now = clock.now()
    with db.transaction() as s:
        tenant = tenants.create_tenant(s, "Pruned")
        for index, expires_in in enumerate((-3, -2, -1, 5)):
            s.add(IdempotencyRecord(
                tenant_id=tenant.id, key=f"k{index}", request_hash="h", method="POST",
                path="/v1/x", status_code=201, response_body="{}", created_at=now,
                expires_at=now + timedelta(days=expires_in),
            ))
    summary = run_json(db.url, "jobs", "run", "prune-idempotency", "--batch", "2")
    assert summary["records_deleted"] == 3
    with db.read() as s:
        assert list(s.scalars(select(IdempotencyRecord.key))) == ["k3"]
    assert run_json(db.url, "jobs", "run", "prune-idempotency")["records_deleted"] == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_with_the_demo_key(sqlite_db: Database) -> None:
    demo = run_json(sqlite_db.url, "demo")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from allegiance.cli import main; main()", "serve",
         "--port", str(port), "--database-url", sqlite_db.url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/programs",
            headers={"Authorization": f"Bearer {demo['api_key']}"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    body = json.loads(answer.read())
                break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "the server did not answer in 60 s"
                time.sleep(0.3)
        assert {p["id"] for p in body["items"]} == {p["id"] for p in demo["programs"]}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("command", [["--help"], ["db", "--help"], ["serve", "--help"]])
def test_help_pages(command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output



def _plans(db: Database) -> list[list[str]]:
    from allegiance.ledger import expiry_bulk

    with db.engine.connect() as conn:
        return [[str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql,
                                                          ("[]", "t")).all()]
                for sql in (expiry_bulk._SQLITE_DEBIT, expiry_bulk._SQLITE_LOTS)]


def test_expiry_batch_updates_probe_by_key_without_statistics(sqlite_db: Database) -> None:
    """A fresh SQLite database has no statistics: the expiry job's batch updates were planned
    as a scan of the tenant's accounts (lots) with the chunk scanned once per row — quadratic.
    Materialised, the chunk drives primary-key lookups whatever the statistics."""
    from tests.conftest import build_world

    world = build_world(sqlite_db)
    with sqlite_db.transaction() as s:
        for n in range(300):
            account = members.create_account(s, world.tenant_id, name=f"Shop {n}").id
            ledger.wallet(s, world.tenant_id, world.program_id, world.unit_id, "account",
                          account)
    with sqlite_db.engine.connect() as conn:
        assert conn.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar() == 0
    for plan in _plans(sqlite_db):
        searches = [step for step in plan if step.startswith("SEARCH")]
        assert plan.index("SCAN j VIRTUAL TABLE INDEX 1:") < plan.index(searches[0]), plan
        assert "tenant_id=? AND id=?" in searches[0], plan
    # A job run refreshes the planner's statistics first (kit.statistics).
    run_json(sqlite_db.url, "jobs", "run", "release")
    with sqlite_db.engine.connect() as conn:
        analysed = {row[0] for row in conn.exec_driver_sql("SELECT tbl FROM sqlite_stat1")}
    assert {"ledger_account", "account"} <= analysed
    # and not again while the accounts have not doubled since (a job may run every minute)
    from allegiance.kit import statistics

    assert statistics.refresh(sqlite_db.engine) is False
