"""Referral sync is incremental and complete (bounded batches, resumable, idempotent), and
per-click attribution: a purchase goes to the latest click whose window covers it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from allegiance import ledger, referrals
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.referrals import jobs
from tests.integration.money_support import NOW, Money
from tests.support.invariants import assert_ledger_invariants

REFERRALS, PURCHASES, BATCH = 10, 3, 3


@pytest.fixture
def m(db: Database) -> Iterator[Money]:
    with clock.frozen(NOW):
        yield Money(db)
    assert_ledger_invariants(db)


def _plan(m: Money, **kw: Any) -> str:
    with m.db.transaction() as s:
        return referrals.create_plan(
            s, m.tenant_id, m.program_id, code=kw.pop("code", "aff"), name="Affiliates",
            commission_unit_id=m.usd, commission_rates={"*": "10"}, lock_days=0, **kw).id


def _code(m: Money, plan_id: str, account_id: str) -> str:
    with m.db.transaction() as s:
        return referrals.issue_code(s, m.tenant_id, plan_id, account_id, actor="t").code


def _world(m: Money) -> tuple[str, list[str], list[str]]:
    """10 referrals, each with 3 purchases (1,000, 2,000, 3,000 → 600 commission each);
    the first referral's purchases are the oldest, as in a long-running plan."""
    pid = _plan(m)
    affiliates, purchases = [], []
    for i in range(REFERRALS):
        affiliate, friend = m.account(), m.account()
        with m.db.transaction() as s:
            referrals.signup(s, m.tenant_id, m.program_id, code=_code(m, pid, affiliate),
                             account_id=friend, actor="t")
        for j in range(PURCHASES):
            out = m.event(external_id=f"o{i}-{j}", account_id=friend,
                          occurred_at=NOW + timedelta(minutes=i * 10 + j),
                          lines=[{"sku": "x", "amount": 1_000 * (j + 1)}])
            purchases.append(out.event.id)
        affiliates.append(affiliate)
    return pid, affiliates, purchases


def _commissions(m: Money) -> dict[str, int]:
    """event → number of commission rewards on it."""
    rr = referrals.ReferralReward
    with m.db.read() as s:
        return {str(e): int(n) for e, n in s.execute(
            select(rr.event_id, func.count()).where(rr.tenant_id == m.tenant_id,
                                                    rr.kind == "commission")
            .group_by(rr.event_id))}


def _earned(m: Money, account_id: str) -> int:
    """Pending (the purchase is after the frozen clock) and payable."""
    balance = m.money(account_id)
    return balance.posted + balance.pending_in


def _entries(m: Money) -> list[int]:
    """Journal entries and holds written."""
    with m.db.read() as s:
        entries = s.scalar(select(func.count()).select_from(ledger.JournalEntry).where(
            ledger.JournalEntry.tenant_id == m.tenant_id))
        holds = s.scalar(select(func.count()).select_from(ledger.Hold).where(
            ledger.Hold.tenant_id == m.tenant_id))
        return [int(entries or 0), int(holds or 0)]


def test_sync_in_small_batches_reaches_every_referral(m: Money) -> None:
    """The defect: a bounded sync always re-read the same first purchases, so later
    referrals never earned. In batches of 3, every one of the 30 purchases is attributed."""
    pid, affiliates, purchases = _world(m)
    with m.db.transaction() as s:
        assert referrals.sync(s, m.tenant_id, pid, batch=BATCH) == (len(purchases), True)
    assert _commissions(m) == dict.fromkeys(purchases, 1)
    assert [_earned(m, a) for a in affiliates] == [600] * REFERRALS
    # a re-run looks at nothing and adds nothing
    entries = _entries(m)
    with m.db.transaction() as s:
        assert referrals.sync(s, m.tenant_id, pid, batch=BATCH) == (0, True)
    assert _entries(m) == entries
    assert _commissions(m) == dict.fromkeys(purchases, 1)


def test_sync_killed_midway_resumes_and_reconciles_refunds(m: Money) -> None:
    pid, affiliates, purchases = _world(m)
    # a run killed after two committed batches
    with m.db.transaction() as s:
        assert referrals.sync(s, m.tenant_id, pid, batch=BATCH, max_batches=2) == (6, False)
    assert sum(_commissions(m).values()) == 6
    # the job resumes: one committed transaction per batch
    assert jobs.run(m.db, batch=BATCH)["purchases"] == len(purchases) - 6
    assert _commissions(m) == dict.fromkeys(purchases, 1)
    assert [_earned(m, a) for a in affiliates] == [600] * REFERRALS
    # a refund of the last referral's biggest purchase: only it is looked at again, and
    # exactly its commission (300) goes back
    m.ret(external_id="r-last", original_event_id=purchases[-1],
          occurred_at=NOW + timedelta(hours=5))
    with m.db.transaction() as s:
        assert referrals.sync(s, m.tenant_id, pid, batch=BATCH) == (1, True)
    assert _earned(m, affiliates[-1]) == 300
    entries = _entries(m)
    assert jobs.run(m.db, batch=BATCH)["purchases"] == 0
    assert _entries(m) == entries
    assert [_earned(m, a) for a in affiliates[:-1]] == [600] * (REFERRALS - 1)


