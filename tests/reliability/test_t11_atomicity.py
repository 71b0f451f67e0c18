"""T11: a multi-leg journal (points + cashback + commission) is all-or-nothing.

A fault is injected at every write of ``post_entry`` in turn — after the counters of 0..5 of the
six accounts were updated, after the journal number was reserved, after the journal and postings
were inserted, after the lots were written — and once after the service returned but before the
commit. After each fault: no
partial journal, no orphan posting, every counter unchanged, and the next entry takes the next
journal number (gapless). Batches with ``partial=True`` write the good entries and skip the bad.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from allegiance import ledger, tenants
from allegiance.kit import sequences
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.ledger import repository
from tests.reliability.harness import count, engine_name
from tests.support import figures
from tests.support.broken_ledger import post_legs_separately
from tests.support.invariants import assert_ledger_invariants


class InjectedFault(RuntimeError):
    pass


@dataclass
class Purchase:
    db: Database
    tenant_id: str
    program_id: str
    points: str
    cash: str
    accounts: dict[str, str]

    def request(self, points: int = 100, cash: int = 250, commission: int = 40,
                key: str | None = None) -> ledger.EntryRequest:
        a, D, C = self.accounts, ledger.Side.DEBIT, ledger.Side.CREDIT
        return ledger.EntryRequest(
            program_id=self.program_id, kind="purchase", entry_key=key,
            lines=(
                ledger.Line(a["points_issued"], self.points, D, points),
                ledger.Line(a["points_wallet"], self.points, C, points),
                ledger.Line(a["cash_issued"], self.cash, D, cash),
                ledger.Line(a["cash_wallet"], self.cash, C, cash),
                ledger.Line(a["commission"], self.cash, D, commission),
                ledger.Line(a["partner"], self.cash, C, commission),
            ),
        )


def _purchase_world(db: Database) -> Purchase:
    with db.transaction() as s:
        t = tenants.create_tenant(s, "Atomicity")
        p = tenants.create_program(s, t.id, code="shop", name="Shop", base_currency="EUR")
        pts = tenants.create_unit(s, t.id, p.id, code="points", name="Points", kind="points",
                                  value_in_base="0.01",
                                  expiry_policy={"kind": "after_months", "months": 24})
        cash = tenants.create_unit(s, t.id, p.id, code="cashback", name="Cashback",
                                   kind="money", currency="EUR", value_in_base="0.01",
                                   expiry_policy={"kind": "after_months", "months": 12})
        accounts = {
            "points_issued": ledger.program_account(s, t.id, p.id, pts.id, "issued").id,
            "points_wallet": ledger.wallet(s, t.id, p.id, pts.id, "account", "acc_buyer").id,
            "cash_issued": ledger.program_account(s, t.id, p.id, cash.id, "issued").id,
            "cash_wallet": ledger.wallet(s, t.id, p.id, cash.id, "account", "acc_buyer").id,
            "commission": ledger.program_account(s, t.id, p.id, cash.id, "commission").id,
            "partner": ledger.program_account(s, t.id, p.id, cash.id, "partner_payable",
                                              normal="credit").id,
        }
        return Purchase(db, t.id, p.id, pts.id, cash.id, accounts)


def _snapshot(db: Database, tenant_id: str) -> dict[str, Any]:
    with db.read() as s:
        counters = [tuple(r) for r in s.execute(text(
            "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending "
            "FROM ledger_account WHERE tenant_id = :t ORDER BY id"), {"t": tenant_id})]
        seq = s.execute(text("SELECT last_value, last_hash FROM sequence WHERE tenant_id = :t "
                             "AND name = 'journal'"), {"t": tenant_id}).one_or_none()
    return {
        "counters": counters,
        "sequence": tuple(seq) if seq else None,
        "entries": count(db, "SELECT COUNT(*) FROM journal_entry WHERE tenant_id = :t",
                         t=tenant_id),
        "postings": count(db, "SELECT COUNT(*) FROM posting WHERE tenant_id = :t", t=tenant_id),
        "lots": count(db, "SELECT COUNT(*) FROM lot WHERE tenant_id = :t", t=tenant_id),
        "lot_remaining": count(db, "SELECT COALESCE(SUM(remaining), 0) FROM lot "
                               "WHERE tenant_id = :t", t=tenant_id),
    }


def _orphans(db: Database) -> tuple[int, int]:
    orphan_postings = count(db, """
        SELECT COUNT(*) FROM posting p LEFT JOIN journal_entry e
        ON e.tenant_id = p.tenant_id AND e.id = p.entry_id WHERE e.id IS NULL""")
    thin_entries = count(db, """
        SELECT COUNT(*) FROM (SELECT e.id FROM journal_entry e LEFT JOIN posting p
        ON p.tenant_id = e.tenant_id AND p.entry_id = e.id
        GROUP BY e.tenant_id, e.id HAVING COUNT(p.line_no) < 6) x""")
    return orphan_postings, thin_entries


def _fail_after(original: Callable[..., Any], calls_before_fault: int) -> Callable[..., Any]:
    """Let ``calls_before_fault`` calls through, then raise instead of calling."""
    seen = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seen["n"] += 1
        if seen["n"] > calls_before_fault:
            raise InjectedFault(f"fault after {calls_before_fault} call(s) of {original.__name__}")
        return original(*args, **kwargs)

    return wrapper


def _fail_once_done(original: Callable[..., Any]) -> Callable[..., Any]:
    """Do the write, then fail: the write must be rolled back with everything else."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        raise InjectedFault(f"fault right after {original.__name__}")

    return wrapper


