"""The set-based expiry job (``ledger.run_expiry``) on SQLite and PostgreSQL: due lots, partly
consumed lots, holds, inactivity, several tenants, a run killed between chunks and resumed, and
a re-run that adds nothing; the ledger's invariants after each."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allegiance import ledger
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import Conflict
from allegiance.ledger import expiry_bulk as bulk
from allegiance.ledger.models import JournalEntry, Lot, LotUse
from tests.conftest import World, build_world
from tests.support.invariants import assert_ledger_invariants

START = datetime(2025, 1, 10, 12, tzinfo=UTC)
AFTER_A_YEAR = datetime(2026, 2, 1, 12, tzinfo=UTC)
YEARLY = {"kind": "after_months", "months": 12}


@pytest.fixture
def start() -> Iterator[clock.FrozenClock]:
    with clock.frozen(START) as c:
        yield c


def _redeem(w: World, wallet: str, amount: int) -> None:
    with w.db.transaction() as s:
        ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="redeem",
            lines=(ledger.Line(wallet, w.unit_id, ledger.Side.DEBIT, amount),
                   ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT, amount))))


def _hold(w: World, wallet: str, amount: int) -> str:
    with w.db.transaction() as s:
        hold, _ = ledger.create_hold(s, w.tenant_id, ledger.HoldRequest(
            program_id=w.program_id, debit_account_id=wallet, credit_account_id=w.redeemed_id,
            unit_id=w.unit_id, amount=amount, kind="redeem"))
        return hold.id


def _lots(db: Database, wallet: str) -> list[int]:
    with db.read() as s:
        return [int(r) for r in s.scalars(
            select(Lot.remaining).where(Lot.account_id == wallet).order_by(Lot.earned_at))]


def _expiry_keys(db: Database, tenant_id: str) -> list[str]:
    with db.read() as s:
        return sorted(str(k) for k in s.scalars(select(JournalEntry.entry_key).where(
            JournalEntry.tenant_id == tenant_id, JournalEntry.kind == "expiry")))


def test_due_and_partly_consumed_lots_expire_once(
        db: Database, start: clock.FrozenClock) -> None:
    w = build_world(db, expiry=YEARLY)
    a, b = w.wallet("acc_a"), w.wallet("acc_b")
    w.earn(a, 100)
    w.earn(b, 70)
    start.advance(timedelta(days=60))
    w.earn(a, 50)  # not due at the run
    _redeem(w, a, 30)  # takes 30 of the oldest lot: 70 of it is left to expire
    start.set(AFTER_A_YEAR)
    report = ledger.run_expiry(db.transaction)
    assert (report.lots, report.points, report.entries) == (2, 140, 2)
    assert w.balance(a).posted == 50 and w.balance(b).posted == 0
    assert _lots(db, a) == [0, 50] and _lots(db, b) == [0]
    with db.read() as s:
        lot_ids = dict(s.execute(select(Lot.account_id, Lot.id).where(
            Lot.amount.in_([100, 70]))).all())
        uses = s.execute(select(LotUse.lot_id, func.sum(LotUse.amount)).join(
            JournalEntry, (JournalEntry.tenant_id == LotUse.tenant_id)
            & (JournalEntry.id == LotUse.entry_id)).where(JournalEntry.kind == "expiry")
            .group_by(LotUse.lot_id)).all()
    assert _expiry_keys(db, w.tenant_id) == sorted(
        [f"expiry:{lot_ids[a]}:70", f"expiry:{lot_ids[b]}:70"])
    assert dict(uses) == {lot_ids[a]: 70, lot_ids[b]: 70}
    again = ledger.run_expiry(db.transaction)
    assert (again.lots, again.points, again.entries) == (0, 0, 0)
    with db.read() as s:
        assert ledger.verify_chain(s, w.tenant_id) is None
    assert_ledger_invariants(db)


def test_points_a_hold_reserves_stay_until_the_hold_is_voided(
        db: Database, start: clock.FrozenClock) -> None:
    w = build_world(db, expiry=YEARLY)
    a = w.wallet("acc_a")
    w.earn(a, 60)
    w.earn(a, 40)  # two due lots, 100 in all, expiring in (expires_at, id) order
    hold = _hold(w, a, 70)
    start.set(AFTER_A_YEAR)
    report = ledger.run_expiry(db.transaction)
    assert report.points == 30 and w.balance(a).posted == 70
    assert sum(_lots(db, a)) == 70
    assert ledger.run_expiry(db.transaction).points == 0  # still held: nothing more
    with db.transaction() as s:
        ledger.void_hold(s, w.tenant_id, hold)
    report = ledger.run_expiry(db.transaction)
    assert report.points == 70 and w.balance(a).posted == 0 and sum(_lots(db, a)) == 0
    assert len(_expiry_keys(db, w.tenant_id)) == len(set(_expiry_keys(db, w.tenant_id)))
    assert_ledger_invariants(db)


def test_inactive_wallets_lose_every_open_lot(db: Database, start: clock.FrozenClock) -> None:
    w = build_world(db, expiry={"kind": "inactivity", "months": 12})
    idle, busy = w.wallet("acc_idle"), w.wallet("acc_busy")
    w.earn(idle, 80)
    w.earn(idle, 20)
    w.earn(busy, 50)
    _redeem(w, idle, 5)
    start.advance(timedelta(days=200))
    w.earn(busy, 10)  # activity: its deadline moves on
    start.set(datetime(2026, 1, 10, 12, tzinfo=UTC))  # exactly 12 months after idle's last
    report = ledger.run_expiry(db.transaction)
    assert (report.lots, report.points) == (2, 95)
    assert w.balance(idle).posted == 0 and w.balance(busy).posted == 60
    assert _lots(db, busy) == [50, 10]
    assert ledger.run_expiry(db.transaction).entries == 0
    assert_ledger_invariants(db)


def test_a_run_killed_between_chunks_resumes_without_doubles(
        db: Database, start: clock.FrozenClock) -> None:
    w = build_world(db, expiry=YEARLY)
    wallets = [w.wallet(f"acc_{i}") for i in range(5)]
    for i, wallet in enumerate(wallets):
        w.earn(wallet, 10 + i)
    start.set(AFTER_A_YEAR)
    opened = 0

    @contextlib.contextmanager
    def dies_in_the_second_chunk() -> Iterator[Session]:
        nonlocal opened
        opened += 1
        with db.transaction() as session:
            yield session
            if opened == 2:
                raise KeyboardInterrupt  # the process stops before this chunk commits

    with pytest.raises(KeyboardInterrupt):
        ledger.run_expiry(dies_in_the_second_chunk, batch=2)
    assert len(_expiry_keys(db, w.tenant_id)) == 2  # the first chunk, committed
    assert_ledger_invariants(db)
    report = ledger.run_expiry(db.transaction, batch=2)
    assert report.lots == 3 and report.points == 12 + 13 + 14
    assert all(w.balance(wallet).posted == 0 for wallet in wallets)
    assert len(_expiry_keys(db, w.tenant_id)) == 5
    assert_ledger_invariants(db)


def test_one_run_expires_every_tenants_lots(db: Database, start: clock.FrozenClock) -> None:
    first, second = build_world(db, expiry=YEARLY), build_world(db, expiry=YEARLY)
    a, b = first.wallet("acc_a"), second.wallet("acc_b")
    first.earn(a, 11)
    second.earn(b, 22)
    start.set(AFTER_A_YEAR)
    report = ledger.run_expiry(db.transaction, batch=1)
    assert (report.lots, report.points) == (2, 33)
    assert first.balance(a).posted == 0 and second.balance(b).posted == 0
    for world in (first, second):
        with db.read() as s:
            assert ledger.verify_chain(s, world.tenant_id) is None
    assert_ledger_invariants(db)


def test_expiry_keeps_the_aging_the_trigger_would_keep(
        db: Database, start: clock.FrozenClock) -> None:
    w = build_world(db, expiry=YEARLY)
    a, b = w.wallet("acc_a"), w.wallet("acc_b")
    w.earn(a, 40)
    start.advance(timedelta(days=3))
    w.earn(a, 25)
    w.earn(b, 9)
    start.advance(timedelta(days=300))
    w.earn(a, 7)  # not due
    start.set(AFTER_A_YEAR)
    ledger.run_expiry(db.transaction)
    w.earn(b, 5)  # a posting after the job: the trigger runs again (the pause was lifted)
    with db.read() as s:
        assert ledger.stored_aging(s, w.tenant_id) == ledger.recompute_aging(s, w.tenant_id)
    assert_ledger_invariants(db)


def test_a_lot_whose_expiry_key_is_taken_is_left_alone(
        db: Database, start: clock.FrozenClock) -> None:
    w = build_world(db, expiry=YEARLY)
    a, b = w.wallet("acc_a"), w.wallet("acc_b")
    w.earn(a, 10)
    w.earn(b, 20)
    with db.read() as s:
        lot_a = s.scalars(select(Lot.id).where(Lot.account_id == a)).one()
    with db.transaction() as s:  # an entry that already holds lot a's key
        ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="adjustment", entry_key=f"expiry:{lot_a}:10",
            lines=(ledger.Line(w.issued_id, w.unit_id, ledger.Side.DEBIT, 1),
                   ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT, 1))))
    start.set(AFTER_A_YEAR)
    report = ledger.run_expiry(db.transaction)  # the chunk meets the key, is read again
    assert (report.lots, report.points) == (1, 20)
    assert _lots(db, a) == [10] and _lots(db, b) == [0]
    assert_ledger_invariants(db)


def test_a_wallet_changed_after_its_chunk_was_read_is_a_conflict(
        db: Database, start: clock.FrozenClock) -> None:
    """On PostgreSQL the chunk is read without locks: the wallets' available balances are
    read again under their locks, and a chunk read before another writer moved a wallet is
    refused (the job reads it again). SQLite reads and writes under one write lock."""
    if db.is_sqlite:
        pytest.skip("SQLite: the chunk is read inside the writer's lock")
    w = build_world(db, expiry=YEARLY)
    a, b = w.wallet("acc_a"), w.wallet("acc_b")
    w.earn(a, 100)
    w.earn(b, 40)
    start.set(AFTER_A_YEAR)
    with db.transaction() as s:
        stale, _ = bulk.due_chunk(s, clock.now(), 10)
    _hold(w, a, 30)  # another writer reserves part of a's balance meanwhile
    with pytest.raises(Conflict), db.transaction() as s:
        bulk.expire(s, stale, clock.now())
    report = ledger.run_expiry(db.transaction)  # read again: what the hold reserves stays
    assert (report.lots, report.points) == (2, 70 + 40)
    assert w.balance(a).posted == 30 and w.balance(b).posted == 0
    assert_ledger_invariants(db)
