"""The reversals of an entry are found through ``ix_journal_entry_reverses``, which holds only
reversals since migration 0033_reversesidx (a partial index ``WHERE reverses_entry_id IS NOT
NULL``): the reader's equality must still be answered by it, on both engines."""

from __future__ import annotations

from sqlalchemy import text

from allegiance import ledger
from allegiance.kit.db import Database
from allegiance.ledger import repository
from tests.conftest import build_world
from tests.support.invariants import assert_ledger_invariants

_QUERY = ("SELECT id FROM journal_entry WHERE tenant_id = :t AND reverses_entry_id = :e")


def test_reversals_are_read_through_the_partial_index(db: Database) -> None:
    w = build_world(db)
    wallet = w.wallet("acc_rev")
    first = w.earn(wallet, 50).entry_id
    w.earn(wallet, 20)
    with db.transaction() as s:
        ledger.reverse_entry(s, w.tenant_id, first, actor="test")
    with db.read() as s:
        assert sum(repository.reversed_so_far(s, w.tenant_id, first).values()) == 100
        if s.get_bind().dialect.name == "sqlite":
            definition = s.execute(text("SELECT sql FROM sqlite_master "
                                        "WHERE name = 'ix_journal_entry_reverses'")).scalar()
            plan = " ".join(str(row[-1]) for row in s.execute(
                text("EXPLAIN QUERY PLAN " + _QUERY), {"t": w.tenant_id, "e": first}))
        else:
            definition = s.execute(text("SELECT indexdef FROM pg_indexes "
                                        "WHERE indexname = 'ix_journal_entry_reverses'")).scalar()
            s.execute(text("SET LOCAL enable_seqscan = off"))
            s.execute(text("SET LOCAL enable_bitmapscan = off"))
            plan = " ".join(str(row[0]) for row in s.execute(
                text("EXPLAIN " + _QUERY), {"t": w.tenant_id, "e": first}))
        indexed = s.execute(text(
            "SELECT count(*) FROM journal_entry WHERE reverses_entry_id IS NOT NULL")).scalar()
    assert "reverses_entry_id IS NOT NULL" in str(definition), definition
    assert "ix_journal_entry_reverses" in plan, plan
    assert indexed == 1
    assert_ledger_invariants(db)
