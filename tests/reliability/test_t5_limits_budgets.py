"""T5: limits and budgets are transactional (no write skew), on PostgreSQL, through the events
service layer.

T5b  a rule with a budget of 1,000 points and 200 concurrent 10-point earns (50 members):
     exactly 100 earns are accepted and exactly 1,000 points issued from the budget.
T5c  a per-member daily cap of 3 and 20 concurrent earns by one member: exactly 3 accepted.
T5p  positive controls: the same harness with the locks replaced by plain reads (the budget
     also paid from the unbounded issued account, as a read-check-write implementation would)
     must overspend, or the harness proves nothing.

The 200 (20) threads are released together by a barrier; at most ``IN_FLIGHT`` transactions
hold a connection at once so the test fits the server's connection limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from allegiance import events, ledger, members, rules
from allegiance.events import service
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.events_support import NOW, Shop, definition
from tests.reliability.harness import Retries, count, run_threads, with_retries
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

IN_FLIGHT = 40
BUDGET_RULE = {"code": "promo", "trigger": "purchase", "budget": 1000,
               "effects": [{"type": "fixed", "unit": "points", "points": 10}]}
CAP_RULE = {"code": "daily", "trigger": "purchase",
            "effects": [{"type": "fixed", "unit": "points", "points": 10}],
            "limits": [{"per": "member", "period": "day", "times": 3}]}


@pytest.fixture(autouse=True)
def _frozen() -> Iterator[None]:
    with clock.frozen(NOW):
        yield


def _shop(db: Database, rule: dict[str, Any], accounts: int) -> tuple[Shop, list[str]]:
    shop = Shop(db, definition(rule, replace=True))
    ids = []
    with db.transaction() as s:
        for i in range(accounts):
            acc = members.create_account(s, shop.tenant_id, name=f"Member {i}")
            members.enrol(s, shop.tenant_id, shop.program_id, acc.id, actor="test")
            ids.append(acc.id)
    return shop, ids


def _storm(shop: Shop, accounts: list[str], n: int) -> tuple[int, Retries, list[Any]]:
    gate = threading.BoundedSemaphore(IN_FLIGHT)
    retries = Retries()

    def earn(i: int, barrier: threading.Barrier) -> int:
        barrier.wait()
        data = events.EventData(external_id=f"E-{i}", account_id=accounts[i % len(accounts)],
                                amount=100, occurred_at=NOW)

        def once() -> int:
            with gate, shop.db.transaction() as s:
                out = events.ingest(s, shop.tenant_id, shop.program_id, data, actor="t5")
                return sum(a.amount for a in out.awards if a.unit_code is not None)

        return with_retries(once, retries)

    results = run_threads(n, earn, timeout=120)
    errors = [r for r in results if isinstance(r, BaseException)]
    accepted = sum(1 for r in results if r == 10)
    return accepted, retries, errors


def _issued_to_wallets(shop: Shop) -> int:
    return count(shop.db, "SELECT COALESCE(SUM(credits_posted - debits_posted), 0) FROM "
                          "ledger_account WHERE tenant_id = :t AND purpose = 'wallet'",
                 t=shop.tenant_id)


def test_t5_budget_is_never_exceeded(pg_db: Database) -> None:
    shop, accounts = _shop(pg_db, BUDGET_RULE, 50)
    started = time.monotonic()
    accepted, retries, errors = _storm(shop, accounts, 200)
    assert not errors, errors[:3]
    issued = _issued_to_wallets(shop)
    budget_left = count(pg_db, "SELECT credits_posted - debits_posted FROM ledger_account "
                               "WHERE tenant_id = :t AND purpose = 'budget:promo'",
                        t=shop.tenant_id)
    figures.record("T5.budget", engine="postgres", threads=200, in_flight=IN_FLIGHT,
                   budget=1000, issued=issued, accepted=accepted, budget_left=budget_left,
                   retries=retries.count, seconds=round(time.monotonic() - started, 2))
    assert issued == 1000 and accepted == 100 and budget_left == 0
    assert count(pg_db, "SELECT COUNT(*) FROM event WHERE tenant_id = :t",
                 t=shop.tenant_id) == 200
    assert_ledger_invariants(pg_db)


def test_t5_member_daily_cap_holds(pg_db: Database) -> None:
    shop, accounts = _shop(pg_db, CAP_RULE, 1)
    accepted, retries, errors = _storm(shop, accounts, 20)
    assert not errors, errors[:3]
    issued = _issued_to_wallets(shop)
    figures.record("T5.cap", engine="postgres", threads=20, cap=3, accepted=accepted,
                   issued=issued, retries=retries.count)
    assert accepted == 3 and issued == 30
    assert_ledger_invariants(pg_db)


# ---------------------------------------------------------------------------------------------
# Positive controls: the locks replaced by plain reads.


def _unlocked_budgets(session: Session, tenant_id: str, program_id: str,
                      units: dict[str, str], budgeted: list[rules.Rule]) -> dict[str, int]:
    out = {}
    for rule in budgeted:
        spent = session.execute(text(
            "SELECT COALESCE(SUM(amount), 0) FROM event_award WHERE tenant_id = :t AND "
            "rule_code = :r"), {"t": tenant_id, "r": rule.code}).scalar_one()
        assert rule.budget is not None
        out[rule.code] = rule.budget - int(spent)
    time.sleep(0.02)  # widens the window between the check and the write
    return out


def _unlocked_limits(session: Session, tenant_id: str, program_id: str, account_id: str,
                     keys: list[tuple[str, int, str]]) -> dict[tuple[str, int, str], tuple[int, int]]:
    for r, i, k in keys:
        session.execute(text(
            "INSERT INTO rule_usage (tenant_id, program_id, member_id, rule_code, limit_index, "
            "period_key, used_amount, used_times) VALUES (:t, :p, :m, :r, :i, :k, 0, 0) "
            "ON CONFLICT DO NOTHING"),
            {"t": tenant_id, "p": program_id, "m": account_id, "r": r, "i": i, "k": k})
    out = {}
    for r, i, k in keys:
        row = session.execute(text(
            "SELECT used_amount, used_times FROM rule_usage WHERE tenant_id = :t AND "
            "program_id = :p AND member_id = :m AND rule_code = :r AND limit_index = :i AND "
            "period_key = :k"),
            {"t": tenant_id, "p": program_id, "m": account_id, "r": r, "i": i, "k": k}).one()
        out[(r, i, k)] = (int(row[0]), int(row[1]))
    time.sleep(0.02)
    return out


def _issued(session: Session, tenant_id: str, program_id: str, unit_id: str,
            rule: rules.Rule) -> str:
    return ledger.program_account(session, tenant_id, program_id, unit_id, "issued").id


def test_t5p_budget_without_locks_overspends(pg_db: Database,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "lock_budgets", _unlocked_budgets)
    monkeypatch.setattr(service, "pay_from", _issued)
    shop, accounts = _shop(pg_db, BUDGET_RULE, 50)
    accepted, _, errors = _storm(shop, accounts, 200)
    assert not errors, errors[:3]
    issued = _issued_to_wallets(shop)
    figures.record("T5p.budget", engine="postgres", threads=200, budget=1000, issued=issued,
                   accepted=accepted, overspend=issued - 1000)
    assert issued > 1000, "the broken variant did not overspend: the harness proves nothing"


def test_t5p_cap_without_locks_overspends(pg_db: Database,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "lock_limits", _unlocked_limits)
    shop, accounts = _shop(pg_db, CAP_RULE, 1)
    accepted, _, errors = _storm(shop, accounts, 20)
    assert not errors, errors[:3]
    figures.record("T5p.cap", engine="postgres", threads=20, cap=3, accepted=accepted)
    assert accepted > 3, "the broken variant kept the cap: the harness proves nothing"
