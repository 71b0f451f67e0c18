"""Returns against a real database (SQLite and PostgreSQL): full and partial returns reverse
exactly what the returned lines earned (partials summing to the whole give back exactly the
original), a return within the window voids the pending hold, a return after the points were
spent leaves a visible debt, and a return beyond what was bought is refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from allegiance import events, ledger
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.events_support import NOW, Shop, definition
from tests.support.invariants import assert_ledger_invariants

LINES = [
    {"sku": "SKU-1", "quantity": 3, "unit_price": 3333},   # 9999: 15 genuine points
    {"sku": "OTHER", "quantity": 7, "amount": 7001},
]  # 17000 in all: 170 base points (an event-level rule)


@pytest.fixture(autouse=True)
def _frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(NOW) as c:
        yield c


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    s = Shop(db)
    yield s
    assert_ledger_invariants(db)


def _earned(shop: Shop, event_id: str) -> int:
    with shop.db.read() as s:
        return int(s.execute(text(
            "SELECT COALESCE(SUM(amount - reversed_amount), 0) FROM event_award "
            "WHERE tenant_id = :t AND event_id = :e AND unit_code IS NOT NULL"),
            {"t": shop.tenant_id, "e": event_id}).scalar_one())


def _tier_points(shop: Shop, account_id: str) -> int:
    with shop.db.read() as s:
        return int(s.execute(text(
            "SELECT COALESCE(SUM(value), 0) FROM tier_metric WHERE tenant_id = :t AND "
            "account_id = :a AND metric = 'points_earned'"),
            {"t": shop.tenant_id, "a": account_id}).scalar_one())


def test_full_return_reverses_everything(shop: Shop) -> None:
    acc = shop.account()
    buy = shop.event(external_id="B-1", account_id=acc, lines=LINES)
    assert shop.wallet(acc).available == 170 + 15 == 185
    ret = shop.ret(external_id="R-1", original_external_id="B-1")
    assert ret.event.kind == "return" and ret.event.original_event_id == buy.event.id
    assert ret.event.amount == 17000
    assert shop.wallet(acc).available == 0
    assert _earned(shop, buy.event.id) == 0
    assert _tier_points(shop, acc) == 0
    reversals = [a for a in ret.awards if a.type == "reversal"]
    assert sum(a.amount for a in reversals if a.unit_code) == 185
    with pytest.raises(AllegianceError) as again:
        shop.ret(external_id="R-2", original_event_id=buy.event.id)
    assert again.value.status == 422 and again.value.code == "return_exceeds_purchase"
    # A replayed return changes nothing.
    replay = shop.ret(external_id="R-1", original_external_id="B-1")
    assert not replay.created and replay.event.id == ret.event.id


def test_partial_returns_sum_to_exactly_the_original(shop: Shop) -> None:
    acc = shop.account()
    buy = shop.event(external_id="B-2", account_id=acc, lines=LINES)
    total = shop.wallet(acc).available
    # Line 1 item by item, line 2 by odd amounts.
    given_back = []
    steps = [{"line_no": 1, "quantity": 1}, {"line_no": 2, "amount": 1000},
             {"line_no": 1, "quantity": 1}, {"line_no": 2, "amount": 3333},
             {"line_no": 1, "quantity": 1}, {"line_no": 2, "amount": 2668}]
    for n, step in enumerate(steps):
        before = shop.wallet(acc).available
        shop.ret(external_id=f"PR-{n}", original_event_id=buy.event.id, lines=[step])
        given_back.append(before - shop.wallet(acc).available)
        assert _earned(shop, buy.event.id) == shop.wallet(acc).available
    assert sum(given_back) == total and shop.wallet(acc).available == 0
    assert given_back[0] == 33 + 5  # 3333/17000 of the base points, 5 per genuine item
    assert _tier_points(shop, acc) == 0
    with shop.db.read() as s:
        lines = {x.line_no: (x.returned_quantity, x.returned_amount)
                 for x in events.outcome(s, shop.tenant_id, buy.event).lines}
    assert lines[1] == (3, 9999)
    assert lines[2] == (7, 7001)


def test_return_of_one_line_leaves_the_other(shop: Shop) -> None:
    acc = shop.account()
    buy = shop.event(external_id="B-3", account_id=acc, lines=LINES)
    shop.ret(external_id="R-3", original_event_id=buy.event.id, lines=[{"line_no": 2}])
    assert shop.wallet(acc).available == 115
    with pytest.raises(AllegianceError) as beyond:
        shop.ret(external_id="R-4", original_event_id=buy.event.id,
                 lines=[{"line_no": 1, "quantity": 4}])
    assert beyond.value.status == 422 and beyond.value.field == "lines[0].quantity"
    with pytest.raises(AllegianceError) as gone:
        shop.ret(external_id="R-5", original_event_id=buy.event.id,
                 lines=[{"line_no": 2, "quantity": 1}])
    assert gone.value.status == 422
    with pytest.raises(AllegianceError) as missing:
        shop.ret(external_id="R-6", original_event_id=buy.event.id, lines=[{"line_no": 9}])
    assert missing.value.field == "lines[0].line_no"
    assert shop.wallet(acc).available == 115


def test_partial_return_of_an_amount_only_purchase(shop: Shop) -> None:
    acc = shop.account()
    buy = shop.event(external_id="B-4", account_id=acc, amount=1001)  # 10 points
    shop.ret(external_id="R-7", original_event_id=buy.event.id, amount=333)
    shop.ret(external_id="R-8", original_event_id=buy.event.id, amount=333)
    assert shop.wallet(acc).available == 10 - 6  # cumulative: 666/1001 of 10 = 6
    with pytest.raises(AllegianceError):
        shop.ret(external_id="R-9", original_event_id=buy.event.id, amount=336)
    shop.ret(external_id="R-10", original_event_id=buy.event.id, amount=335)
    assert shop.wallet(acc).available == 0


def test_return_after_points_were_spent_leaves_visible_debt(shop: Shop) -> None:
    acc = shop.account()
    buy = shop.event(external_id="B-5", account_id=acc, lines=LINES)
    shop.spend(acc, 150)
    assert shop.wallet(acc).available == 35
    ret = shop.ret(external_id="R-11", original_event_id=buy.event.id)
    assert shop.wallet(acc).available == 0
    assert shop.owed(acc) == 150
    balance = next(b for b in ret.balances if b.owner_id == acc)
    assert balance.owed == 150 and balance.available == 0


def test_return_within_window_voids_the_hold(db: Database, _frozen: clock.FrozenClock) -> None:
    shop = Shop(db, definition({
        "code": "window", "trigger": "purchase", "pending_days": 30, "condition":
        'in_list(line.sku, "genuine")',
        "effects": [{"type": "points_per_amount", "unit": "points", "rate": "0.1"}]}))
    acc = shop.account()
    buy = shop.event(external_id="B-6", account_id=acc, lines=LINES)  # window: 999 pending
    assert shop.wallet(acc).pending_in == 999
    _frozen.advance(timedelta(days=10))
    shop.ret(external_id="R-12", original_event_id=buy.event.id,
             lines=[{"line_no": 1, "quantity": 1}])
    bal = shop.wallet(acc)
    assert bal.pending_in == 999 - 333  # the rest is held again until the same date
    shop.ret(external_id="R-13", original_event_id=buy.event.id, lines=[{"line_no": 1}])
    assert shop.wallet(acc).pending_in == 0
    assert shop.wallet(acc).available == 71  # 170 - 9999/17000 of it stays
    _frozen.advance(timedelta(days=30))
    with db.transaction() as s:
        assert ledger.release_due_holds(s) == 0
    assert shop.wallet(acc).available == 71
    assert_ledger_invariants(db)


def test_return_after_the_window_reverses_the_released_hold(
        db: Database, _frozen: clock.FrozenClock) -> None:
    shop = Shop(db, definition({
        "code": "window", "trigger": "purchase", "pending_days": 7,
        "effects": [{"type": "fixed", "unit": "points", "points": 100}]}, replace=True))
    acc = shop.account()
    buy = shop.event(external_id="B-7", account_id=acc, amount=1000)
    shop.ret(external_id="R-14", original_event_id=buy.event.id, amount=500)
    assert shop.wallet(acc).pending_in == 50
    _frozen.advance(timedelta(days=8))
    with db.transaction() as s:
        assert ledger.release_due_holds(s) == 1
    assert shop.wallet(acc).available == 50
    shop.ret(external_id="R-15", original_event_id=buy.event.id)
    assert shop.wallet(acc).available == 0 and shop.wallet(acc).pending_in == 0
    assert_ledger_invariants(db)


def test_only_processed_purchases_can_be_returned(shop: Shop) -> None:
    acc = shop.account()
    act = shop.event(external_id="A-1", kind="activity", activity_type="newsletter_opt_in",
                     account_id=acc)
    with pytest.raises(AllegianceError) as err:
        shop.ret(external_id="R-16", original_event_id=act.event.id)
    assert err.value.code == "not_returnable"
    with pytest.raises(AllegianceError) as missing:
        shop.ret(external_id="R-17", original_external_id="NOPE")
    assert missing.value.field == "original_external_id"


def test_negative_balance_policy_applies_before_debt(db: Database) -> None:
    shop = Shop(db, negative_floor=-100)
    acc = shop.account()
    buy = shop.event(external_id="B-8", account_id=acc, lines=LINES)
    shop.spend(acc, 150)
    shop.ret(external_id="R-18", original_event_id=buy.event.id)
    assert shop.wallet(acc).available == -100  # the unit allows 100 below zero
    assert shop.owed(acc) == 185 - 35 - 100
    assert_ledger_invariants(db)


def test_concurrent_returns_never_give_back_more_than_bought(shop: Shop) -> None:
    acc = shop.account()
    buy = shop.event(external_id="B-9", account_id=acc, lines=LINES)
    barrier = threading.Barrier(8)
    outcomes: list[object] = []

    def give_back(n: int) -> None:
        barrier.wait()
        try:
            shop.ret(external_id=f"CR-{n}", original_event_id=buy.event.id,
                     lines=[{"line_no": 1, "quantity": 1}])
            outcomes.append("ok")
        except AllegianceError as exc:
            outcomes.append(exc.code)
        except Exception as exc:  # a lock timeout would show here
            outcomes.append(exc)

    threads = [threading.Thread(target=give_back, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(map(str, outcomes)) == ["ok"] * 3 + ["return_exceeds_purchase"] * 5
    # Line 1 fully returned: its genuine points and 9999/17000 of the base points are back.
    assert shop.wallet(acc).available == 185 - 15 - 99
