"""What a rule means, pinned against a real database (SQLite and PostgreSQL) with figures
worked out by hand: the definition version in force at the event's time decides (not the one
in force when the event arrives), each rounding policy of ``points_per_amount``, a rule's
``valid_to`` (exclusive) and conditions over the event's date, and a return taking back the
``spend`` tier credit of exactly the returned line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from allegiance import definitions
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.money import Rounding
from allegiance.rules.domain import divide
from tests.integration.events_support import NOW, Shop, definition
from tests.integration.events_support import points_by_rule as _points
from tests.support.invariants import assert_ledger_invariants


@pytest.fixture(autouse=True)
def _frozen() -> Iterator[clock.FrozenClock]:
    with clock.frozen(NOW) as c:
        yield c


def _rate(rate: str, **rule: Any) -> dict[str, Any]:
    return {"code": "base", "trigger": "purchase",
            "effects": [{"type": "points_per_amount", "unit": "points", "rate": rate}], **rule}


def test_the_version_in_force_at_the_events_time_decides(db: Database) -> None:
    shop = Shop(db, definition(_rate("0.01"), replace=True))  # v1 from 2020: 1 per $1
    with db.transaction() as s:
        definitions.apply(s, shop.tenant_id, definition(_rate("0.03"), replace=True),
                          actor="test", effective_from=NOW - timedelta(days=1))  # v2: 3 per $1
    acc = shop.account()
    before = shop.event(external_id="OLD", account_id=acc, amount=10_000,
                        occurred_at=NOW - timedelta(days=2))  # back-dated: v1 was in force
    after = shop.event(external_id="NEW", account_id=acc, amount=10_000)
    assert (before.event.version, _points(before)) == (1, {"base": 100})
    assert (after.event.version, _points(after)) == (2, {"base": 300})
    assert_ledger_invariants(db)


@pytest.mark.parametrize(("rounding", "expected"), [
    ("down", [1, 1, 2, 2]), ("floor", [1, 1, 2, 2]), ("up", [2, 2, 3, 3]),
    ("half_up", [1, 2, 3, 3]), ("half_even", [1, 2, 2, 3]),
])
def test_each_rounding_policy_of_points_per_amount(db: Database, rounding: str,
                                                   expected: list[int]) -> None:
    rule = _rate("0.01")
    rule["effects"][0]["rounding"] = rounding
    shop = Shop(db, definition(rule, replace=True))
    acc = shop.account()
    # $1.49, $1.50, $2.50, $2.51 at 1 point per $1
    got = [_points(shop.event(external_id=f"R-{cents}", account_id=acc, amount=cents))["base"]
           for cents in (149, 150, 250, 251)]
    assert got == expected


def test_divide_rounds_negative_amounts_by_the_policy() -> None:
    assert [divide(-7, 2, r) for r in Rounding] == [
        {Rounding.DOWN: -3, Rounding.UP: -4, Rounding.HALF_UP: -4, Rounding.HALF_EVEN: -4,
         Rounding.FLOOR: -4}[r] for r in Rounding]
    assert divide(5, 2, Rounding.HALF_EVEN) == 2 and divide(7, 2, Rounding.HALF_EVEN) == 4


def test_valid_to_is_exclusive_and_dates_in_conditions(db: Database) -> None:
    end = NOW + timedelta(days=1)
    shop = Shop(db, definition(
        {"code": "promo", "trigger": "purchase", "valid_to": end.isoformat(),
         "effects": [{"type": "fixed", "unit": "points", "points": 7}]},
        {"code": "weekend", "trigger": "purchase", "condition": "event.weekday >= 6",
         "effects": [{"type": "fixed", "unit": "points", "points": 11}]},
        {"code": "january", "trigger": "purchase", "condition": "event.month == 1",
         "effects": [{"type": "fixed", "unit": "points", "points": 13}]},
        replace=True))
    acc = shop.account()
    # NOW is Thursday 2026-01-15; event.weekday is ISO (Monday 1 … Sunday 7).
    thursday = shop.event(external_id="D-1", account_id=acc, amount=100)
    saturday = shop.event(external_id="D-2", account_id=acc, amount=100,
                          occurred_at=NOW + timedelta(days=2))
    at_end = shop.event(external_id="D-3", account_id=acc, amount=100, occurred_at=end)
    just_before = shop.event(external_id="D-4", account_id=acc, amount=100,
                             occurred_at=end - timedelta(seconds=1))
    february = shop.event(external_id="D-5", account_id=acc, amount=100,
                          occurred_at=NOW + timedelta(days=20))
    assert _points(thursday) == {"promo": 7, "january": 13}
    assert _points(saturday) == {"weekend": 11, "january": 13}
    assert _points(at_end) == {"january": 13}
    assert _points(just_before) == {"promo": 7, "january": 13}
    assert _points(february) == {}
    assert_ledger_invariants(db)


def _spend(shop: Shop, account_id: str) -> int:
    with shop.db.read() as s:
        return int(s.execute(text(
            "SELECT COALESCE(SUM(value), 0) FROM tier_metric WHERE tenant_id = :t AND "
            "account_id = :a AND metric = 'spend'"),
            {"t": shop.tenant_id, "a": account_id}).scalar_one())


def test_a_return_takes_back_the_spend_credit_of_exactly_the_returned_line(db: Database) -> None:
    shop = Shop(db, definition(
        {"code": "spend", "trigger": "purchase",
         "effects": [{"type": "tier_credit", "metric": "spend"}]}))
    acc = shop.account()
    shop.event(external_id="B-1", account_id=acc, lines=[
        {"sku": "SKU-1", "quantity": 3, "unit_price": 3333},   # 9999
        {"sku": "OTHER", "quantity": 7, "amount": 7001},
    ])
    assert _spend(shop, acc) == 17_000
    shop.ret(external_id="R-1", original_external_id="B-1",
             lines=[{"line_no": 1, "quantity": 1}])          # one of three: 3333
    assert _spend(shop, acc) == 17_000 - 3333
    shop.ret(external_id="R-2", original_external_id="B-1", lines=[{"line_no": 2}])
    assert _spend(shop, acc) == 17_000 - 3333 - 7001
    assert_ledger_invariants(db)