# --- per-click attribution ---------------------------------------------------------------


def _click(m: Money, pid: str, value: str, at: Any, **kw: Any) -> referrals.Referral:
    with clock.frozen(at), m.db.transaction() as s:
        row = referrals.record_click(s, m.tenant_id, pid, code=value, **kw)
        s.expunge(row)
        return row


def _buy(m: Money, pid: str, account_id: str, ref: str, at: Any, amount: int) -> None:
    m.event(external_id=ref, account_id=account_id, occurred_at=at,
            lines=[{"sku": "x", "amount": amount}])
    with clock.frozen(at), m.db.transaction() as s:
        referrals.sync(s, m.tenant_id, pid)


def test_a_new_click_opens_a_new_window_for_the_latest_clicked_link(m: Money) -> None:
    pid = _plan(m, window_days=1, attribution="click")
    site_a, site_b, shopper = m.account(), m.account(), m.account()
    code_a, code_b = _code(m, pid, site_a), _code(m, pid, site_b)
    _click(m, pid, code_a, NOW, account_id=shopper)
    _buy(m, pid, shopper, "b1", NOW + timedelta(hours=2), 10_000)        # A's window
    assert (m.money(site_a).posted, m.money(site_b).posted) == (1_000, 0)
    _buy(m, pid, shopper, "b2", NOW + timedelta(hours=30), 10_000)       # no window
    assert (m.money(site_a).posted, m.money(site_b).posted) == (1_000, 0)
    _click(m, pid, code_b, NOW + timedelta(hours=40), account_id=shopper)
    _buy(m, pid, shopper, "b3", NOW + timedelta(hours=41), 20_000)       # B's window
    assert (m.money(site_a).posted, m.money(site_b).posted) == (1_000, 2_000)
    # A again: its new click opens a new window and, being the latest, wins over B's
    _click(m, pid, code_a, NOW + timedelta(hours=42), account_id=shopper)
    _buy(m, pid, shopper, "b4", NOW + timedelta(hours=43), 30_000)
    assert (m.money(site_a).posted, m.money(site_b).posted) == (4_000, 2_000)
    with clock.frozen(NOW + timedelta(hours=44)), m.db.transaction() as s:
        assert referrals.sync(s, m.tenant_id, pid) == (0, True)


def test_an_anonymous_visitor_is_matched_later(m: Money) -> None:
    pid = _plan(m, window_days=1, attribution="click")
    site, shopper = m.account(), m.account()
    click = _click(m, pid, _code(m, pid, site), NOW, visitor_id="cookie-1")
    assert (click.referred_account_id, click.status) == (None, "qualified")
    _buy(m, pid, shopper, "b1", NOW + timedelta(hours=1), 10_000)
    assert m.money(site).posted == 0  # not known yet to be the visitor
    with clock.frozen(NOW + timedelta(hours=2)), m.db.transaction() as s:
        assert referrals.match_visitor(s, m.tenant_id, pid, "cookie-1", shopper) == 1
        assert referrals.sync(s, m.tenant_id, pid) == (1, True)
    assert m.money(site).posted == 1_000


def test_a_click_on_ones_own_link_earns_nothing(m: Money) -> None:
    pid = _plan(m, window_days=1, attribution="click")
    site = m.account()
    click = _click(m, pid, _code(m, pid, site), NOW, account_id=site)
    assert click.status == "rejected" and click.reason == "same account"
    _buy(m, pid, site, "b1", NOW + timedelta(hours=1), 10_000)
    assert m.money(site).posted == 0


def test_sign_up_plans_take_no_clicks_and_keep_their_window(m: Money) -> None:
    pid = _plan(m, window_days=30)
    site, learner = m.account(), m.account()
    value = _code(m, pid, site)
    with pytest.raises(AllegianceError) as err:
        _click(m, pid, value, NOW, account_id=learner)
    assert err.value.code == "invalid_referral"
    with m.db.transaction() as s:
        referrals.signup(s, m.tenant_id, m.program_id, code=value, account_id=learner,
                         actor="t")
    _buy(m, pid, learner, "b1", NOW + timedelta(days=29), 10_000)
    _buy(m, pid, learner, "b2", NOW + timedelta(days=31), 10_000)
    assert m.money(site).posted == 1_000
