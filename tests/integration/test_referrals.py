"""Referrals and affiliates: codes and applications, bounties and two-sided rewards pending
until the lock date, commission by category inside the window, exact reversal on refund,
void on refund inside the hold, self-referral and duplicate detection, statements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from allegiance import audit, ledger, referrals
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.money_support import NOW, Money
from tests.support.invariants import assert_ledger_invariants

COURSERA = {"course": "45", "specialization": "20", "*": "10"}


@pytest.fixture
def m(db: Database) -> Iterator[Money]:
    with clock.frozen(NOW):
        yield Money(db)
    assert_ledger_invariants(db)


def plan(m: Money, **kw: Any) -> str:
    kw.setdefault("commission_unit_id", m.usd)
    kw.setdefault("commission_rates", COURSERA)
    with m.db.transaction() as s:
        return referrals.create_plan(s, m.tenant_id, m.program_id, code=kw.pop("code", "aff"),
                                     name="Affiliates", **kw).id


def code(m: Money, plan_id: str, account_id: str) -> str:
    with m.db.transaction() as s:
        return referrals.issue_code(s, m.tenant_id, plan_id, account_id, actor="t").code


def signup(m: Money, value: str, account_id: str, **kw: Any) -> referrals.Referral:
    with m.db.transaction() as s:
        row = referrals.signup(s, m.tenant_id, m.program_id, code=value, account_id=account_id,
                               actor="t", **kw)
        s.expunge(row)
        return row


def attribute(m: Money, event_id: str) -> int:
    with m.db.transaction() as s:
        return len(referrals.attribute(s, m.tenant_id, event_id))


def reconcile(m: Money, event_id: str) -> int:
    with m.db.transaction() as s:
        return referrals.reconcile(s, m.tenant_id, event_id)


def release(when: Any, m: Money) -> None:
    with clock.frozen(when), m.db.transaction() as s:
        ledger.release_due_holds(s)


def test_commission_by_category_pending_then_payable(m: Money) -> None:
    pid = plan(m, lock_days=30)
    affiliate, learner = m.account(), m.account()
    ref = signup(m, code(m, pid, affiliate), learner)
    assert ref.status == "qualified"
    out = m.event(external_id="o1", account_id=learner, occurred_at=NOW + timedelta(days=2),
                  lines=[{"sku": "ml", "category": "course", "amount": 4_900},
                         {"sku": "ds", "category": "specialization", "amount": 10_000},
                         {"sku": "pro", "category": "other", "amount": 1_000}])
    with clock.frozen(NOW + timedelta(days=2)):
        assert attribute(m, out.event.id) == 3
        assert attribute(m, out.event.id) == 0  # idempotent
    bal = m.money(affiliate)
    assert (bal.posted, bal.pending_in) == (0, 2_205 + 2_000 + 100)
    release(NOW + timedelta(days=33), m)
    assert m.money(affiliate).posted == 4_305
    with m.db.read() as s:
        states = {r.kind: st for r, st in referrals.statement(s, m.tenant_id, pid, affiliate)}
    assert states == {"commission": "payable"}


def test_outside_the_window_earns_nothing(m: Money) -> None:
    pid = plan(m, window_days=30)
    affiliate, learner = m.account(), m.account()
    signup(m, code(m, pid, affiliate), learner)
    late = NOW + timedelta(days=31)
    out = m.event(external_id="late", account_id=learner, occurred_at=late,
                  lines=[{"category": "course", "amount": 10_000}])
    with clock.frozen(late):
        assert attribute(m, out.event.id) == 0


def test_bounty_and_two_sided_reward(m: Money) -> None:
    pid = plan(m, commission_rates={}, commission_unit_id=None, bounty_unit_id=m.unit_id,
               bounty=500, referee_reward=200, lock_days=0)
    old, new = m.account(), m.account()
    signup(m, code(m, pid, old), new)
    assert m.wallet(old).posted == 500 and m.wallet(new).posted == 200


def test_refund_after_lock_reverses_exactly_the_refunded_lines(m: Money) -> None:
    pid = plan(m, lock_days=0)
    affiliate, learner = m.account(), m.account()
    signup(m, code(m, pid, affiliate), learner)
    out = m.event(external_id="o1", account_id=learner,
                  lines=[{"sku": "a", "category": "course", "amount": 10_000},
                         {"sku": "b", "category": "other", "amount": 10_000}])
    attribute(m, out.event.id)
    assert m.money(affiliate).posted == 5_500
    m.ret(external_id="r1", original_event_id=out.event.id,
          lines=[{"line_no": 1, "quantity": 1}])
    assert reconcile(m, out.event.id) == 4_500
    assert reconcile(m, out.event.id) == 0
    assert m.money(affiliate).posted == 1_000


def test_refund_inside_the_hold_voids_the_referral(m: Money) -> None:
    pid = plan(m, lock_days=30, bounty_unit_id=m.usd, bounty=1_000)
    affiliate, learner = m.account(), m.account()
    ref = signup(m, code(m, pid, affiliate), learner)
    out = m.event(external_id="o1", account_id=learner,
                  lines=[{"category": "course", "amount": 10_000}])
    attribute(m, out.event.id)
    assert m.money(affiliate).pending_in == 5_500
    m.ret(external_id="r1", original_event_id=out.event.id)
    reconcile(m, out.event.id)
    with m.db.read() as s:
        assert referrals.get_referral(s, m.tenant_id, ref.id).status == "void"
    bal = m.money(affiliate)
    assert (bal.posted, bal.pending_in) == (0, 0)
    release(NOW + timedelta(days=40), m)
    assert m.money(affiliate).posted == 0


def test_partial_refund_inside_the_hold_shrinks_the_commission(m: Money) -> None:
    pid = plan(m, lock_days=30)
    affiliate, learner = m.account(), m.account()
    signup(m, code(m, pid, affiliate), learner)
    out = m.event(external_id="o1", account_id=learner,
                  lines=[{"category": "course", "quantity": 4, "unit_price": 2_500}])
    attribute(m, out.event.id)
    m.ret(external_id="r1", original_event_id=out.event.id,
          lines=[{"line_no": 1, "quantity": 1}])
    reconcile(m, out.event.id)
    assert m.money(affiliate).pending_in == 3_375  # 45% of 7,500
    release(NOW + timedelta(days=31), m)
    assert m.money(affiliate).posted == 3_375


@pytest.mark.parametrize("variant", ["same-account", "email", "tax", "device", "child"])
def test_self_referral_variants_earn_nothing(m: Money, variant: str) -> None:
    pid = plan(m, bounty_unit_id=m.usd, bounty=1_000, lock_days=0)
    me = m.account(email="Jo.Doe@example.com", tax_id="DE 123.456",
                   attributes={"device_hashes": ["dev-1"]})
    kw: dict[str, Any] = {}
    if variant == "same-account":
        other = me
    elif variant == "child":
        other = m.account(parent_id=me)
    else:
        other = m.account()
        kw = {"email": {"email": "jodoe+promo@EXAMPLE.com"}, "tax": {"tax_id": "de123456"},
              "device": {"device_hash": "dev-1"}}[variant]
    ref = signup(m, code(m, pid, me), other, **kw)
    assert ref.status == "rejected" and ref.reason
    assert m.money(me).posted == 0


def test_duplicates_and_applications(m: Money) -> None:
    pid = plan(m, requires_application=True)
    affiliate = m.account()
    with m.db.transaction() as s:
        row = referrals.issue_code(s, m.tenant_id, pid, affiliate,
                                   application={"site": "blog"}, actor="t")
        code_id, value = row.id, row.code
        assert row.status == "applied"
    with pytest.raises(AllegianceError) as err:
        signup(m, value, m.account())
    assert err.value.code == "referral_code_not_active"
    with m.db.transaction() as s:
        referrals.decide_application(s, m.tenant_id, code_id, approve=True, actor="ops")
    first = m.account()
    assert signup(m, value, first, email="a.b@x.io").status == "qualified"
    with pytest.raises(AllegianceError) as err:
        signup(m, value, first)
    assert err.value.code == "already_referred"
    dup = signup(m, value.lower(), m.account(), email="ab+2@x.io")
    assert dup.status == "rejected" and "same e-mail" in (dup.reason or "")


def test_a_supplied_email_does_not_hide_the_accounts_own(m: Money) -> None:
    """Self-referral: the new member's account has the referrer's e-mail; the caller supplies
    another one. Both are the member's identities, so it is still the referrer."""
    pid = plan(m, bounty_unit_id=m.usd, bounty=1_000, lock_days=0)
    me = m.account(email="Jo.Doe@example.com")
    alias = m.account(email="jodoe+2@example.com")
    ref = signup(m, code(m, pid, me), alias, email="other@example.org")
    assert ref.status == "rejected" and "same e-mail" in (ref.reason or "")
    assert m.money(me).posted == 0


