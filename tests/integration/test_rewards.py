"""Rewards catalogue and redemptions against the real ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allegiance import ledger, members, rewards, tiers
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError
from tests.conftest import World

NOW = datetime(2026, 5, 17, 12, tzinfo=UTC)


@pytest.fixture
def w(world: World) -> Iterator[World]:
    with clock.frozen(NOW):
        yield world


def account(w: World, region: str | None = "US", balance: int = 0,
            segment: str | None = None) -> str:
    with w.db.transaction() as s:
        acc = members.create_account(s, w.tenant_id, name="Shop", region=region,
                                     attributes={"segment": segment} if segment else None).id
    if balance:
        fund(w, acc, balance)
    return acc


def fund(w: World, account_id: str, amount: int) -> None:
    with w.db.transaction() as s:
        wallet = ledger.wallet(s, w.tenant_id, w.program_id, w.unit_id, "account", account_id)
        ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="issue",
            lines=(ledger.Line(w.issued_id, w.unit_id, ledger.Side.DEBIT, amount),
                   ledger.Line(wallet.id, w.unit_id, ledger.Side.CREDIT, amount))))


def balance(w: World, account_id: str) -> ledger.Balance:
    with w.db.transaction() as s:
        return ledger.balance_of(ledger.wallet(s, w.tenant_id, w.program_id, w.unit_id,
                                               "account", account_id))


def reward(w: World, code: str = "mug", kind: str = "physical", cost: int = 100,
           **options: Any) -> str:
    with w.db.transaction() as s:
        return rewards.create_reward(s, w.tenant_id, w.program_id, code=code, name=code,
                                     kind=kind, unit_id=w.unit_id, cost=cost, **options).id


def redeem(w: World, reward_id: str, account_id: str, **kw: Any) -> rewards.Redemption:
    with w.db.transaction() as s:
        row = rewards.redeem(s, w.tenant_id, w.program_id, reward_id, account_id, **kw)
        s.expunge(row)
        return row


def act(w: World, fn: Any, redemption_id: str, **kw: Any) -> rewards.Redemption:
    with w.db.transaction() as s:
        row = fn(s, w.tenant_id, redemption_id, actor="ops", **kw)
        s.expunge(row)
        return row


def refused(w: World, reward_id: str, account_id: str, **kw: Any) -> AllegianceError:
    with pytest.raises(AllegianceError) as err:
        redeem(w, reward_id, account_id, **kw)
    return err.value


def stock(w: World, reward_id: str) -> int | None:
    with w.db.read() as s:
        return rewards.get_reward(s, w.tenant_id, reward_id).stock


def test_redemption_posts_at_once_and_balances_drop(w: World) -> None:
    acc = account(w, balance=1000)
    rid = reward(w, cost=150, stock=10)
    row = redeem(w, rid, acc, quantity=2)
    assert (row.status, row.points, row.entry_id is not None) == ("approved", 300, True)
    assert balance(w, acc).available == 700
    assert stock(w, rid) == 8
    with w.db.read() as s:
        assert ledger.balance_of(ledger.get_account(s, w.tenant_id, w.redeemed_id)).posted == 300
    # cancelling refunds through a reversal and gives the stock back
    row = act(w, rewards.cancel, row.id, reason="changed mind")
    assert row.status == "cancelled" and row.reversal_entry_id is not None
    assert balance(w, acc).available == 1000 and stock(w, rid) == 10
    with pytest.raises(AllegianceError) as err:
        act(w, rewards.cancel, row.id)
    assert err.value.code == "invalid_transition"


def test_approval_flow_holds_then_posts_or_refunds_exactly(w: World) -> None:
    acc = account(w, balance=1000)
    rid = reward(w, cost=400, requires_approval=True, stock=5)
    first = redeem(w, rid, acc)
    assert first.status == "requested" and first.hold_id and first.entry_id is None
    b = balance(w, acc)
    assert (b.posted, b.available) == (1000, 600)  # held: available drops at once
    approved = act(w, rewards.approve, first.id)
    assert approved.status == "approved" and approved.entry_id is not None
    b = balance(w, acc)
    assert (b.posted, b.available) == (600, 600)
    second = redeem(w, rid, acc)
    assert balance(w, acc).available == 200
    rejected = act(w, rewards.reject, second.id, reason="fraud check")
    assert rejected.status == "rejected" and rejected.reason == "fraud check"
    b = balance(w, acc)
    assert (b.posted, b.available) == (600, 600)
    assert stock(w, rid) == 4
    with pytest.raises(AllegianceError) as err:
        act(w, rewards.approve, second.id)
    assert err.value.code == "invalid_transition"
    # an approved (posted) redemption cancelled before fulfilment is reversed exactly
    cancelled = act(w, rewards.cancel, approved.id)
    assert cancelled.reversal_entry_id is not None
    b = balance(w, acc)
    assert (b.posted, b.available) == (1000, 1000)
    assert stock(w, rid) == 5


def test_stock_never_oversells_and_points_must_suffice(w: World) -> None:
    acc = account(w, balance=10_000)
    rid = reward(w, cost=10, stock=3)
    redeem(w, rid, acc, quantity=2)
    assert refused(w, rid, acc, quantity=2).code == "out_of_stock"
    redeem(w, rid, acc)
    assert stock(w, rid) == 0
    assert refused(w, rid, acc).status == 409
    poor = account(w, balance=5)
    unlimited = reward(w, code="pen", cost=10)
    assert refused(w, unlimited, poor).code == "insufficient_funds"
    assert balance(w, acc).available == 10_000 - 30


def test_region_restricted_physical_reward(w: World) -> None:
    rid = reward(w, eligible_regions=["us"])
    us, de = account(w, "US", 500), account(w, "DE", 500)
    redeem(w, rid, us)
    err = refused(w, rid, de)
    assert (err.code, err.status) == ("region_not_eligible", 422)
    assert balance(w, de).available == 500
    with w.db.read() as s:
        assert [r.id for r in rewards.list_rewards(s, w.tenant_id, w.program_id,
                                                   account_id=de)] == []
        assert [r.id for r in rewards.list_rewards(s, w.tenant_id, w.program_id,
                                                   account_id=us)] == [rid]


def test_a_country_admits_its_subdivisions_as_program_enrolment_does(w: World) -> None:
    """A reward for ["US"] is redeemed by a member in US-NY (tenants.region_eligible's rule);
    one for ["US-CA"] refuses US-NY and a member registered only as US."""
    us_only = reward(w, code="us-mug", eligible_regions=["US"])
    california = reward(w, code="ca-mug", eligible_regions=["US-CA"])
    ny, us, de = account(w, "US-NY", 500), account(w, "US", 500), account(w, "DE-BE", 500)
    assert redeem(w, us_only, ny).status == "approved"  # physical: approved, then shipped
    assert refused(w, us_only, de).code == "region_not_eligible"
    assert refused(w, california, ny).code == "region_not_eligible"
    assert refused(w, california, us).code == "region_not_eligible"
    assert balance(w, ny).available == 400
    with w.db.read() as s:
        assert {r.id for r in rewards.list_rewards(s, w.tenant_id, w.program_id,
                                                   account_id=ny)} == {us_only}


def test_tier_restricted_reward(w: World) -> None:
    with w.db.transaction() as s:
        tiers.create_ladder(s, w.tenant_id, w.program_id, {
            "code": "status", "metric": "points_earned", "primary": True,
            "levels": [{"code": "silver", "threshold": 0}, {"code": "gold", "threshold": 5000}]})
    rid = reward(w, eligible_tiers=["gold"])
    gold, plain = account(w, balance=500), account(w, balance=500)
    with w.db.transaction() as s:
        tiers.place(s, w.tenant_id, w.program_id, gold, level="gold", reason="test", actor="t")
    redeem(w, rid, gold)
    assert refused(w, rid, plain).code == "tier_not_eligible"


def test_segment_restricted_reward(w: World) -> None:
    rid = reward(w, eligible_segments=["retailer"])
    retailer = account(w, balance=500, segment="retailer")
    installer = account(w, balance=500, segment="installer")
    redeem(w, rid, retailer)
    assert refused(w, rid, installer).code == "segment_not_eligible"
    with w.db.transaction() as s:
        rewards.update_reward(s, w.tenant_id, rid, {"eligible_segments": []})
    redeem(w, rid, installer)


def test_per_member_monthly_limit(w: World) -> None:
    rid = reward(w, limit_per_member=2, limit_period="month")
    acc, other = account(w, balance=1000), account(w, balance=1000)
    redeem(w, rid, acc)
    cancelled = redeem(w, rid, acc)
    act(w, rewards.cancel, cancelled.id)  # cancelled ones do not count
    redeem(w, rid, acc)
    err = refused(w, rid, acc)
    assert (err.code, err.status) == ("limit_reached", 409)
    redeem(w, rid, other)
    with clock.frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        redeem(w, rid, acc)


def test_windows_and_retirement(w: World) -> None:
    acc = account(w, balance=1000)
    rid = reward(w, available_from=NOW + timedelta(days=1))
    assert refused(w, rid, acc).code == "reward_unavailable"
    with clock.frozen(NOW + timedelta(days=2)):
        redeem(w, rid, acc)
    with w.db.transaction() as s:
        rewards.update_reward(s, w.tenant_id, rid, {"status": "retired"})
    assert refused(w, rid, acc).code == "reward_retired"


def test_the_catalogue_shows_the_visibility_window_and_offers_the_availability_window(
        w: World) -> None:
    """A reward shown before it can be redeemed (a teaser), one redeemable but not shown (a
    hidden, link-only offer), one whose showing ended: ``visible_only`` keeps what is shown
    now; an ``account_id`` keeps what is shown and redeemable now."""
    acc = account(w)
    day = timedelta(days=1)
    shown = reward(w, code="shown")
    teaser = reward(w, code="teaser", visible_from=NOW - day, available_from=NOW + day)
    hidden = reward(w, code="hidden", visible_from=NOW + day, available_from=NOW - day)
    ended = reward(w, code="ended", visible_to=NOW - day)

    def listed(**kw: Any) -> set[str]:
        with w.db.read() as s:
            return {r.id for r in rewards.list_rewards(s, w.tenant_id, w.program_id, **kw)}

    assert listed() == {shown, teaser, hidden, ended}
    assert listed(visible_only=True) == {shown, teaser}
    assert listed(account_id=acc) == {shown}
    assert listed(account_id=acc, visible_only=True) == {shown}
    with clock.frozen(NOW + 2 * day):  # the teaser opens and the hidden offer shows
        assert listed(visible_only=True) == {shown, teaser, hidden}
        assert listed(account_id=acc) == {shown, teaser, hidden}


def test_celebrity_cash_out_minimum(w: World) -> None:
    rid = reward(w, code="cash", kind="cashout", cost=100, min_balance=2500)
    short, enough = account(w, balance=2499), account(w, balance=2500)
    err = refused(w, rid, short)
    assert (err.code, err.status) == ("below_minimum", 422)
    assert balance(w, short).available == 2499
    row = redeem(w, rid, enough, quantity=25)
    assert row.points == 2500 and balance(w, enough).available == 0


def test_egift_pool_exhausted(w: World) -> None:
    rid = reward(w, code="gift", kind="egift")
    with w.db.transaction() as s:
        assert rewards.add_codes(s, w.tenant_id, rid, ["AAA-1", "AAA-2", "AAA-1"]) == 2
        assert rewards.add_codes(s, w.tenant_id, rid, ["AAA-2"]) == 0
    acc = account(w, balance=1000)
    rows = [redeem(w, rid, acc) for _ in range(3)]
    codes = {act(w, rewards.fulfil, r.id).code for r in rows[:2]}
    assert codes == {"AAA-1", "AAA-2"}
    with pytest.raises(AllegianceError) as err:
        act(w, rewards.fulfil, rows[2].id)
    assert (err.value.code, err.value.status) == ("codes_exhausted", 409)
    # a cancelled, unfulfilled redemption is refunded
    act(w, rewards.cancel, rows[2].id)
    assert balance(w, acc).available == 800


def test_coupon_single_use_and_expiry(w: World) -> None:
    rid = reward(w, code="ten-off", kind="coupon", code_valid_days=30)
    acc = account(w, balance=1000)
    row = act(w, rewards.fulfil, redeem(w, rid, acc).id)
    assert row.code and row.code_expires_at == NOW + timedelta(days=30)
    with w.db.read() as s:
        assert rewards.validate_coupon(s, w.tenant_id, row.code.lower()).id == row.id
    with w.db.transaction() as s:
        rewards.use_coupon(s, w.tenant_id, row.code, actor="pos")
    with w.db.transaction() as s, pytest.raises(AllegianceError) as err:
        rewards.use_coupon(s, w.tenant_id, row.code, actor="pos")
    assert err.value.code == "coupon_used"
    with w.db.read() as s, pytest.raises(AllegianceError) as err:
        rewards.validate_coupon(s, w.tenant_id, "NOTACODE")
    assert err.value.code == "coupon_not_found"
    other = act(w, rewards.fulfil, redeem(w, rid, acc).id)
    with clock.frozen(NOW + timedelta(days=31)), w.db.read() as s, \
            pytest.raises(AllegianceError) as err:
        rewards.validate_coupon(s, w.tenant_id, other.code or "")
    assert err.value.code == "coupon_expired"


def test_donation_needs_a_listed_cause(w: World) -> None:
    rid = reward(w, code="give", kind="donation", causes=["Red Cross", "WWF"])
    acc = account(w, balance=500)
    assert refused(w, rid, acc, cause="Other").field == "cause"
    assert redeem(w, rid, acc, cause="WWF").cause == "WWF"
    with pytest.raises(AllegianceError) as err:
        reward(w, code="give2", kind="donation")
    assert err.value.field == "causes"
