"""Co-marketing funds: budget, allocations that never exceed it, pre-approval, claims with
the BWT formula, reimbursement into the money wallet, rejection, accrual, expiry and the
partner's view."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from allegiance import ledger, mdf
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.money_support import NOW, Money
from tests.support.invariants import assert_ledger_invariants

BWT = {"percent": "50", "split_by_brands": True}


@pytest.fixture
def m(db: Database) -> Iterator[Money]:
    with clock.frozen(NOW):
        yield Money(db)
    assert_ledger_invariants(db)


def fund(m: Money, budget: int = 1_000_000, **kw: Any) -> str:
    kw.setdefault("formula", BWT)
    with m.db.transaction() as s:
        return mdf.create_fund(
            s, m.tenant_id, m.program_id, code=kw.pop("code", "2026-h1"), name="H1 2026",
            unit_id=m.usd, budget=budget, period_start=NOW - timedelta(days=14),
            period_end=NOW + timedelta(days=150), claim_deadline=NOW + timedelta(days=180),
            actor="ops", **kw).id


def call(m: Money, fn: Any, *args: Any, **kw: Any) -> Any:
    kw.setdefault("actor", "partner")
    with m.db.transaction() as s:
        row = fn(s, m.tenant_id, *args, **kw)
        if row is not None and hasattr(row, "_sa_instance_state"):
            s.expunge(row)
        return row


def view(m: Money, fund_id: str, account_id: str) -> mdf.PartnerView:
    with m.db.read() as s:
        return mdf.partner_view(s, m.tenant_id, fund_id, account_id)


def test_formula_bwt() -> None:
    f = mdf.Formula.parse(BWT)
    assert f.reimbursement(100_000) == 50_000
    assert f.reimbursement(100_000, other_brands=1) == 25_000
    assert f.reimbursement(100_000, other_brands=2) == 16_666
    assert mdf.Formula.parse({"percent": "50", "max": 30_000}).reimbursement(100_000) == 30_000


def test_allocations_never_exceed_the_fund(m: Money) -> None:
    fid = fund(m, budget=100_000)
    a, b = m.account(), m.account()
    call(m, mdf.allocate, fid, a, 60_000, actor="ops")
    with pytest.raises(AllegianceError) as err:
        call(m, mdf.allocate, fid, b, 50_000, actor="ops")
    assert err.value.code == "fund_exhausted"
    call(m, mdf.allocate, fid, b, 40_000, actor="ops")
    assert view(m, fid, a).allocated == 60_000 and view(m, fid, b).remaining == 40_000


def test_preapproval_claim_and_payment(m: Money) -> None:
    fid = fund(m)
    dealer = m.account()
    call(m, mdf.allocate, fid, dealer, 100_000, actor="ops")
    req = call(m, mdf.request, fid, account_id=dealer, activity="billboard A9",
               media="outdoor", estimated_cost=120_000)
    assert req.status == "requested"
    pre = call(m, mdf.preapprove, req.id, actor="ops")
    assert pre.preapproved_amount == 60_000  # 50% of the estimate, our brand only
    v = view(m, fid, dealer)
    assert (v.committed, v.remaining) == (60_000, 40_000)
    claimed = call(m, mdf.submit_claim, fid, account_id=dealer, claim_id=req.id,
                   actual_cost=100_000, other_brands=1, proof_ref="s3://photo.jpg",
                   invoice_ref="F-77")
    assert claimed.amount == 25_000 and claimed.status == "claimed"
    paid = call(m, mdf.approve_claim, req.id, actor="ops")
    assert paid.status == "paid"
    assert m.money(dealer).posted == 25_000
    v = view(m, fid, dealer)
    assert (v.allocated, v.committed, v.paid, v.remaining) == (100_000, 0, 25_000, 75_000)


def test_direct_claim_beyond_allocation_is_refused(m: Money) -> None:
    fid = fund(m)
    dealer = m.account()
    call(m, mdf.allocate, fid, dealer, 10_000, actor="ops")
    with pytest.raises(AllegianceError) as err:
        call(m, mdf.submit_claim, fid, account_id=dealer, actual_cost=100_000,
             proof_ref="p", invoice_ref="i", activity="press ad")
    assert err.value.code == "fund_exhausted"
    ok = call(m, mdf.submit_claim, fid, account_id=dealer, actual_cost=20_000,
              proof_ref="p", invoice_ref="i", activity="press ad")
    assert view(m, fid, dealer).claimed == 10_000
    rejected = call(m, mdf.reject_claim, ok.id, actor="ops", reason="logo missing")
    assert rejected.status == "rejected"
    assert view(m, fid, dealer).remaining == 10_000
    assert m.money(dealer).posted == 0 and m.money(dealer).pending_in == 0


def test_accrual_from_purchases(m: Money) -> None:
    fid = fund(m, accrual_percent="2")
    dealer = m.account()
    m.event(external_id="p1", account_id=dealer, lines=[{"sku": "X", "amount": 500_000}])
    assert call(m, mdf.accrue, fid, actor="job") == 10_000
    assert call(m, mdf.accrue, fid, actor="job") == 0  # idempotent
    m.event(external_id="p2", account_id=dealer, lines=[{"sku": "X", "amount": 100_000}])
    assert call(m, mdf.accrue, fid, actor="job") == 2_000
    assert view(m, fid, dealer).allocated == 12_000


def test_expiry_releases_and_sweeps(m: Money) -> None:
    fid = fund(m, budget=100_000)
    dealer = m.account()
    call(m, mdf.allocate, fid, dealer, 50_000, actor="ops")
    req = call(m, mdf.request, fid, account_id=dealer, activity="fair", estimated_cost=20_000)
    call(m, mdf.preapprove, req.id, actor="ops")
    with clock.frozen(NOW + timedelta(days=181)):
        with pytest.raises(AllegianceError) as err:
            call(m, mdf.request, fid, account_id=dealer, activity="late", estimated_cost=1)
        assert err.value.code == "fund_closed"
        with m.db.transaction() as s:
            assert mdf.expire_funds(s) == 1
        with m.db.transaction() as s:
            assert mdf.expire_funds(s) == 0
    with m.db.read() as s:
        assert mdf.get_claim(s, m.tenant_id, req.id).status == "expired"
    v = view(m, fid, dealer)
    assert (v.committed, v.expired, v.remaining) == (0, 50_000, 0)
    with m.db.read() as s:
        expired = ledger.program_account(s, m.tenant_id, m.program_id, m.usd, "mdf_expired",
                                         normal="credit")
        assert ledger.balance_of(expired).posted == 100_000
