"""Campaign preview: a dry run of the campaign's rule over the recent events of the members
it targets now — exact projected points, cost in base currency, per rule, against the
budget — that writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from allegiance import campaigns, ledger
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.events_support import Shop, definition
from tests.integration.test_campaigns import NOW, enrolled, segment

LATER = (NOW + timedelta(days=30), NOW + timedelta(days=60))


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        yield Shop(db, definition())


def draft(shop: Shop, code: str, **kw: Any) -> str:
    kw.setdefault("rule", {"trigger": "purchase",
                           "effects": [{"type": "multiplier", "factor": "2"}]})
    with shop.db.transaction() as s:
        return campaigns.create_campaign(s, shop.tenant_id, shop.program_id, code=code,
                                         name=code, starts_at=LATER[0], ends_at=LATER[1],
                                         **kw).id


def entries(shop: Shop) -> int:
    with shop.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(ledger.Posting)) or 0)


def history(shop: Shop) -> tuple[str, str, str]:
    first, second = enrolled(shop, region="ES"), enrolled(shop, region="ES")
    outside = enrolled(shop, region="FR")
    segment(shop, "spain", 'member.country == "ES"')
    shop.event(external_id="a", account_id=first, amount=10_000,
               occurred_at=NOW - timedelta(days=5))
    shop.event(external_id="old", account_id=first, amount=3_000,
               occurred_at=NOW - timedelta(days=40))
    shop.event(external_id="b", account_id=second, occurred_at=NOW - timedelta(days=1),
               lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": 5_000}])
    shop.event(external_id="c", account_id=outside, amount=20_000,
               occurred_at=NOW - timedelta(days=2))
    return first, second, outside


def test_double_points_projected_for_the_segment(shop: Shop) -> None:
    history(shop)
    cid = draft(shop, "double", segments=["spain"])
    before = entries(shop)
    with shop.db.read() as s:
        got = campaigns.preview(s, shop.tenant_id, cid).projection
    # 30 days: the first's 10,000 (100 base points) and the second's 5,000 of one genuine
    # item (50 base + 5 genuine) doubled: +100, +50, +5; France and the 40-day-old purchase
    # are not counted
    assert (got.days, got.events, got.members) == (30, 2, 2)
    assert got.points == {"points": 155} and got.cost == Decimal("1.55")
    assert got.base_currency == "USD" and got.budget is None and not got.over_budget
    assert [(r.rule, r.unit, r.points, r.cost, r.events) for r in got.by_rule] == [
        ("base", "points", 150, Decimal("1.50"), 2),
        ("genuine", "points", 5, Decimal("0.05"), 1)]
    assert got.end == NOW and got.start == NOW - timedelta(days=30)
    with shop.db.read() as s:
        wider = campaigns.preview(s, shop.tenant_id, cid, days=60).projection
    assert (wider.events, wider.points) == (3, {"points": 185})
    assert entries(shop) == before  # nothing written


def test_bonus_projected_against_the_budget(shop: Shop) -> None:
    history(shop)
    cid = draft(shop, "bonus", budget=250, rule={
        "trigger": "purchase", "condition": "event.amount >= 5000",
        "effects": [{"type": "fixed", "unit": "points", "points": 100}]})
    with shop.db.read() as s:
        got = campaigns.preview(s, shop.tenant_id, cid).projection
    # no segment: every member; three purchases of 5,000 or more in 30 days
    assert (got.events, got.members, got.points) == (3, 3, {"points": 300})
    assert got.cost == Decimal("3.00")
    assert (got.budget, got.budget_unit, got.over_budget) == (250, "points", True)
    assert [(r.rule, r.points, r.events) for r in got.by_rule] == [("campaign:bonus", 300, 3)]


def test_no_events_projects_nothing_and_the_window_is_bounded(shop: Shop) -> None:
    enrolled(shop, region="ES")
    segment(shop, "spain", 'member.country == "ES"')
    cid = draft(shop, "double", segments=["spain"])
    with shop.db.read() as s:
        got = campaigns.preview(s, shop.tenant_id, cid).projection
    assert (got.events, got.points, got.cost, got.by_rule) == (0, {}, Decimal("0.00"), [])
    for days in (0, 367):
        with pytest.raises(AllegianceError) as err, shop.db.read() as s:
            campaigns.preview(s, shop.tenant_id, cid, days=days)
        assert err.value.field == "days"
