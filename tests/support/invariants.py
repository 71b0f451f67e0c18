"""``assert_ledger_invariants``: the invariants of RELIABILITY.md, checked from the database.

Run it at the end of every ledger-touching test (the ``world`` fixture does). Invariant 10
(model equivalence) needs a model and lives in the tests that have one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from allegiance import ledger
from allegiance.kit.db import Database
from allegiance.kit.money import MAX_AMOUNT


def _rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.read() as s:
        return list(s.execute(text(sql), params))


def assert_ledger_invariants(db: Database) -> dict[str, int]:
    """Assert invariants 1–9 and 11–14; returns counts for the figures summary."""
    # 1. Balanced journals, per entry and unit.
    unbalanced = _rows(db, """
        SELECT tenant_id, entry_id, unit_id FROM posting GROUP BY tenant_id, entry_id, unit_id
        HAVING SUM(CASE WHEN side = 'D' THEN amount ELSE -amount END) <> 0""")
    assert not unbalanced, f"invariant 1 (balanced journals) violated: {unbalanced[:5]}"

    # 2. Global conservation of posted and pending amounts, per unit.
    conservation = _rows(db, """
        SELECT tenant_id, unit_id, SUM(debits_posted), SUM(credits_posted),
               SUM(debits_pending), SUM(credits_pending)
        FROM ledger_account GROUP BY tenant_id, unit_id""")
    for tenant_id, unit_id, dp, cp, dpend, cpend in conservation:
        assert dp == cp, f"invariant 2 (posted conservation) violated for {tenant_id}/{unit_id}"
        assert dpend == cpend, f"invariant 2 (pending conservation) violated for {unit_id}"

    # 3. Materialised balances derive from postings and pending holds.
    with db.read() as s:
        checked, mismatches = ledger.reconcile(s)
    assert not mismatches, f"invariant 3 (balances from postings) violated: {mismatches[:5]}"

    # 4. Non-negativity where flagged.
    overdrawn = _rows(db, """
        SELECT tenant_id, id FROM ledger_account WHERE no_overdraw AND
        (CASE WHEN normal = 'credit' THEN credits_posted - debits_posted - debits_pending
              ELSE debits_posted - credits_posted - credits_pending END) < floor""")
    assert not overdrawn, f"invariant 4 (no overdraw) violated: {overdrawn[:5]}"

    # 5. At most one journal per business key.
    dup_keys = _rows(db, """
        SELECT tenant_id, entry_key FROM journal_entry WHERE entry_key IS NOT NULL
        GROUP BY tenant_id, entry_key HAVING COUNT(*) > 1""")
    assert not dup_keys, f"invariant 5 (idempotency) violated: {dup_keys[:5]}"

    # 6. Immutability: the hash chain of every tenant's journal verifies.
    tenants_ = [r[0] for r in _rows(db, "SELECT DISTINCT tenant_id FROM journal_entry")]
    with db.read() as s:
        for tenant_id in tenants_:
            bad = ledger.verify_chain(s, tenant_id)
            assert bad is None, f"invariant 6 (hash chain) breaks at seq {bad} of {tenant_id}"

    # 7. Holds resolve at most once, within their amount.
    bad_holds = _rows(db, """
        SELECT h.tenant_id, h.id FROM hold h WHERE
          (h.state = 'pending' AND (h.posted_amount <> 0 OR h.resolved_at IS NOT NULL))
          OR (h.state IN ('voided', 'expired') AND h.posted_amount <> 0)
          OR (h.state = 'posted' AND (h.posted_amount <= 0 OR h.resolved_entry_id IS NULL))
          OR h.posted_amount > h.amount""")
    assert not bad_holds, f"invariant 7 (holds) violated: {bad_holds[:5]}"
    hold_entries = _rows(db, """
        SELECT h.id, h.posted_amount, COUNT(e.id) FROM hold h
        LEFT JOIN journal_entry e ON e.tenant_id = h.tenant_id AND e.hold_id = h.id
        GROUP BY h.id, h.posted_amount""")
    for hold_id, posted, entries in hold_entries:
        assert entries == (1 if posted > 0 else 0), f"invariant 7: hold {hold_id} has {entries}"

    # 8. Atomicity: every journal has at least two postings.
    thin = _rows(db, """
        SELECT e.tenant_id, e.id FROM journal_entry e
        LEFT JOIN posting p ON p.tenant_id = e.tenant_id AND p.entry_id = e.id
        GROUP BY e.tenant_id, e.id HAVING COUNT(p.line_no) < 2""")
    assert not thin, f"invariant 8 (atomicity) violated: {thin[:5]}"

    # 9. Postings stay in their entry's tenant, program and the account's unit.
    stray = _rows(db, """
        SELECT p.entry_id, p.line_no FROM posting p
        JOIN journal_entry e ON e.tenant_id = p.tenant_id AND e.id = p.entry_id
        JOIN ledger_account a ON a.tenant_id = p.tenant_id AND a.id = p.account_id
        WHERE a.program_id <> e.program_id OR a.unit_id <> p.unit_id""")
    assert not stray, f"invariant 9 (tenant/program consistency) violated: {stray[:5]}"

    # 11. Journal numbers are unique and gapless per tenant.
    for tenant_id, n, total, low, high in _rows(db, """
            SELECT tenant_id, COUNT(*), SUM(seq), MIN(seq), MAX(seq) FROM journal_entry
            GROUP BY tenant_id"""):
        assert low == 1 and high == n and total == n * (n + 1) // 2, (
            f"invariant 11 (gapless sequence) violated for {tenant_id}")

    # 13. Amount hygiene.
    bad_amounts = _rows(db, "SELECT COUNT(*) FROM posting WHERE amount <= 0 OR amount >= :m",
                        m=MAX_AMOUNT)
    assert bad_amounts[0][0] == 0, "invariant 13 (amount hygiene) violated"

    # 14. Nothing is dated after it was written.
    future = _rows(db, "SELECT COUNT(*) FROM journal_entry WHERE effective_at > created_at")
    assert future[0][0] == 0, "invariant 14 (time determinism) violated"

    # 12. Liability: what members hold equals what the program side issued, net, per unit.
    for tenant_id, unit_id, members, program in _rows(db, """
            SELECT tenant_id, unit_id,
              SUM(CASE WHEN owner_type <> 'program'
                  THEN (credits_posted - debits_posted) ELSE 0 END),
              SUM(CASE WHEN owner_type = 'program'
                  THEN (debits_posted - credits_posted) ELSE 0 END)
            FROM ledger_account GROUP BY tenant_id, unit_id"""):
        assert members == program, f"invariant 12 (liability) violated for {tenant_id}/{unit_id}"

    entries = _rows(db, "SELECT COUNT(*) FROM journal_entry")[0][0]
    return {"accounts": checked, "entries": entries}
