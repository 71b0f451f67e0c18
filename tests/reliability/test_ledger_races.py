"""Check-then-act races in the ledger's services, found while writing T1-T11 and fixed.

BUG-1 (reverse_entry): ``reversed_so_far`` was read without a lock, so N concurrent reversals
of one entry all passed the "not yet reversed" check. Fixed: the original entry is locked first.
BUG-2 (decide_adjustment): the status check was a plain read before an unconditional update,
so a concurrent approve and reject both "won". Fixed: a conditional UPDATE on the status.
Both tests run on both engines (SQLite serialises writers; PostgreSQL is the real test).
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from allegiance import ledger, tenants
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.conftest import World, build_world
from tests.reliability.harness import count, engine_name, run_threads
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

ROUNDS = 8  # the races showed within a round or two on PostgreSQL before the fixes
RACERS = 8



def test_concurrent_reversals_reverse_an_entry_once(db: Database,
                                                    request: pytest.FixtureRequest) -> None:
    reversals_per_round: list[int] = []
    for _ in range(ROUNDS):
        w = build_world(db)
        wallet_id = w.wallet("acc_reverse")
        w.earn(wallet_id, 1000)
        earn = w.earn(wallet_id, 100)

        def reverse(_: int, barrier: threading.Barrier, w: World = w,
                    entry_id: str = earn.entry_id) -> str:
            barrier.wait()
            try:
                with db.transaction() as s:
                    ledger.reverse_entry(s, w.tenant_id, entry_id)
                return "ok"
            except AllegianceError as exc:
                return exc.code

        outcomes = run_threads(RACERS, reverse, timeout=60)
        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        reversals = count(db, "SELECT COUNT(*) FROM journal_entry WHERE tenant_id = :t AND "
                          "reverses_entry_id = :e", t=w.tenant_id, e=earn.entry_id)
        reversals_per_round.append(reversals)
        figures.record(f"race.reverse.{engine_name(db)}", rounds=len(reversals_per_round),
                       racers=RACERS, reversals_per_round=reversals_per_round, expected=1)
        assert reversals == 1, f"one entry was reversed {reversals} times: {outcomes}"
        assert Counter(outcomes) == {"ok": 1, "reversal_exceeds_original": RACERS - 1}
        assert w.balance(wallet_id).posted == 1000
    assert_ledger_invariants(db)


def test_concurrent_approve_and_reject_decide_once(db: Database,
                                                   request: pytest.FixtureRequest) -> None:
    outcomes_per_round: list[dict[str, int]] = []
    for _ in range(ROUNDS):
        w = build_world(db)
        with db.transaction() as s:
            tenants.update_program(s, w.tenant_id, w.program_id,
                                   {"adjustment_approval_threshold": 10})
        wallet_id = w.wallet("acc_adjust")
        with db.transaction() as s:
            adjustment = ledger.request_adjustment(s, w.tenant_id, wallet_id=wallet_id,
                                                   amount=500, reason="goodwill",
                                                   requested_by="user:clerk")
            assert adjustment.status == "pending_approval"
            adjustment_id = adjustment.id

        def decide(i: int, barrier: threading.Barrier, w: World = w,
                   adjustment_id: str = adjustment_id) -> str:
            barrier.wait()
            try:
                with db.transaction() as s:
                    ledger.decide_adjustment(s, w.tenant_id, adjustment_id,
                                             approve=i % 2 == 0, decided_by=f"user:boss{i}")
                return "approved" if i % 2 == 0 else "rejected"
            except AllegianceError as exc:
                return exc.code

        outcomes = run_threads(4, decide, timeout=60)
        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        with db.read() as s:
            final = ledger.get_adjustment(s, w.tenant_id, adjustment_id)
            status, entry_id = final.status, final.entry_id
        posted = w.balance(wallet_id).posted
        decided = Counter(outcomes)
        outcomes_per_round.append(dict(decided))
        figures.record(f"race.adjustment.{engine_name(db)}", rounds=len(outcomes_per_round),
                       outcomes_per_round=outcomes_per_round)
        assert decided["approved"] + decided["rejected"] == 1, f"several deciders won: {decided}"
        assert decided["adjustment_not_pending"] == 3
        if status == "posted":
            assert entry_id is not None and posted == 500
        else:
            assert status == "rejected" and entry_id is None and posted == 0, (
                status, entry_id, posted)
    assert_ledger_invariants(db)
