"""The finance statement (SQLite and PostgreSQL): a referral commission, a volume rebate and a
co-marketing (MDF) reimbursement appear under their own categories, with their money value,
and reconcile to the cent with the postings to the members' wallets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from allegiance import cashback, ledger, mdf, payouts, referrals
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.money_support import NOW, Money
from tests.support.invariants import assert_ledger_invariants


@pytest.fixture
def m(db: Database) -> Iterator[Money]:
    with clock.frozen(NOW):
        yield Money(db)
    assert_ledger_invariants(db)


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def _commission(m: Money, affiliate: str, learner: str) -> None:
    with m.db.transaction() as s:
        plan = referrals.create_plan(s, m.tenant_id, m.program_id, code="aff", name="Aff",
                                     commission_unit_id=m.usd,
                                     commission_rates={"course": "45", "*": "10"},
                                     lock_days=0)
        code = referrals.issue_code(s, m.tenant_id, plan.id, affiliate, actor="t").code
        referrals.signup(s, m.tenant_id, m.program_id, code=code, account_id=learner,
                         actor="t")
    when = NOW + timedelta(days=1)
    with clock.frozen(when):
        out = m.event(external_id="o1", account_id=learner, occurred_at=when,
                      lines=[{"sku": "ml", "category": "course", "amount": 4_999},
                             {"sku": "pro", "category": "other", "amount": 1_005}])
        with m.db.transaction() as s:
            referrals.attribute(s, m.tenant_id, out.event.id)
    with clock.frozen(NOW + timedelta(days=3)), m.db.transaction() as s:
        ledger.release_due_holds(s)


def _rebate(m: Money, dealer: str) -> None:
    with m.db.transaction() as s:
        sid = cashback.create_schedule(
            s, m.tenant_id, m.program_id, code="q", name="Quarterly", unit_id=m.usd,
            period="quarter", brackets=[{"up_to": 500_000, "percent": "1"}, {"percent": "1.5"}],
            actor="ops").id
    with clock.frozen(at(2, 10)):
        m.event(external_id="big", account_id=dealer, occurred_at=at(2, 10),
                lines=[{"sku": "x", "amount": 800_033}])
    with clock.frozen(at(4, 2)), m.db.transaction() as s:
        assert cashback.run_schedule(s, m.tenant_id, sid)["settled"] == 2  # dealer, learner


def _reimbursement(m: Money, dealer: str) -> None:
    with m.db.transaction() as s:
        fid = mdf.create_fund(s, m.tenant_id, m.program_id, code="h1", name="H1",
                              unit_id=m.usd, budget=1_000_000,
                              period_start=NOW - timedelta(days=14),
                              period_end=NOW + timedelta(days=150),
                              claim_deadline=NOW + timedelta(days=180),
                              formula={"percent": "50"}, actor="ops").id
        mdf.allocate(s, m.tenant_id, fid, dealer, 100_000, actor="ops")
    with m.db.transaction() as s:
        claim = mdf.submit_claim(s, m.tenant_id, fid, account_id=dealer, actual_cost=30_001,
                                 proof_ref="p", invoice_ref="i", activity="flyer",
                                 actor="partner").id
    with m.db.transaction() as s:
        mdf.approve_claim(s, m.tenant_id, claim, actor="ops")


def _wallet_postings_by_kind(m: Money) -> dict[str, int]:
    """Net credits to member money wallets per entry kind, read from the journal directly."""
    entry, posting, account = ledger.JournalEntry, ledger.Posting, ledger.LedgerAccount
    out: dict[str, int] = defaultdict(int)
    with m.db.read() as s:
        for kind, side, amount in s.execute(
                select(entry.kind, posting.side, posting.amount)
                .join(posting, (posting.tenant_id == entry.tenant_id)
                      & (posting.entry_id == entry.id))
                .join(account, (account.tenant_id == posting.tenant_id)
                      & (account.id == posting.account_id))
                .where(entry.tenant_id == m.tenant_id, posting.unit_id == m.usd,
                       account.purpose == "wallet",
                       account.owner_type.in_(("account", "user")))):
            out[kind] += amount if side == "C" else -amount
    return dict(out)


def test_commission_rebate_and_reimbursement_reconcile_to_the_cent(m: Money) -> None:
    affiliate, learner, dealer = m.account(), m.account(), m.account()
    _commission(m, affiliate, learner)
    _rebate(m, dealer)
    _reimbursement(m, dealer)
    with m.db.read() as s:
        lines = payouts.statements.statement(s, m.tenant_id, m.program_id,
                                             start=at(1, 1), end=at(5, 1), unit_id=m.usd)
    totals = payouts.statements.totals(lines)["usd"]
    journal = _wallet_postings_by_kind(m)
    # 45% of 49.99 + 10% of 10.05 (down: 2,249 + 100); 1.5% of 8,000.33 for the dealer and 1%
    # of the learner's 60.04 (12,000 + 60); 50% of 300.01 (15,000) — odd cents on purpose
    assert totals == {"referral_commission": 2_349, "rebate": 12_060,
                      "mdf_reimbursement": 15_000} == journal
    values = payouts.statements.value_totals(lines)["usd"]
    assert values == {k: Decimal(v).scaleb(-2) for k, v in journal.items()}  # to the cent
    assert {line.currency for line in lines} == {"USD"}
    assert all(line.value == Decimal(line.amount).scaleb(-2) for line in lines)
    posted = sum(m.money(a).posted for a in (affiliate, learner, dealer))
    assert sum(totals.values()) == posted
    csv_rows = payouts.statements.to_csv(lines).strip().splitlines()
    assert sum(Decimal(row.rsplit(",", 1)[1]) for row in csv_rows[1:]) == Decimal(posted) / 100
