"""Pure logic of the money features: invoice keys, referral identity keys and rates, rebate
and discount brackets, periods, the co-marketing formula, payout files."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from allegiance.cashback import domain as cashback
from allegiance.claims import domain as claims
from allegiance.mdf import domain as mdf
from allegiance.payouts import domain as payouts
from allegiance.referrals import domain as referrals


@pytest.mark.parametrize("number", ["INV-2026-000457", "inv 2026/457", "Invoice No. 2026-0457",
                                    "#INV2026457", "inv.2026.457", "NR 2026 457"])
def test_invoice_number_variants(number: str) -> None:
    assert claims.invoice_number_key(number) == "2026457"


@pytest.mark.parametrize("number", ["INV-2026-000457", "INV2026000457", "inv2026000457",
                                    "#2026000457", "No. 2026 000457", "INV 002026000457"])
def test_invoice_number_without_separators_shares_a_key(number: str) -> None:
    """One digit run cannot be split back into padded runs: the whole-number key (leading
    zeros of the whole dropped) is the key a separated and an unseparated form share."""
    assert "2026000457" in claims.invoice_number_keys(number)


@pytest.mark.parametrize("seller", ["ACME GmbH & Co. KG", "Acme, L.L.C.", "acme llc", "ACME",
                                    "Acme and Co", "Acme & Co.", "Acme, Inc.", "acme corp."])
def test_seller_variants(seller: str) -> None:
    assert claims.seller_key(seller) == "ACME"


def test_invoice_keys_keep_what_matters() -> None:
    assert set(claims.invoice_number_keys("2026-457")).isdisjoint(
        claims.invoice_number_keys("2026-458"))
    assert set(claims.invoice_number_keys("20264570")).isdisjoint(
        claims.invoice_number_keys("2026457"))  # a trailing zero is a digit, not padding
    assert claims.seller_key("Acme Trading") != claims.seller_key("Acme")
    assert claims.invoice_number_key("A-12") != claims.invoice_number_key("B-12")
    assert claims.invoice_number_key("000") == "0"
    assert claims.invoice_number_key("INV") == "INV"  # a label alone is the number
    assert claims.seller_key("Müller & Co. GmbH") == claims.seller_key("MÜLLER CO")
    assert claims.outside_window(datetime(2026, 1, 1, tzinfo=UTC),
                                 datetime(2026, 3, 3, tzinfo=UTC), 60)


def test_email_and_tax_keys() -> None:
    assert referrals.email_key("Jo.Doe+promo@Example.COM") == "jodoe@example.com"
    assert referrals.email_key("not-an-email") is None
    assert referrals.tax_key(" de-123.456 ") == "DE123456"
    assert referrals.tax_key("--") is None


def test_commission_rates_and_returns() -> None:
    rates = referrals.Rates.parse({"course": "45", "*": "10"})
    assert rates.commission("course", 4_900) == 2_205
    assert rates.commission("book", 1_000) == 100
    assert referrals.Rates.parse({"course": "45"}).commission("book", 1_000) == 0
    with pytest.raises(referrals.PlanError):
        referrals.Rates.parse({"x": "101"})
    assert referrals.commission_after_return(4_500, 10_000, 2_500) == 3_375
    assert referrals.commission_after_return(4_500, 10_000, 10_000) == 0


def test_self_referral_rules() -> None:
    def who(account: str, parent: str | None = None, emails: tuple[str, ...] = (),
            taxes: tuple[str, ...] = (), devices: tuple[str, ...] = ()) -> referrals.Identity:
        return referrals.Identity(account, parent, frozenset(emails), frozenset(taxes),
                                  frozenset(devices))

    me = who("a", emails=("x@y.z",), taxes=("T1",), devices=("d",))
    assert referrals.self_referral(me, who("a")) == "same account"
    assert referrals.self_referral(me, who("b", "a")) == "same company hierarchy"
    assert referrals.self_referral(me, who("b", devices=("d",))) == "same device"
    # every known identity counts: a supplied e-mail beside the account's own
    assert referrals.self_referral(me, who("b", emails=("q@y.z", "x@y.z"))) == "same e-mail"
    assert referrals.self_referral(me, who("b", taxes=("T2", "T1"))) == "same tax id"
    assert referrals.self_referral(me, who("b", emails=("q@y.z",), taxes=("T2",),
                                           devices=("e",))) is None


def test_rebate_brackets() -> None:
    brackets = cashback.parse_rebate_brackets([{"up_to": 100, "percent": "1"},
                                               {"percent": "2"}])
    assert [cashback.rebate(brackets, v) for v in (0, 100, 101, 10_000)] == [0, 1, 2, 200]
    closed = cashback.parse_rebate_brackets([{"up_to": 100, "percent": "10"}])
    assert cashback.rebate(closed, 101) == 0
    for bad in ([], [{"percent": "1"}, {"up_to": 5, "percent": "2"}],
                [{"up_to": 5, "percent": "1"}, {"up_to": 5, "percent": "2"}],
                [{"up_to": 5, "percent": "x"}], [{"up_to": 5, "rate": "1"}]):
        with pytest.raises(cashback.ScheduleError):
            cashback.parse_rebate_brackets(bad)


def test_discount_brackets_and_periods() -> None:
    brackets = cashback.parse_discount_brackets([{"from": 0, "percent": "0"},
                                                 {"from": 1000, "percent": "2.5"}])
    reached = cashback.discount_rate(brackets, 1000)
    assert reached is not None and cashback.percent_text(reached.num, reached.den) == "2.5"
    assert cashback.apply_rate(999, reached.num, reached.den) == 24
    at = datetime(2026, 5, 17, 3, tzinfo=UTC)
    start, end = cashback.period_bounds("quarter", at, "America/New_York")
    assert (start.month, end.month, start.utcoffset() is not None) == (4, 7, True)
    previous = cashback.previous_period("quarter", at, "America/New_York")
    assert (previous[0].month, previous[1]) == (1, start)
    year = cashback.period_bounds("month", datetime(2026, 12, 31, 12, tzinfo=UTC))
    assert year[1] == datetime(2027, 1, 1, tzinfo=year[1].tzinfo)


def test_mdf_formula() -> None:
    bwt = mdf.Formula.parse({"percent": "50", "split_by_brands": True})
    assert [bwt.reimbursement(120_000, n) for n in (0, 1, 2, 3)] == [60_000, 30_000, 20_000,
                                                                     15_000]
    with pytest.raises(mdf.FormulaError):
        mdf.Formula.parse({"percent": "50", "cap": 1})
    view = mdf.PartnerView(allocated=100, committed=30, claimed=10, paid=20, expired=0)
    assert view.remaining == 50


def test_payout_file_and_minimum() -> None:
    assert payouts.payable(2_499, 2_500) == 0 and payouts.payable(2_500, 2_500) == 2_500
    assert payouts.major(123_456, 2) == "1234.56" and payouts.major(500, 0) == "500"
    text = payouts.to_csv([payouts.Row("poi_1", "account", "acc_1", "M-1", "=cmd()", "USD",
                                       1_999, 2, "pending", "")])
    assert text.splitlines()[1] == "poi_1,account,acc_1,M-1,'=cmd(),USD,1999,19.99,pending,"