def _fail_once_answered(original: Callable[..., Any]) -> Callable[..., Any]:
    """For a write sent now and answered later (``send_one_postgres``): send it, and when its
    answer is read, read it and fail: the write must be rolled back with everything else."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        answer = original(*args, **kwargs)

        def failing() -> Any:
            answer()
            raise InjectedFault(f"fault right after the answer of {original.__name__}")

        return failing

    return wrapper


def _fail_after_legs(original: Callable[..., Any], legs: int) -> Callable[..., Any]:
    """Apply the counter deltas of the first ``legs`` accounts (in lock order), then fail."""

    def wrapper(session: Any, tenant_id: str, infos: Any, deltas: dict[str, Any], *args: Any,
                **kwargs: Any) -> Any:
        first = {k: deltas[k] for k in sorted(deltas)[:legs]}
        if first:
            assert original(session, tenant_id, infos, first, *args, **kwargs) is None
        raise InjectedFault(f"fault after the counters of {legs} of {len(deltas)} accounts")

    return wrapper


def _fault_points(
    one_round_trip: bool,
) -> list[tuple[str, Any, str, Callable[[Callable[..., Any]], Any]]]:
    """(label, module, attribute, wrapper factory) for every write of a posting.

    Only attributes the ledger still has are used, so a refactor of the repository moves the
    fault points with it; a point that is never reached fails the test (``faults_fired``).
    ``one_round_trip``: a single entry on PostgreSQL is written by the database function
    ``ledger_post_one`` as one statement (atomic by itself); the faults are then after it and
    at the lots written after it.
    """
    points: list[tuple[str, Any, str, Callable[[Callable[..., Any]], Any]]] = []
    if one_round_trip:
        points.append(("ledger_post_one done", repository, "send_one_postgres",
                       _fail_once_answered))
    else:
        points.extend(
            (f"counters written for {n} of 6 legs", repository, "apply_deltas",
             functools.partial(_fail_after_legs, legs=n)) for n in range(6)
        )
        points.append(("journal number reserved", sequences, "reserve", _fail_once_done))
        points.append(("write_journal done", repository, "write_journal", _fail_once_done))
    for name in ["insert_lots", "insert_lot_uses"]:
        points.append((f"{name} done", repository, name, _fail_once_done))
    return points


def _poster(via: str) -> Callable[[Any, str, ledger.EntryRequest], Any]:
    if via == "post_entry":
        return ledger.post_entry
    return lambda s, tenant_id, request: ledger.post_entries(s, tenant_id, [request])[0]


@pytest.fixture
def purchase(db: Database) -> Iterator[Purchase]:
    world = _purchase_world(db)
    yield world
    assert_ledger_invariants(db)


@pytest.mark.parametrize("via", ["post_entry", "post_entries"])
def test_t11_fault_at_each_leg_leaves_nothing(purchase: Purchase, via: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    p, db = purchase, purchase.db
    post = _poster(via)
    # Prime the tenant: the first purchase succeeds, so the next ones also consume/open lots.
    with db.transaction() as s:
        first = ledger.post_entry(s, p.tenant_id, p.request(key="purchase-0"))
    assert first.seq == 1
    faults_fired = 0
    one_round_trip = via == "post_entry" and not db.is_sqlite
    for index, (label, module, attribute, make) in enumerate(_fault_points(one_round_trip)):
        before = _snapshot(db, p.tenant_id)
        with monkeypatch.context() as m:
            m.setattr(module, attribute, make(getattr(module, attribute)))
            try:
                with db.transaction() as s:
                    post(s, p.tenant_id, p.request(key=f"purchase-f{index}"))
            except InjectedFault:
                faults_fired += 1
            else:
                raise AssertionError(f"fault point {label!r} was never reached")
        after = _snapshot(db, p.tenant_id)
        assert after == before, f"fault at {label!r} left a trace: {before} -> {after}"
        assert _orphans(db) == (0, 0), f"fault at {label!r}: orphans {_orphans(db)}"
    # A fault after the service returned but before commit: the unit of work rolls back.
    before = _snapshot(db, p.tenant_id)
    with pytest.raises(InjectedFault), db.transaction() as s:
        ledger.post_entry(s, p.tenant_id, p.request(key="purchase-late"))
        raise InjectedFault("crash before commit")
    assert _snapshot(db, p.tenant_id) == before
    faults_fired += 1
    # The sequence is gapless: the next entry takes number 2, and its key was never used.
    with db.transaction() as s:
        nxt = ledger.post_entry(s, p.tenant_id, p.request(key="purchase-f0"))
    assert (nxt.seq, nxt.created) == (2, True)
    figures.record(
        f"T11.faults.{engine_name(db)}.{via}", fault_points=faults_fired,
        partial_journals=0, orphan_postings=0, balance_changes_after_fault=0,
        next_seq_after_faults=nxt.seq,
    )


@pytest.mark.parametrize("via", ["post_entry", "post_entries"])
def test_t11_overdraw_on_the_last_leg_undoes_the_first_legs(purchase: Purchase, via: str) -> None:
    """The overdraw check fails on the last account in lock order, after the counters of the
    others were updated: nothing of the entry stays."""
    p, db = purchase, purchase.db
    a = p.accounts
    last = max(a["points_wallet"], a["cash_wallet"])
    spend = ledger.EntryRequest(
        program_id=p.program_id, kind="redeem",
        lines=(ledger.Line(a["points_wallet"], p.points, ledger.Side.DEBIT,
                           10**6 if a["points_wallet"] == last else 1),
               ledger.Line(a["points_issued"], p.points, ledger.Side.CREDIT,
                           10**6 if a["points_wallet"] == last else 1),
               ledger.Line(a["cash_wallet"], p.cash, ledger.Side.DEBIT,
                           10**6 if a["cash_wallet"] == last else 1),
               ledger.Line(a["cash_issued"], p.cash, ledger.Side.CREDIT,
                           10**6 if a["cash_wallet"] == last else 1)))
    with db.transaction() as s:
        ledger.post_entry(s, p.tenant_id, p.request(key="fund"))
    before = _snapshot(db, p.tenant_id)
    with pytest.raises(AllegianceError) as caught, db.transaction() as s:
        _poster(via)(s, p.tenant_id, spend)
    assert caught.value.code == "insufficient_funds"
    assert _snapshot(db, p.tenant_id) == before
    assert _orphans(db) == (0, 0)


def test_t11_partial_batch_skips_only_the_bad_entry(purchase: Purchase) -> None:
    p, db = purchase, purchase.db
    a = p.accounts
    spend_too_much = ledger.EntryRequest(  # the buyer holds no cashback yet
        program_id=p.program_id, kind="redeem",
        lines=(ledger.Line(a["cash_wallet"], p.cash, ledger.Side.DEBIT, 10**6),
               ledger.Line(a["partner"], p.cash, ledger.Side.CREDIT, 10**6)))
    unbalanced = ledger.EntryRequest(
        program_id=p.program_id, kind="purchase",
        lines=(ledger.Line(a["points_issued"], p.points, ledger.Side.DEBIT, 5),
               ledger.Line(a["points_wallet"], p.points, ledger.Side.CREDIT, 4)))
    batch = [p.request(key="b1"), spend_too_much, p.request(key="b2"), unbalanced,
             p.request(key="b3")]
    before = _snapshot(db, p.tenant_id)
    with db.transaction() as s:
        results = ledger.post_entries(s, p.tenant_id, batch, partial=True)
    codes = [r.code if isinstance(r, AllegianceError) else "ok" for r in results]
    assert codes == ["ok", "insufficient_funds", "ok", "invalid_entry", "ok"], codes
    written = [r for r in results if isinstance(r, ledger.EntryResult)]
    assert [r.seq for r in written] == [1, 2, 3], "a skipped entry left a gap"
    after = _snapshot(db, p.tenant_id)
    assert after["entries"] == before["entries"] + 3
    assert after["postings"] == before["postings"] + 3 * 6
    with db.read() as s:
        wallet = ledger.get_account(s, p.tenant_id, a["cash_wallet"])
        assert ledger.balance_of(wallet).posted == 3 * 250
    # Without partial, the same bad entry rejects the whole batch.
    before = _snapshot(db, p.tenant_id)
    with pytest.raises(AllegianceError) as whole, db.transaction() as s:
        ledger.post_entries(s, p.tenant_id, [p.request(key="c1"), spend_too_much,
                                             p.request(key="c2")])
    assert whole.value.code == "insufficient_funds"
    assert _snapshot(db, p.tenant_id) == before
    assert _orphans(db) == (0, 0)
    figures.record(f"T11.partial_batch.{engine_name(db)}", batch=len(batch), written=3,
                   rejected=2, rejected_present=0, all_or_nothing_batch_written=0)


def test_t11_positive_control_leg_by_leg_posting_is_detected(
        purchase: Purchase, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same fault harness against an implementation that commits each leg on its own must
    find the partial journal."""
    p, db = purchase, purchase.db
    before = _snapshot(db, p.tenant_id)
    with monkeypatch.context() as m:  # fault while writing the second leg
        m.setattr(repository, "apply_deltas", _fail_after(repository.apply_deltas, 1))
        with pytest.raises(InjectedFault):
            post_legs_separately(db, p.tenant_id, p.request())
    after = _snapshot(db, p.tenant_id)
    assert after != before, "the harness did not see the partial journal"
    assert after["entries"] == before["entries"] + 1
    figures.record(f"T11p.{engine_name(db)}", partial_journals_detected=after["entries"]
                   - before["entries"], legs_committed_before_fault=1)