def test_a_supplied_email_does_not_hide_a_duplicate(m: Money) -> None:
    pid = plan(m)
    value = code(m, pid, m.account())
    assert signup(m, value, m.account(email="first@x.io")).status == "qualified"
    dup = signup(m, value, m.account(email="f.i.r.s.t@x.io"), email="fresh@x.io")
    assert dup.status == "rejected" and "same e-mail" in (dup.reason or "")


@pytest.mark.parametrize("variant", ["tax", "device"])
def test_duplicate_across_referred_members(m: Money, variant: str) -> None:
    """Two different new members, neither the referrer: the second shares the first one's
    company tax id (or device) and is a duplicate; a third with its own earns (control)."""
    pid = plan(m, bounty_unit_id=m.usd, bounty=1_000, lock_days=0)
    referrer = m.account()
    value = code(m, pid, referrer)
    first: dict[str, Any] = {"tax": {"tax_id": "GB 123-456"},
                             "device": {"device_hash": "dev-9"}}[variant]
    again: dict[str, Any] = {"tax": {"tax_id": "gb123456"},
                             "device": {"device_hash": "dev-9"}}[variant]
    assert signup(m, value, m.account(), **first).status == "qualified"
    dup = signup(m, value, m.account(), **again)
    label = {"tax": "same tax id", "device": "same device"}[variant]
    assert dup.status == "rejected" and label in (dup.reason or "")
    other: dict[str, Any] = {"tax": {"tax_id": "GB 999"},
                             "device": {"device_hash": "dev-10"}}[variant]
    assert signup(m, value, m.account(), **other).status == "qualified"
    assert m.money(referrer).posted == 2_000


