"""Volume rebates (retroactive brackets, pending accrual, true-up, claw-back after a return),
cumulative discounts with next-order coupons, and payouts of withdrawable money."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allegiance import cashback, ledger, payouts
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.money_support import NOW, Money
from tests.support.invariants import assert_ledger_invariants

QUARTERLY = [{"up_to": 500_000, "percent": "1"}, {"up_to": 750_000, "percent": "1.2"},
             {"percent": "1.5"}]


@pytest.fixture
def m(db: Database) -> Iterator[Money]:
    with clock.frozen(NOW):
        yield Money(db)
    assert_ledger_invariants(db)


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def schedule(m: Money) -> str:
    with m.db.transaction() as s:
        return cashback.create_schedule(s, m.tenant_id, m.program_id, code="q-rebate",
                                        name="Quarterly rebate", unit_id=m.usd,
                                        period="quarter", brackets=QUARTERLY, actor="ops").id


def run(m: Money, sid: str, when: datetime) -> dict[str, int]:
    with clock.frozen(when), m.db.transaction() as s:
        return cashback.run_schedule(s, m.tenant_id, sid)


def buy(m: Money, account_id: str, key: str, amount: int, when: datetime) -> str:
    with clock.frozen(when):
        return m.event(external_id=key, account_id=account_id, occurred_at=when,
                       lines=[{"sku": key, "amount": amount}]).event.id


def test_brackets_apply_to_the_whole_volume() -> None:
    from allegiance.cashback.domain import parse_rebate_brackets, rebate

    brackets = parse_rebate_brackets(QUARTERLY)
    assert rebate(brackets, 400_000) == 4_000
    assert rebate(brackets, 500_000) == 5_000
    assert rebate(brackets, 600_000) == 7_200  # 1.2% of everything, not of the excess
    assert rebate(brackets, 800_000) == 12_000


def test_quarterly_rebate_accrues_trues_up_and_claws_back(m: Money) -> None:
    sid = schedule(m)
    dealer = m.account()
    buy(m, dealer, "jan", 400_000, at(1, 15))
    assert run(m, sid, at(1, 16))["accrued"] == 1
    assert (m.money(dealer).posted, m.money(dealer).pending_in) == (0, 4_000)
    big = buy(m, dealer, "feb", 300_000, at(2, 10))
    run(m, sid, at(2, 11))
    assert m.money(dealer).pending_in == 8_400  # 1.2% of 700,000: the whole quarter
    assert run(m, sid, at(2, 12)) == {"accrued": 0, "settled": 0, "clawed_back": 0}
    report = run(m, sid, at(4, 2))
    assert report["settled"] == 1
    assert (m.money(dealer).posted, m.money(dealer).pending_in) == (8_400, 0)
    # A return after the true-up: volume 450,000 → 1% → 4,500; 3,900 clawed back.
    with clock.frozen(at(4, 5)):
        m.ret(external_id="ret", original_event_id=big,
              lines=[{"line_no": 1, "quantity": 1, "amount": 250_000}], occurred_at=at(4, 5))
    assert run(m, sid, at(4, 6))["clawed_back"] == 1
    assert run(m, sid, at(4, 7))["clawed_back"] == 0
    assert m.money(dealer).posted == 4_500
    with m.db.read() as s:
        rows = cashback.accruals(s, m.tenant_id, sid, account_id=dealer)
        assert [(r.status, r.volume, r.amount, r.clawed_back) for r in rows] == [
            ("settled", 450_000, 8_400, 3_900)]


def test_settles_a_period_that_was_never_accrued(m: Money) -> None:
    sid = schedule(m)
    dealer = m.account()
    buy(m, dealer, "jan", 800_000, at(1, 15))
    assert run(m, sid, at(4, 1))["settled"] == 1
    assert m.money(dealer).posted == 12_000


def test_clawback_after_the_money_was_spent_leaves_a_debt(m: Money) -> None:
    sid = schedule(m)
    dealer = m.account()
    order = buy(m, dealer, "jan", 600_000, at(1, 15))
    run(m, sid, at(4, 1))
    with m.db.transaction() as s:
        w = ledger.wallet(s, m.tenant_id, m.program_id, m.usd, "account", dealer)
        spent = ledger.program_account(s, m.tenant_id, m.program_id, m.usd, "redeemed",
                                       normal="credit")
        ledger.post_entry(s, m.tenant_id, ledger.EntryRequest(
            program_id=m.program_id, kind="redeem",
            lines=(ledger.Line(w.id, m.usd, ledger.Side.DEBIT, 7_000),
                   ledger.Line(spent.id, m.usd, ledger.Side.CREDIT, 7_000))))
    with clock.frozen(at(4, 3)):
        m.ret(external_id="ret", original_event_id=order, occurred_at=at(4, 3))
    run(m, sid, at(4, 4))
    assert m.money(dealer).posted == 0
    with m.db.read() as s:
        debt = ledger.receivable(s, m.tenant_id, m.program_id, m.usd, "account", dealer)
        assert debt.debits_posted - debt.credits_posted == 7_000


def discount_schedule(m: Money, **kw: Any) -> str:
    with m.db.transaction() as s:
        return cashback.create_discount_schedule(
            s, m.tenant_id, m.program_id, code="volume", name="Volume discount",
            period="lifetime", actor="ops",
            brackets=[{"from": 0, "percent": "0"}, {"from": 100_000, "percent": "3"},
                      {"from": 500_000, "percent": "5"}], **kw).id


def test_cumulative_discount_and_next_order_coupon(m: Money) -> None:
    discount_schedule(m, next_order_percent="5", next_order_min_amount=10_000,
                      next_order_valid_days=30)
    buyer = m.account()
    with m.db.read() as s:
        assert cashback.quote(s, m.tenant_id, m.program_id, account_id=buyer,
                              amount=20_000).discount == 0
    buy(m, buyer, "o0", 150_000, NOW)
    with m.db.read() as s:
        q = cashback.quote(s, m.tenant_id, m.program_id, account_id=buyer, amount=20_000)
    assert (q.percent, q.discount, q.payable) == ("3", 600, 19_400)
    with m.db.transaction() as s:
        _, coupon = cashback.confirm(s, m.tenant_id, m.program_id, account_id=buyer,
                                     order_id="o1", amount=20_000, actor="shop")
        assert coupon is not None
        code = coupon.code
    with m.db.transaction() as s:  # the same order again: the same coupon
        _, again = cashback.confirm(s, m.tenant_id, m.program_id, account_id=buyer,
                                    order_id="o1", amount=20_000, actor="shop")
        assert again is not None and again.code == code
    with m.db.read() as s:
        q = cashback.quote(s, m.tenant_id, m.program_id, account_id=buyer, amount=20_000,
                           coupon_code=code.lower())
    assert (q.discount, q.coupon_discount, q.payable) == (600, 970, 18_430)
    with m.db.transaction() as s:
        cashback.confirm(s, m.tenant_id, m.program_id, account_id=buyer, order_id="o2",
                         amount=5_000, coupon_code=code, actor="shop")
    with pytest.raises(AllegianceError) as err, m.db.read() as s:
        cashback.quote(s, m.tenant_id, m.program_id, account_id=buyer, amount=1,
                       coupon_code=code)
    assert err.value.code == "next_order_coupon_unusable"


def test_next_order_coupon_expires(m: Money) -> None:
    discount_schedule(m, next_order_percent="5", next_order_valid_days=30)
    buyer = m.account()
    with m.db.transaction() as s:
        _, coupon = cashback.confirm(s, m.tenant_id, m.program_id, account_id=buyer,
                                     order_id="o1", amount=1_000, actor="shop")
        assert coupon is not None
        code = coupon.code
    with clock.frozen(NOW + timedelta(days=31)), m.db.read() as s, \
            pytest.raises(AllegianceError) as err:
        cashback.quote(s, m.tenant_id, m.program_id, account_id=buyer, amount=1_000,
                       coupon_code=code)
    assert err.value.code == "next_order_coupon_unusable"


def test_payouts_minimum_failure_and_paid(m: Money) -> None:
    rich, poor = m.account(name="Rich"), m.account(name="=Poor")
    m.credit_money(rich, 3_000)
    m.credit_money(poor, 1_000)
    with pytest.raises(AllegianceError) as err, m.db.transaction() as s:
        payouts.create_batch(s, m.tenant_id, m.program_id, m.usd, label="2026-01", actor="ops")
    assert err.value.code == "not_withdrawable"  # store credit by default
    with m.db.transaction() as s:
        payouts.set_policy(s, m.tenant_id, m.usd, withdrawable=True, minimum=2_500, actor="ops")
        batch = payouts.create_batch(s, m.tenant_id, m.program_id, m.usd, label="2026-01",
                                     actor="ops")
        batch_id, total = batch.id, batch.total
        [item] = payouts.items(s, m.tenant_id, batch_id)
        item_id = item.id
    assert total == 3_000
    assert m.money(rich).available == 0
    with m.db.read() as s:
        text = payouts.to_csv(payouts.rows(s, m.tenant_id, batch_id))
    assert text.splitlines()[1].split(",")[6:9] == ["3000", "30.00", "pending"]
    with m.db.transaction() as s:
        payouts.mark_failed(s, m.tenant_id, item_id, reason="IBAN closed", actor="finance")
    assert m.money(rich).available == 3_000
    with m.db.transaction() as s:
        batch = payouts.create_batch(s, m.tenant_id, m.program_id, m.usd, label="2026-01b",
                                     actor="ops")
        [item] = payouts.items(s, m.tenant_id, batch.id)
        payouts.mark_paid(s, m.tenant_id, item.id, reference="SEPA-1", actor="finance")
        with pytest.raises(AllegianceError):
            payouts.mark_failed(s, m.tenant_id, item.id, reason="late", actor="finance")
        assert payouts.get_batch(s, m.tenant_id, batch.id).status == "closed"
        paid_to = ledger.program_account(s, m.tenant_id, m.program_id, m.usd, "payouts",
                                         normal="credit")
        assert ledger.balance_of(paid_to).posted == 3_000
    assert m.money(rich).posted == 0 and m.money(poor).posted == 1_000
