"""Returns take back the challenge progress their purchase made, and undo a completion the
totals no longer hold through a ledger reversal (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from allegiance import engagement, ledger
from allegiance.engagement import domain
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.models import OutboxMessage
from tests.integration.events_support import Shop, definition
from tests.support.invariants import assert_ledger_invariants

TZ = "Asia/Kolkata"
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
SEQ = itertools.count(1)


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        s = Shop(db, definition(time_zone=TZ, replace=True))  # no rules: only the challenge pays
        yield s
    assert_ledger_invariants(db)


def challenge(shop: Shop, **kw: Any) -> None:
    kw.setdefault("effects", [{"type": "points", "unit": "points", "amount": 500}])
    with shop.db.transaction() as s:
        engagement.create_challenge(s, shop.tenant_id, shop.program_id, code="c",
                                    name="Challenge", actor="test", **kw)


def buy(shop: Shop, account: str, at: datetime, **kw: Any) -> str:
    kw.setdefault("amount", 1000)
    return shop.event(external_id=f"p{next(SEQ)}", account_id=account, occurred_at=at,
                      **kw).event.id


def history(shop: Shop, account: str) -> list[tuple[int, bool]]:
    with shop.db.read() as s:
        p = engagement.progress_of(s, shop.tenant_id, shop.program_id, account)[0]
        assert p.completions == sum(1 for c in p.history if c.reversed_at is None)
        return [(c.number, c.reversed_at is not None) for c in p.history]


def test_a_return_undoes_the_completion_and_reverses_its_points(shop: Shop) -> None:
    acc = shop.account()
    challenge(shop, trigger="purchase", target=2, period="month")
    first = buy(shop, acc, datetime(2026, 6, 2, tzinfo=UTC))
    buy(shop, acc, datetime(2026, 6, 3, tzinfo=UTC))
    assert shop.wallet(acc).posted == 500 and history(shop, acc) == [(1, False)]
    shop.ret(external_id="r1", original_event_id=first)
    assert shop.wallet(acc).posted == 0
    assert history(shop, acc) == [(1, True)]
    with shop.db.read() as s:
        done = s.scalars(select(engagement.ChallengeCompletion)).one()
        reversal = ledger.get_entry(s, shop.tenant_id, done.reversal_entry_id)
        assert reversal.reverses_entry_id == done.entry_id
        kinds = [m.event_type for m in s.scalars(select(OutboxMessage))]
        assert "challenge.reversed" in kinds
    # a new purchase in the month completes it again: a new number, paid again
    buy(shop, acc, datetime(2026, 6, 20, tzinfo=UTC))
    assert history(shop, acc) == [(1, True), (2, False)]
    assert shop.wallet(acc).posted == 500


def test_spent_completion_points_become_a_receivable(shop: Shop) -> None:
    acc = shop.account()
    challenge(shop, trigger="purchase", target=1, period="all")
    first = buy(shop, acc, datetime(2026, 6, 2, tzinfo=UTC))
    shop.spend(acc, 400)
    shop.ret(external_id="r1", original_event_id=first)
    assert shop.wallet(acc).posted == 0
    assert shop.owed(acc) == 400


def test_partial_return_lowers_an_amount_challenge_only_by_its_lines(shop: Shop) -> None:
    acc = shop.account()
    challenge(shop, trigger="purchase", metric="amount", product_list="genuine",
              target=1500, period="quarter")
    first = buy(shop, acc, datetime(2026, 5, 2, tzinfo=UTC), amount=None, lines=[
        {"sku": "SKU-1", "quantity": 2, "unit_price": 500},
        {"sku": "OTHER", "quantity": 1, "unit_price": 9000}])
    buy(shop, acc, datetime(2026, 5, 3, tzinfo=UTC), amount=None,
        lines=[{"sku": "SKU-2", "quantity": 1, "unit_price": 600}])
    assert shop.wallet(acc).posted == 500
    shop.ret(external_id="r1", original_event_id=first, lines=[{"line_no": 2}])
    assert shop.wallet(acc).posted == 500  # the other product does not count
    shop.ret(external_id="r2", original_event_id=first, lines=[{"line_no": 1, "quantity": 1}])
    assert shop.wallet(acc).posted == 0  # 500 + 600 < 1500
    with shop.db.read() as s:
        totals = engagement.service.totals_of(
            s, shop.tenant_id, s.scalars(select(engagement.Challenge.id)).one(), acc)
    assert totals == {2026 * 4 + 1: 1100}


def test_returns_in_any_order_end_where_a_recount_from_history_ends(shop: Shop) -> None:
    """Purchases and returns in a random order (seeded): the stored totals equal the totals
    recomputed from what is left of every purchase, and the live completions equal what
    those totals allow."""
    rng = random.Random(7)
    acc = shop.account()
    challenge(shop, trigger="purchase", metric="count", target=2, period="week", streak=2,
              max_completions=3)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    bought: list[str] = []
    for _ in range(14):
        if bought and rng.random() < 0.35:
            shop.ret(external_id=f"r{next(SEQ)}", original_event_id=bought.pop(
                rng.randrange(len(bought))))
        else:
            at = start + timedelta(hours=rng.randrange(0, 24 * 40))
            bought.append(buy(shop, acc, at))
    with shop.db.read() as s:
        chl = s.scalars(select(engagement.Challenge)).one()
        totals = {k: v for k, v in engagement.service.totals_of(
            s, shop.tenant_id, chl.id, acc).items() if v}
        from allegiance import events
        expected: dict[int, int] = {}
        for event_id in bought:
            at = events.get_event(s, shop.tenant_id, event_id).occurred_at
            index = domain.period_index("week", at, TZ)
            expected[index] = expected.get(index, 0) + 1
    assert totals == expected
    live = [n for n, undone in history(shop, acc) if not undone]
    assert len(live) == min(len(domain.completions(expected, 2, 2)), 3)
    assert shop.wallet(acc).posted == 500 * len(live)
