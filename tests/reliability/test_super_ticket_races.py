"""Super tickets and custom requests under concurrency (PostgreSQL): 20 members entering a
first-come release of 3 seats at once get exactly 3; one account entering 10 times at once
gets one entry; a custom request accepted 10 times at once holds its price once."""

from __future__ import annotations

import threading
from datetime import timedelta

from allegiance import ledger, members, operators, rewards
from allegiance.engagement import tickets
from allegiance.engagement.errors import AlreadyEntered
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.memberships import managers
from allegiance.rewards.errors import OutOfStock
from tests.conftest import World, build_world
from tests.reliability.harness import Retries, count, run_threads, with_retries
from tests.support.invariants import assert_ledger_invariants

SEATS, MEMBERS = 3, 20


def _setup(db: Database) -> tuple[World, str, list[str]]:
    w = build_world(db)
    now = clock.now()
    with db.transaction() as s:
        reward = rewards.create_reward(s, w.tenant_id, w.program_id, code="seats",
                                       name="Seats", kind="experience", unit_id=w.unit_id,
                                       cost=10, stock=SEATS, limit_per_member=1).id
        ticket = tickets.create_super_ticket(
            s, w.tenant_id, w.program_id, code="show", name="Show", reward_id=reward,
            mode="first_come", opens_at=now - timedelta(minutes=1),
            closes_at=now + timedelta(days=1)).id
        accounts = [members.create_account(s, w.tenant_id, name=f"M{i}").id
                    for i in range(MEMBERS)]
    for account in accounts:
        w.earn(w.wallet(account), 10)
    return w, ticket, accounts


def _enter(w: World, ticket: str, account: str, retries: Retries) -> bool:
    def once() -> None:
        with w.db.transaction() as s:
            tickets.enter(s, w.tenant_id, ticket, account, actor="race")
    try:
        with_retries(once, retries)
    except (OutOfStock, AlreadyEntered):
        return False
    return True


def test_first_come_never_gives_more_than_the_stock(pg_db: Database) -> None:
    w, ticket, accounts = _setup(pg_db)
    retries = Retries()
    results = run_threads(MEMBERS, lambda i, barrier: (
        barrier.wait(), _enter(w, ticket, accounts[i], retries))[1], timeout=120)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sum(1 for r in results if r is True) == SEATS
    assert count(pg_db, "SELECT COUNT(*) FROM super_ticket_entry WHERE tenant_id = :t",
                 t=w.tenant_id) == SEATS
    assert count(pg_db, "SELECT COUNT(*) FROM redemption WHERE tenant_id = :t",
                 t=w.tenant_id) == SEATS
    assert_ledger_invariants(pg_db)


def test_one_account_entering_at_once_gets_one_entry(pg_db: Database) -> None:
    w, ticket, accounts = _setup(pg_db)
    retries = Retries()
    results = run_threads(10, lambda i, barrier: (
        barrier.wait(), _enter(w, ticket, accounts[0], retries))[1], timeout=120)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sum(1 for r in results if r is True) == 1
    assert count(pg_db, "SELECT COUNT(*) FROM redemption WHERE tenant_id = :t",
                 t=w.tenant_id) == 1
    assert_ledger_invariants(pg_db)


def test_a_custom_request_accepted_at_once_holds_once(pg_db: Database) -> None:
    w = build_world(pg_db)
    with pg_db.transaction() as s:
        account = members.create_account(s, w.tenant_id, name="Corp").id
        mia = operators.create_operator(s, w.tenant_id, email="mia@example.com", name="Mia",
                                        role="support", password="a long enough password 42",
                                        actor="t").id
        managers.assign_manager(s, w.tenant_id, account, mia, actor="t")
        rid = managers.create_request(s, w.tenant_id, w.program_id, account,
                                      description="Rack", actor="t").id
        managers.quote(s, w.tenant_id, rid, operator_id=mia, unit_id=w.unit_id, price=300,
                       actor="t")
    w.earn(w.wallet(account), 1000)
    retries = Retries()

    def accept(i: int, barrier: threading.Barrier) -> bool:
        barrier.wait()

        def once() -> None:
            with pg_db.transaction() as s:
                managers.accept(s, w.tenant_id, rid, actor="race")
        try:
            with_retries(once, retries)
        except AllegianceError as exc:
            assert exc.code == "invalid_transition"
            return False
        return True

    results = run_threads(10, accept, timeout=120)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sum(1 for r in results if r is True) == 1
    assert w.balance(w.wallet(account)).available == 700
    with pg_db.read() as s:
        assert ledger.get_hold(s, w.tenant_id, managers.get_request(
            s, w.tenant_id, rid).hold_id or "").amount == 300
    assert_ledger_invariants(pg_db)
