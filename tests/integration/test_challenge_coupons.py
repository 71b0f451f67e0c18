"""The challenge completion effect ``coupon``: each completion issues one single-use code of a
coupon-kind reward of the catalogue to the account, the till validates and uses it like a
bought coupon, a return that undoes the completion voids an unused one (SQLite and
PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from allegiance import engagement, rewards
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.events_support import Shop, definition
from tests.support.invariants import assert_ledger_invariants

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
SEQ = itertools.count(1)


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        s = Shop(db, definition(time_zone="Europe/Berlin", replace=True))
        with s.db.transaction() as session:
            rewards.create_reward(session, s.tenant_id, s.program_id, code="ten-off",
                                  name="10% off", kind="coupon", unit_id=s.unit_id, cost=500,
                                  code_valid_days=30)
            rewards.create_reward(session, s.tenant_id, s.program_id, code="mug",
                                  name="Mug", kind="physical", unit_id=s.unit_id, cost=500)
        yield s
    assert_ledger_invariants(db)


def challenge(shop: Shop, **kw: Any) -> None:
    kw.setdefault("effects", [{"type": "coupon", "reward": "ten-off"}])
    with shop.db.transaction() as s:
        engagement.create_challenge(s, shop.tenant_id, shop.program_id, code="c",
                                    name="Challenge", actor="test", trigger="purchase", **kw)


def buy(shop: Shop, account: str, at: datetime) -> str:
    return shop.event(external_id=f"p{next(SEQ)}", account_id=account, occurred_at=at,
                      amount=1000).event.id


def coupons(shop: Shop, account: str) -> list[rewards.Redemption]:
    with shop.db.read() as s:
        rows = rewards.list_redemptions(s, shop.tenant_id, shop.program_id, account_id=account)
        for row in rows:
            s.expunge(row)
        return rows


def test_each_completion_issues_one_single_use_code(shop: Shop) -> None:
    acc, other = shop.account(), shop.account()
    challenge(shop, target=2, period="month")
    buy(shop, acc, datetime(2026, 6, 2, tzinfo=UTC))
    assert coupons(shop, acc) == []
    buy(shop, acc, datetime(2026, 6, 3, tzinfo=UTC))
    buy(shop, acc, datetime(2026, 6, 4, tzinfo=UTC))  # 3 in June: still one completion
    buy(shop, other, datetime(2026, 6, 4, tzinfo=UTC))
    [coupon] = coupons(shop, acc)
    assert coupons(shop, other) == []
    assert (coupon.status, coupon.points, coupon.quantity) == ("fulfilled", 0, 1)
    assert coupon.code and coupon.code_expires_at == NOW + timedelta(days=30)
    assert shop.wallet(acc).posted == 0  # free: the challenge paid for it, not the member
    with shop.db.read() as s:
        done = s.scalars(select(engagement.ChallengeCompletion)).one()
        assert done.effects == [{"type": "coupon", "reward": "ten-off",
                                 "redemption_id": coupon.id, "code": coupon.code,
                                 "expires_at": coupon.code_expires_at.isoformat()}]
        # issuing again for the same completion gives the same coupon, not a second one
        again = rewards.issue_coupon(s, shop.tenant_id, shop.program_id, "ten-off", acc,
                                     source="challenge completion", source_id=done.id,
                                     actor="test")
        assert (again.id, again.code) == (coupon.id, coupon.code)
        assert rewards.validate_coupon(s, shop.tenant_id, coupon.code).id == coupon.id
    with shop.db.transaction() as s:
        rewards.use_coupon(s, shop.tenant_id, coupon.code, actor="till")
    with shop.db.transaction() as s, pytest.raises(AllegianceError) as err:
        rewards.use_coupon(s, shop.tenant_id, coupon.code, actor="till")
    assert err.value.code == "coupon_used"
    buy(shop, acc, datetime(2026, 7, 1, 8, tzinfo=UTC))
    buy(shop, acc, datetime(2026, 7, 2, 8, tzinfo=UTC))  # July's completion: a second code
    second = [c for c in coupons(shop, acc) if c.id != coupon.id]
    assert len(second) == 1 and second[0].code != coupon.code


def test_a_return_that_undoes_the_completion_voids_an_unused_coupon(shop: Shop) -> None:
    acc = shop.account()
    challenge(shop, target=1, period="all", max_completions=1)
    first = buy(shop, acc, datetime(2026, 6, 2, tzinfo=UTC))
    [coupon] = coupons(shop, acc)
    shop.ret(external_id="r1", original_event_id=first)
    [voided] = coupons(shop, acc)
    assert voided.status == "cancelled"
    with shop.db.read() as s, pytest.raises(AllegianceError) as err:
        rewards.validate_coupon(s, shop.tenant_id, coupon.code or "")
    assert err.value.code == "coupon_not_found"


def test_the_coupon_effect_names_a_coupon_reward_of_the_catalogue(shop: Shop) -> None:
    for effect in ({"type": "coupon"}, {"type": "coupon", "reward": "nope"},
                   {"type": "coupon", "reward": "mug"}):
        with pytest.raises(AllegianceError) as err:
            challenge(shop, target=1, effects=[effect])
        assert (err.value.code, err.value.field) == ("invalid_challenge", "effects[0].reward")
