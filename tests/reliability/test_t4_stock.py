"""T4: stock never oversells (PostgreSQL).

T4   stock S = 25, 100 concurrent redemptions by 100 funded members, released together by a
     barrier: exactly 25 redemptions, final stock 0, exactly 25 point debits.
T4b  a per-member limit of 1 and 20 concurrent redemptions by one member: exactly 1.
T4p  positive control: the same harness with the conditional stock update replaced by a read,
     a check and a blind write must oversell, or the harness proves nothing.

At most ``in_flight`` transactions hold a connection at once so the test fits the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import text

from allegiance import ledger, members, rewards
from allegiance.kit.db import Database
from allegiance.rewards.errors import LimitReached, OutOfStock
from tests.conftest import World, build_world
from tests.reliability.harness import (
    Retries,
    connection_budget,
    count,
    run_threads,
    with_retries,
)
from tests.support.invariants import assert_ledger_invariants

STOCK = 25
THREADS = 100
COST = 100

Redeem = Callable[[World, str, str], None]


def setup(db: Database) -> tuple[World, str, list[str]]:
    w = build_world(db)
    with db.transaction() as s:
        rid = rewards.create_reward(s, w.tenant_id, w.program_id, code="tv", name="TV",
                                    kind="physical", unit_id=w.unit_id, cost=COST,
                                    stock=STOCK).id
        accounts = []
        for i in range(THREADS):
            acc = members.create_account(s, w.tenant_id, name=f"Shop {i}", region="US").id
            wallet = ledger.wallet(s, w.tenant_id, w.program_id, w.unit_id, "account", acc)
            ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
                program_id=w.program_id, kind="issue",
                lines=(ledger.Line(w.issued_id, w.unit_id, ledger.Side.DEBIT, COST),
                       ledger.Line(wallet.id, w.unit_id, ledger.Side.CREDIT, COST))))
            accounts.append(acc)
    return w, rid, accounts


def real_redeem(w: World, reward_id: str, account_id: str) -> None:
    with w.db.transaction() as s:
        rewards.redeem(s, w.tenant_id, w.program_id, reward_id, account_id, actor="t4")


def broken_redeem(w: World, reward_id: str, account_id: str) -> None:
    """Read the stock, check it, pause, write it back blindly: the lost update T4 guards."""
    with w.db.transaction() as s:
        left = s.execute(text("SELECT stock FROM reward WHERE tenant_id = :t AND id = :r"),
                         {"t": w.tenant_id, "r": reward_id}).scalar_one()
        if left < 1:
            raise OutOfStock("out of stock")
        time.sleep(0.01)
        s.execute(text("UPDATE reward SET stock = :v WHERE tenant_id = :t AND id = :r"),
                  {"v": left - 1, "t": w.tenant_id, "r": reward_id})
        wallet = ledger.wallet(s, w.tenant_id, w.program_id, w.unit_id, "account", account_id)
        ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="redeem", source_type="redemption",
            lines=(ledger.Line(wallet.id, w.unit_id, ledger.Side.DEBIT, COST),
                   ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT, COST))))


def run(db: Database, redeem: Redeem) -> tuple[World, str, int, int, list[BaseException]]:
    w, rid, accounts = setup(db)
    gate = threading.Semaphore(connection_budget(db, THREADS, least=16))
    retries = Retries()

    def target(i: int, barrier: threading.Barrier) -> bool:
        barrier.wait()
        with gate:
            try:
                with_retries(lambda: redeem(w, rid, accounts[i]), retries)
            except OutOfStock:
                return False
        return True

    results = run_threads(THREADS, target, timeout=120)
    errors = [r for r in results if isinstance(r, BaseException)]
    successes = sum(1 for r in results if r is True)
    refused = sum(1 for r in results if r is False)
    return w, rid, successes, refused, errors


def test_t4_stock_never_oversells(pg_db: Database) -> None:
    w, rid, successes, refused, errors = run(pg_db, real_redeem)
    assert errors == []
    assert (successes, refused) == (STOCK, THREADS - STOCK)
    with pg_db.read() as s:
        assert rewards.get_reward(s, w.tenant_id, rid).stock == 0
        redeemed = ledger.get_account(s, w.tenant_id, w.redeemed_id)
        assert ledger.balance_of(redeemed).posted == STOCK * COST
    assert count(pg_db, "SELECT COUNT(*) FROM redemption WHERE tenant_id = :t",
                 t=w.tenant_id) == STOCK
    assert count(pg_db, "SELECT COUNT(*) FROM journal_entry WHERE tenant_id = :t"
                 " AND kind = 'redeem'", t=w.tenant_id) == STOCK
    assert_ledger_invariants(pg_db)


def test_t4p_positive_control_oversells(pg_db: Database) -> None:
    _, _, successes, _, errors = run(pg_db, broken_redeem)
    assert errors == []
    assert successes > STOCK, "the broken redemption did not oversell: T4 proves nothing"
    assert_ledger_invariants(pg_db)


def test_t4b_per_member_limit_holds_under_concurrency(pg_db: Database) -> None:
    w, _, accounts = setup(pg_db)
    with pg_db.transaction() as s:
        rid = rewards.create_reward(s, w.tenant_id, w.program_id, code="cap", name="Cap",
                                    kind="physical", unit_id=w.unit_id, cost=1,
                                    limit_per_member=1, limit_period="month").id
    retries = Retries()

    def target(i: int, barrier: threading.Barrier) -> bool:
        barrier.wait()
        try:
            with_retries(lambda: real_redeem(w, rid, accounts[0]), retries)
        except LimitReached:
            return False
        return True

    results = run_threads(20, target, timeout=60)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sum(1 for r in results if r is True) == 1
    assert count(pg_db, "SELECT COUNT(*) FROM redemption WHERE tenant_id = :t",
                 t=w.tenant_id) == 1
    assert_ledger_invariants(pg_db)