def test_duplicate_by_the_accounts_own_tax_id_and_device(m: Money) -> None:
    """Identities on the accounts (not supplied by the caller) count too."""
    pid = plan(m)
    value = code(m, pid, m.account())
    assert signup(m, value, m.account(tax_id="IT 0001",
                                      attributes={"device_hash": "dv"})).status == "qualified"
    by_tax = signup(m, value, m.account(tax_id="it-0001"), tax_id="IT 7777")
    assert by_tax.status == "rejected" and "same tax id" in (by_tax.reason or "")
    by_device = signup(m, value, m.account(attributes={"device_hashes": ["dv"]}))
    assert by_device.status == "rejected" and "same device" in (by_device.reason or "")


def test_affiliate_application_rejected_with_reason(m: Money) -> None:
    pid = plan(m, requires_application=True)
    affiliate = m.account()
    with m.db.transaction() as s:
        row = referrals.issue_code(s, m.tenant_id, pid, affiliate,
                                   application={"site": "coupons"}, actor="t")
        code_id, value = row.id, row.code
    with m.db.transaction() as s:
        row = referrals.decide_application(s, m.tenant_id, code_id, approve=False,
                                           actor="ops", reason="coupon sites are not accepted")
        assert (row.status, row.reason, row.decided_by) == (
            "rejected", "coupon sites are not accepted", "ops")
    with pytest.raises(AllegianceError) as err:
        signup(m, value, m.account())
    assert err.value.code == "referral_code_not_active"
    with pytest.raises(AllegianceError) as err, m.db.transaction() as s:
        referrals.decide_application(s, m.tenant_id, code_id, approve=True, actor="ops")
    assert err.value.code == "referral_code_not_active"
    with m.db.read() as s:
        rows = s.scalars(select(audit.AuditRecord).where(
            audit.AuditRecord.tenant_id == m.tenant_id,
            audit.AuditRecord.object_id == code_id).order_by(audit.AuditRecord.seq)).all()
        assert [r.action for r in rows][-1] == "referral_code.rejected"
        assert rows[-1].after["reason"] == "coupon sites are not accepted"


def test_every_identity_of_an_earlier_sign_up_is_remembered(m: Money) -> None:
    """The first sign-up supplied an e-mail other than its account's: a later member with
    either one (the account's, or the supplied one) is a duplicate."""
    pid = plan(m)
    value = code(m, pid, m.account())
    assert signup(m, value, m.account(email="own@x.io"),
                  email="given@x.io").status == "qualified"
    by_own = signup(m, value, m.account(email="o.w.n+1@x.io"))
    assert by_own.status == "rejected" and "same e-mail" in (by_own.reason or "")
    by_given = signup(m, value, m.account(), email="given@x.io")
    assert by_given.status == "rejected" and "same e-mail" in (by_given.reason or "")
