"""A large batch's rows go to PostgreSQL as ``INSERT … SELECT FROM unnest(arrays)``, a column
every row shares as one value (``writes._insert_unnest``); on SQLite by ``executemany``. The
stored rows must be exactly the requests', whichever columns are shared, on both engines."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from allegiance import ledger
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.ledger.errors import InsufficientFunds
from tests.conftest import build_world
from tests.support.invariants import assert_ledger_invariants


def test_batch_rows_are_stored_as_requested(db: Database) -> None:
    w = build_world(db)
    wallets = [w.wallet(f"acc_rows_{i}") for i in range(3)]
    now = clock.now()
    requests = []
    for i in range(60):
        varied = i % 3 == 0
        amount = 1 + i
        requests.append(ledger.EntryRequest(
            program_id=w.program_id, kind="earn" if i % 4 else "bonus",
            source_type="event", source_id=f"evt_rows_{i}", entry_key=f"rows:{i}",
            memo=f"memo {i} 'quoted' {{x}}" if varied else None,
            meta={"i": i, "s": "a\"b"} if varied else {},
            actor="tester", effective_at=now - timedelta(days=i % 2),
            lines=(ledger.Line(w.issued_id, w.unit_id, ledger.Side.DEBIT, amount),
                   ledger.Line(wallets[i % 3], w.unit_id, ledger.Side.CREDIT, amount))))
    for chunk in (requests[:55], requests[55:]):  # the unnest path, and a small batch
        with db.transaction() as s:
            ledger.post_entries(s, w.tenant_id, chunk)
    with db.read() as s:
        entries = {e.entry_key: (e.id, e.kind, e.source_type, e.source_id, e.memo, e.meta,
                                 e.actor, e.effective_at, e.reverses_entry_id, e.hold_id)
                   for e in s.scalars(select(ledger.JournalEntry)
                                      .where(ledger.JournalEntry.tenant_id == w.tenant_id))}
        postings = s.execute(select(ledger.Posting.entry_id, ledger.Posting.line_no,
                                    ledger.Posting.account_id, ledger.Posting.side,
                                    ledger.Posting.amount, ledger.Posting.unit_id)
                             .where(ledger.Posting.tenant_id == w.tenant_id)).all()
        assert ledger.verify_chain(s, w.tenant_id) is None
    by_entry: dict[str, list[tuple[int, str, str, int, str]]] = {}
    for entry_id, line_no, account_id, side, amount, unit_id in postings:
        by_entry.setdefault(entry_id, []).append((line_no, account_id, side, amount, unit_id))
    for request in requests:
        entry_id, *stored = entries[request.entry_key]
        assert stored == [request.kind, request.source_type, request.source_id, request.memo,
                          dict(request.meta), request.actor, request.effective_at, None, None]
        assert sorted(by_entry[entry_id]) == [
            (n, line.account_id, line.side.value, line.amount, line.unit_id)
            for n, line in enumerate(request.lines, start=1)]
    assert_ledger_invariants(db)


def test_a_batch_over_many_accounts_reports_the_overdrawn_wallet(db: Database) -> None:
    """More than 16 accounts: on PostgreSQL the counters go as one set-based UPDATE over
    binary arrays (ids, deltas, which accounts are checked); the wallet that would be
    overdrawn is the one reported, and nothing of the batch stays."""
    w = build_world(db)
    wallets = [w.wallet(f"acc_many_{i:02d}") for i in range(30)]
    for wallet in wallets:
        w.earn(wallet, 10)
    poor = wallets[17]
    requests = [ledger.EntryRequest(
        program_id=w.program_id, kind="redeem",
        lines=(ledger.Line(wallet, w.unit_id, ledger.Side.DEBIT, 11 if wallet == poor else 5),
               ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT,
                           11 if wallet == poor else 5)))
        for wallet in wallets]
    try:
        with db.transaction() as s:
            ledger.post_entries(s, w.tenant_id, requests)
    except InsufficientFunds as exc:
        assert poor in str(exc)
    else:
        raise AssertionError("the batch overdrew a wallet")
    assert [w.balance(wallet).available for wallet in wallets] == [10] * 30
    with db.transaction() as s:
        ledger.post_entries(s, w.tenant_id, [r for r in requests if r.lines[0].account_id != poor])
    assert w.balance(wallets[0]).available == 5
    assert_ledger_invariants(db)
