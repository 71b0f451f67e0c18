"""A large batch of ``post_entries`` keeps ``ledger_aging`` itself, set-based, with the trigger
paused for its postings (``ledger.aging_writes``): the rows must be exactly the trigger's —
equal to their recomputation from the postings — through plain earnings (the adds-only path),
back-dated credits, debits, a balance below zero paid back, user wallets, a failed batch
rolled back, and ``partial=True``; and the trigger must still track the postings written after
the batch in the same transaction."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from allegiance import analytics, ledger, members
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.ledger.errors import InsufficientFunds
from allegiance.ledger.service import AGING_SET_BASED_FROM
from tests.conftest import build_world
from tests.integration.analytics_support import History, at
from tests.integration.test_ledger_aging import check_aging
from tests.support.invariants import assert_ledger_invariants


def _request(h: History, wallet: str, amount: int, *, earn: bool, days_back: int = 0,
             key: str | None = None) -> ledger.EntryRequest:
    w = h.world
    other = w.issued_id if earn else w.redeemed_id
    side, opposite = ((ledger.Side.CREDIT, ledger.Side.DEBIT) if earn
                      else (ledger.Side.DEBIT, ledger.Side.CREDIT))
    return ledger.EntryRequest(
        program_id=w.program_id, kind="earn" if earn else "redeem", entry_key=key,
        effective_at=clock.now() - timedelta(days=days_back),
        lines=(ledger.Line(wallet, w.unit_id, side, amount),
               ledger.Line(other, w.unit_id, opposite, amount)))


def _history(db: Database, frozen_clock: clock.FrozenClock) -> History:
    frozen_clock.set(at(2026, 3, 1))
    h = History(build_world(db, negative_floor=-500), frozen_clock)
    for name in "ABCDEF":
        h.member(name, tier="gold" if name in "AB" else None)
    return h


def _batch(h: History, rng: random.Random, size: int, *, with_debits: bool) -> list[ledger.EntryRequest]:
    names = sorted(h.wallets)
    out = []
    for _ in range(size):
        wallet = h.wallets[rng.choice(names)]
        if with_debits and rng.random() < 0.3:
            out.append(_request(h, wallet, rng.randint(1, 60), earn=False,
                                days_back=rng.choice([0, 3])))
        else:
            out.append(_request(h, wallet, rng.randint(1, 90), earn=True,
                                days_back=rng.choice([0, 0, 0, 1, 15, 70]) if with_debits else 0))
    return out


def test_batched_aging_equals_the_postings(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = _history(db, frozen_clock)
    w = h.world
    rng = random.Random(30)
    size = AGING_SET_BASED_FROM + 8
    # Plain earnings on the newest day: every wallet takes the adds-only path.
    with db.transaction() as s:
        ledger.post_entries(s, w.tenant_id, _batch(h, rng, size, with_debits=False))
    check_aging(h)
    # Days later: debits, back-dated credits, wallets pushed below zero, mixed in one batch.
    for step in range(6):
        h.move_to(at(2026, 3, 1) + timedelta(days=5 * (step + 1)))
        with db.transaction() as s:
            ledger.post_entries(s, w.tenant_id, _batch(h, rng, size, with_debits=True))
        check_aging(h)
    # A wallet below zero, then paid back by a plain earning batch (not adds-only: a debt).
    with db.transaction() as s:
        ledger.post_entries(s, w.tenant_id, [
            _request(h, h.wallets["F"], 1, earn=True) for _ in range(size)])
        balance = ledger.balance_of(ledger.get_account(s, w.tenant_id, h.wallets["F"])).available
        ledger.post_entry(s, w.tenant_id, _request(h, h.wallets["F"], balance + 300, earn=False))
    check_aging(h)
    with db.transaction() as s:
        ledger.post_entries(s, w.tenant_id, [
            _request(h, h.wallets["F"], 20, earn=True) for _ in range(size)])
    check_aging(h)
    assert w.balance(h.wallets["F"]).available > 0
    with db.read() as s:
        report = analytics.liability(s, w.tenant_id, w.program_id)
    assert report.summary["units"][0]["reconciled"] is True
    assert_ledger_invariants(db)


def test_user_wallets_and_postings_after_the_batch_in_one_transaction(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = _history(db, frozen_clock)
    w = h.world
    with db.transaction() as s:
        user = members.add_user(s, w.tenant_id, h.accounts["A"], name="Ann", role="rep")
    user_wallet = w.wallet(user.id, owner_type="user")
    rng = random.Random(31)
    with db.transaction() as s:
        batch = _batch(h, rng, AGING_SET_BASED_FROM, with_debits=False)
        batch += [_request(h, user_wallet, 5 + i, earn=True) for i in range(10)]
        ledger.post_entries(s, w.tenant_id, batch)
        # The trigger was resumed: these single postings are tracked by it.
        ledger.post_entry(s, w.tenant_id, _request(h, user_wallet, 3, earn=False))
        ledger.post_entry(s, w.tenant_id, _request(h, h.wallets["B"], 4, earn=True,
                                                   days_back=2))
    check_aging(h)
    with db.read() as s:
        stored = ledger.stored_aging(s, w.tenant_id)
    assert any(account == user_wallet for account, _ in stored)
    assert_ledger_invariants(db)


def test_a_failed_batch_leaves_no_aging_and_partial_batches_track_the_good_entries(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = _history(db, frozen_clock)
    w = h.world
    rng = random.Random(32)
    with db.transaction() as s:
        ledger.post_entries(s, w.tenant_id, _batch(h, rng, AGING_SET_BASED_FROM, with_debits=False))
    with db.read() as s:
        before = ledger.stored_aging(s, w.tenant_id)
    # A transaction that fails after the batch: nothing of it stays (nor the pause).
    with pytest.raises(RuntimeError), db.transaction() as s:
        ledger.post_entries(s, w.tenant_id, _batch(h, rng, AGING_SET_BASED_FROM,
                                                   with_debits=True))
        raise RuntimeError("the caller fails after posting")
    with db.read() as s:
        assert ledger.stored_aging(s, w.tenant_id) == before
    # partial=True: the good entries are written (and aged), the bad one is reported.
    bad = _batch(h, rng, AGING_SET_BASED_FROM, with_debits=False)
    bad.append(_request(h, h.wallets["C"], 1_000_000, earn=False))
    with db.transaction() as s:
        results = ledger.post_entries(s, w.tenant_id, bad, partial=True)
    assert isinstance(results[-1], InsufficientFunds)
    assert all(isinstance(r, ledger.EntryResult) for r in results[:-1])
    check_aging(h)
    assert_ledger_invariants(db)
