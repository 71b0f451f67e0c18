"""T12: a Jepsen-style mixed workload on PostgreSQL, checked against a serial model.

32 wallets, 16 worker threads; each worker runs a seeded mix of earn, redeem, transfer, hold,
post-hold, void-hold and snapshot reads through the ledger services; then a final read phase.
Every operation is logged with its outcome (``ok`` with the journal entry it wrote, ``fail``
with its business error code, or ``info`` when the outcome is unknown: the transaction raised a
database error after all retries). The checks:

* **Each acknowledged op applied once, failed ops absent.** The tenant's journal holds exactly
  the entries of the acknowledged journal-writing ops (found by their ``entry_key``), one each,
  with the postings the op asked for; ``info`` ops are resolved by the final read to 0 or 1
  application (unresolved = 0).
* **Serial replay.** Journal numbers are allocated under a per-tenant counter lock, so their
  order is the commit order. Replaying the acknowledged ops in that order through a pure model
  of posted balances never overdraws a wallet and ends at the database's balances; pending
  amounts equal the acknowledged holds no one resolved; every hold is in the state its
  acknowledged resolution says.
* **Per-snapshot sums.** Each read is one statement (one MVCC snapshot) of every account and the
  newest journal number ``S``: debits equal credits (posted and pending), no wallet's available
  balance is below 0, and every wallet's posted balance equals the serial replay's after entry
  ``S``. Mismatches = 0.

Size: CI runs a fixed number of ops per worker (seconds); ``ALLEGIANCE_NIGHTLY=1`` runs for
``ALLEGIANCE_T12_SECONDS`` (default 600 s). The seed is printed with every failure; CI is
derandomized (``ALLEGIANCE_T12_SEED``, default 12).
"""

from __future__ import annotations

import bisect
import os
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from allegiance import ledger
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.conftest import World, build_world
from tests.reliability.harness import Retries, connection_budget, run_threads, with_retries
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

NIGHTLY = os.environ.get("ALLEGIANCE_NIGHTLY") == "1"
SEED = int(os.environ.get("ALLEGIANCE_T12_SEED", "12"))
ACCOUNTS = 32
WORKERS = 16
OPENING = 500
OPS_PER_WORKER = 10**9 if NIGHTLY else 300
SECONDS = float(os.environ.get("ALLEGIANCE_T12_SECONDS", "600")) if NIGHTLY else 90.0
MIX = ("earn", "earn", "redeem", "redeem", "transfer", "transfer", "transfer", "hold", "hold",
       "post", "void", "read", "read")


@dataclass
class Op:
    """One operation of the history."""

    worker: int
    index: int
    kind: str
    key: str
    a: str = ""
    b: str = ""
    amount: int = 0
    hold_id: str | None = None
    status: str = "invoke"  # ok / fail / info
    code: str | None = None
    entry_id: str | None = None
    seq: int | None = None
    posted: int = 0  # the amount a hold post moved


@dataclass
class History:
    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: list[Op] = field(default_factory=list)
    holds: dict[str, tuple[str, int]] = field(default_factory=dict)  # acked hold -> wallet, amt
    claimed: set[str] = field(default_factory=set)  # holds a worker is resolving or resolved
    snapshots: list[tuple[int, dict[str, tuple[int, int, int, int]]]] = field(
        default_factory=list)  # (max seq, account -> dp, cp, dpend, cpend)

    def add(self, op: Op) -> None:
        with self.lock:
            self.ops.append(op)


SNAPSHOT_SQL = text("""
    SELECT a.id, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
           (SELECT COALESCE(MAX(seq), 0) FROM journal_entry WHERE tenant_id = :t)
    FROM ledger_account a WHERE a.tenant_id = :t""")


def _snapshot(db: Database, tenant_id: str) -> tuple[int, dict[str, tuple[int, int, int, int]]]:
    """One statement: on PostgreSQL one snapshot of every account and the newest journal."""
    with db.read() as s:
        rows = s.execute(SNAPSHOT_SQL, {"t": tenant_id}).all()
    top = int(rows[0][5]) if rows else 0
    return top, {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


def _entry(w: World, op: Op) -> ledger.EntryRequest:
    D, C, u = ledger.Side.DEBIT, ledger.Side.CREDIT, w.unit_id
    if op.kind == "earn":
        lines = (ledger.Line(w.issued_id, u, D, op.amount), ledger.Line(op.a, u, C, op.amount))
    else:
        lines = (ledger.Line(op.a, u, D, op.amount), ledger.Line(w.redeemed_id, u, C, op.amount))
    return ledger.EntryRequest(program_id=w.program_id, kind=op.kind, lines=lines,
                               entry_key=op.key)


def _apply(w: World, op: Op) -> None:
    """Run ``op`` in one transaction; fills in what it wrote."""
    with w.db.transaction() as s:
        if op.kind in ("earn", "redeem"):
            result = ledger.post_entry(s, w.tenant_id, _entry(w, op))
            op.entry_id, op.seq = result.entry_id, result.seq
        elif op.kind == "transfer":
            result = ledger.transfer(s, w.tenant_id, from_wallet_id=op.a, to_wallet_id=op.b,
                                     amount=op.amount, entry_key=op.key)
            op.entry_id, op.seq = result.entry_id, result.seq
        elif op.kind == "hold":
            hold, _ = ledger.create_hold(s, w.tenant_id, ledger.HoldRequest(
                w.program_id, op.a, w.redeemed_id, w.unit_id, op.amount, hold_key=op.key))
            op.hold_id = hold.id
        elif op.kind == "post":
            assert op.hold_id is not None
            hold = ledger.post_hold(s, w.tenant_id, op.hold_id, op.amount)
            op.posted, op.entry_id = hold.posted_amount, hold.resolved_entry_id
            op.seq = ledger.get_entry(s, w.tenant_id, op.entry_id).seq
        else:
            assert op.kind == "void" and op.hold_id is not None
            ledger.void_hold(s, w.tenant_id, op.hold_id)


def _worker(w: World, wallets: list[str], history: History, retries: Retries, i: int,
            deadline: float) -> None:
    rng = random.Random(SEED * 1000 + i)
    for n in range(OPS_PER_WORKER):
        if time.monotonic() > deadline:
            break
        kind = rng.choice(MIX)
        a, b = rng.sample(wallets, 2)
        op = Op(i, n, kind, f"t12-{i}-{n}", a, b, rng.randint(1, 400))
        if kind == "read":
            snap = _snapshot(w.db, w.tenant_id)
            with history.lock:
                history.snapshots.append(snap)
            continue
        if kind in ("post", "void"):
            with history.lock:
                free = sorted(set(history.holds) - history.claimed)
                if not free:
                    continue
                op.hold_id = rng.choice(free)
                history.claimed.add(op.hold_id)
                op.a, held = history.holds[op.hold_id]
            op.amount = rng.randint(1, held) if kind == "post" else 0
        try:
            with_retries(lambda op=op: _apply(w, op), retries)
        except AllegianceError as exc:
            op.status, op.code = "fail", exc.code
        except DBAPIError as exc:  # the outcome is unknown: resolved by the final read
            op.status, op.code = "info", type(getattr(exc, "orig", exc)).__name__
        else:
            op.status = "ok"
        history.add(op)
        if op.status == "ok" and kind == "hold":
            assert op.hold_id is not None
            with history.lock:
                history.holds[op.hold_id] = (op.a, op.amount)


def _effects(op: Op) -> dict[str, int]:
    """What an acknowledged journal-writing op does to posted balances (wallets only)."""
    if op.kind == "earn":
        return {op.a: op.amount}
    if op.kind == "redeem":
        return {op.a: -op.amount}
    if op.kind == "transfer":
        return {op.a: -op.amount, op.b: op.amount}
    if op.kind == "post":
        return {op.a: -op.posted}
    return {}


def _resolve_info(db: Database, tenant_id: str, history: History, ops: list[Op]) -> int:
    """Ops of unknown outcome, read back: applied once they become ``ok`` (with what they
    wrote), never applied they become ``fail``. Returns how many match neither (found twice)."""
    unresolved = 0
    with db.read() as s:
        for op in ops:
            if op.kind in ("earn", "redeem", "transfer"):
                rows = s.execute(text("SELECT id, seq FROM journal_entry WHERE tenant_id = :t "
                                      "AND entry_key = :k"), {"t": tenant_id, "k": op.key}).all()
                if len(rows) == 1:
                    op.entry_id, op.seq = rows[0][0], int(rows[0][1])
            elif op.kind == "hold":
                rows = s.execute(text("SELECT id, amount FROM hold WHERE tenant_id = :t "
                                      "AND hold_key = :k"), {"t": tenant_id, "k": op.key}).all()
                if len(rows) == 1:
                    op.hold_id = rows[0][0]
                    history.holds[op.hold_id] = (op.a, op.amount)
            else:
                rows = s.execute(text(
                    "SELECT h.posted_amount, h.resolved_entry_id, e.seq FROM hold h LEFT JOIN "
                    "journal_entry e ON e.tenant_id = h.tenant_id AND e.id = h.resolved_entry_id "
                    "WHERE h.tenant_id = :t AND h.id = :h AND h.state = :state"),
                    {"t": tenant_id, "h": op.hold_id,
                     "state": "posted" if op.kind == "post" else "voided"}).all()
                if len(rows) == 1:
                    op.posted, op.entry_id = int(rows[0][0]), rows[0][1]
                    op.seq = None if rows[0][2] is None else int(rows[0][2])
            if len(rows) > 1:
                unresolved += 1
            op.status = "ok" if len(rows) == 1 else "fail"
    return unresolved


def check_history(db: Database, tenant_id: str, wallets: list[str], first_seq: int,
                  history: History, final: tuple[int, dict[str, tuple[int, int, int, int]]]
                  ) -> Counter[str]:
    """Everything T12 checks, as counts of problems (all 0 when the history is right)."""
    problems: Counter[str] = Counter()
    _, accounts_now = final
    acked = [op for op in history.ops if op.status == "ok"]
    writing = {op.entry_id: op for op in acked if op.entry_id is not None}
    problems["entry_reused"] = len([op for op in acked if op.entry_id is not None]) - len(writing)
    with db.read() as s:
        journal = {r[0]: (int(r[1]), r[2]) for r in s.execute(text(
            "SELECT id, seq, entry_key FROM journal_entry WHERE tenant_id = :t AND seq > :s"),
            {"t": tenant_id, "s": first_seq})}
        postings: dict[str, Counter[tuple[str, str, int]]] = defaultdict(Counter)
        for entry_id, account_id, side, amount in s.execute(text(
                "SELECT entry_id, account_id, side, amount FROM posting WHERE tenant_id = :t"),
                {"t": tenant_id}):
            postings[entry_id][(account_id, side, int(amount))] += 1
        hold_states = {r[0]: (r[1], int(r[2])) for r in s.execute(text(
            "SELECT id, state, posted_amount FROM hold WHERE tenant_id = :t"), {"t": tenant_id})}

    # Each acknowledged journal op applied once, with its postings; nothing else written.
    failed_keys = {op.key for op in history.ops if op.status == "fail"}
    problems["acked_missing"] = len(set(writing) - set(journal))
    problems["unacknowledged_entries"] = len(set(journal) - set(writing))
    problems["failed_applied"] = sum(1 for _, key in journal.values() if key in failed_keys)
    for entry_id, op in writing.items():
        if entry_id not in journal:
            continue
        wanted = Counter({(acct, "D" if delta < 0 else "C", abs(delta)): 1
                          for acct, delta in _effects(op).items()})
        got = Counter({k: v for k, v in postings[entry_id].items() if k[0] in wallets})
        if journal[entry_id][0] != op.seq or got != wanted:
            problems["entry_differs"] += 1

    # Serial replay in commit (journal number) order.
    model = {wallet_id: OPENING for wallet_id in wallets}
    after: dict[int, dict[str, int]] = {first_seq: dict(model)}
    for op in sorted(writing.values(), key=lambda o: o.seq or 0):
        for wallet_id, delta in _effects(op).items():
            model[wallet_id] += delta
            if model[wallet_id] < 0:
                problems["replay_overdraws"] += 1
        after[op.seq or 0] = dict(model)
    pending: Counter[str] = Counter()
    resolved = {op.hold_id: op for op in acked if op.kind in ("post", "void")}
    for hold_id, (wallet_id, amount) in history.holds.items():
        state, posted = hold_states.get(hold_id, ("missing", 0))
        done = resolved.get(hold_id)
        expected = "pending" if done is None else ("posted" if done.kind == "post" else "voided")
        if (state, posted) != (expected, done.posted if done else 0):
            problems["hold_state"] += 1
        if done is None:
            pending[wallet_id] += amount
    problems["unacknowledged_holds"] = len(set(hold_states) - set(history.holds))
    for wallet_id in wallets:
        dp, cp, dpend, _ = accounts_now[wallet_id]
        problems["final_posted"] += cp - dp != model[wallet_id]
        problems["final_pending"] += dpend != pending[wallet_id]

    # Every snapshot equals the serial replay after its newest journal number.
    seqs = sorted(after)
    for top, accounts in [*history.snapshots, final]:
        at = bisect.bisect_right(seqs, top)
        prefix = after[seqs[at - 1]] if at else None
        problems["snapshot"] += (
            prefix is None
            or sum(v[0] for v in accounts.values()) != sum(v[1] for v in accounts.values())
            or sum(v[2] for v in accounts.values()) != sum(v[3] for v in accounts.values())
            or any(accounts[x][1] - accounts[x][0] != prefix[x] for x in wallets)
            or any(accounts[x][1] - accounts[x][0] - accounts[x][2] < 0 for x in wallets))
    return problems


@pytest.mark.timeout(SECONDS + 900 if NIGHTLY else 300)
def test_t12_mixed_workload_matches_a_serial_replay(pg_db: Database) -> None:
    db = pg_db
    workers = min(WORKERS, connection_budget(db, WORKERS, least=8))
    w = build_world(db)
    wallets = [w.wallet(f"acc_{i:02d}") for i in range(ACCOUNTS)]
    first_seq = max(w.earn(wallet_id, OPENING).seq for wallet_id in wallets)
    history, retries = History(), Retries()
    started = time.monotonic()
    deadline = started + SECONDS

    def thread(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        _worker(w, wallets, history, retries, i, deadline)

    outcomes = run_threads(workers, thread, timeout=SECONDS + 120)
    elapsed = time.monotonic() - started
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, f"seed {SEED}: {errors[:3]!r}"

    # Final read phase: unknown outcomes read back, then the whole history checked.
    final = _snapshot(db, w.tenant_id)
    info = [op for op in history.ops if op.status == "info"]
    unresolved = _resolve_info(db, w.tenant_id, history, info)
    problems = check_history(db, w.tenant_id, wallets, first_seq, history, final)
    assert unresolved == 0, f"seed {SEED}: {unresolved} info ops applied more than once"
    assert not +problems, f"seed {SEED}: {dict(+problems)}"
    counts = assert_ledger_invariants(db)

    # Positive controls: the same checker on doctored histories must find each fault.
    controls = _positive_controls(db, w.tenant_id, wallets, first_seq, history, final)
    assert all(controls.values()), f"seed {SEED}: a doctored history passed: {controls}"

    ops = history.ops
    statuses = Counter(op.status for op in ops)
    total = len(ops) + len(history.snapshots)
    figures.record(
        "T12", engine="postgres", nightly=NIGHTLY, seed=SEED, accounts=ACCOUNTS,
        workers=workers, ops=total, ops_per_second=round(total / elapsed, 1),
        seconds=round(elapsed, 2), by_kind=dict(Counter(op.kind for op in ops)),
        ok=statuses["ok"], fail=statuses["fail"], info=len(info), unresolved_info=unresolved,
        fail_codes=dict(Counter(op.code for op in ops if op.status == "fail")),
        snapshots=len(history.snapshots) + 1, snapshot_mismatches=problems["snapshot"],
        model_mismatches=sum(problems.values()), retries=retries.count,
        entries=counts["entries"], positive_controls_detected=controls,
    )


def _positive_controls(db: Database, tenant_id: str, wallets: list[str], first_seq: int,
                       history: History, final: tuple[int, dict[str, tuple[int, int, int, int]]]
                       ) -> dict[str, bool]:
    """Doctor a copy of the history in the ways a broken ledger would look (an acknowledged
    write lost, a refused write applied, an amount changed, a snapshot off by one point) and
    report whether the checker noticed each."""
    detected: dict[str, bool] = {}
    earns = [op for op in history.ops if op.status == "ok" and op.kind == "earn"]

    def doctored(change: str) -> History:
        copy = History(ops=[replace(op) for op in history.ops], holds=dict(history.holds),
                       snapshots=list(history.snapshots))
        target = next(op for op in copy.ops if op.key == earns[len(earns) // 2].key)
        if change == "acked_lost":  # acknowledged but, per the database, never written
            target.entry_id = "txn_never_written"
        elif change == "refused_applied":  # the database has it, the client was refused
            target.status, target.entry_id = "fail", None
        elif change == "amount":
            target.amount += 1
        else:
            top, accounts = copy.snapshots[len(copy.snapshots) // 2]
            wallet_id = wallets[0]
            dp, cp, dpend, cpend = accounts[wallet_id]
            copy.snapshots[len(copy.snapshots) // 2] = (
                top, {**accounts, wallet_id: (dp, cp + 1, dpend, cpend)})
        return copy

    for change in ("acked_lost", "refused_applied", "amount", "snapshot"):
        found = check_history(db, tenant_id, wallets, first_seq, doctored(change), final)
        detected[change] = sum(found.values()) > 0
    return detected
