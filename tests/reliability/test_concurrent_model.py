"""Invariant 10 under concurrency: a mixed workload (earn, redeem, transfer, hold, post, void)
from many threads on a few wallets with expiring lots. Every acknowledged operation must be in
the final state and every refused one absent: each wallet's posted balance equals its opening
balance plus the effects of the acknowledged operations, its pending amount equals the holds no
one resolved, and its open lots add up to its balance."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select

from allegiance import ledger
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.ledger.models import Lot
from tests.conftest import World, build_world
from tests.reliability.harness import (
    LOOP_BUDGET,
    Retries,
    engine_name,
    run_threads,
    with_retries,
)
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

SEED = int(os.environ.get("ALLEGIANCE_CONCURRENT_SEED", "10"))
OPENING = 2000
OPS_PER_THREAD = 25


@dataclass
class Acks:
    """What the threads were told succeeded (thread-safe)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    posted: Counter[str] = field(default_factory=Counter)
    holds: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (wallet, amount)
    resolved: dict[str, str] = field(default_factory=dict)  # hold id -> posted / voided
    codes: Counter[str] = field(default_factory=Counter)

    def note(self, code: str) -> None:
        with self.lock:
            self.codes[code] += 1


def _entry(w: World, lines: tuple[ledger.Line, ...], kind: str) -> ledger.EntryRequest:
    return ledger.EntryRequest(program_id=w.program_id, kind=kind, lines=lines)


def _worker(w: World, wallets: list[str], acks: Acks, retries: Retries, seed: int) -> None:
    rng = random.Random(seed)
    D, C, u = ledger.Side.DEBIT, ledger.Side.CREDIT, w.unit_id
    deadline = time.monotonic() + LOOP_BUDGET
    for _ in range(OPS_PER_THREAD):
        if time.monotonic() > deadline:
            break
        op = rng.choice(["earn", "redeem", "transfer", "transfer", "hold", "resolve", "resolve"])
        a, b = rng.sample(wallets, 2)
        amount = rng.randint(1, 300)
        effect: dict[str, int] = {}

        def run(op: str = op, a: str = a, b: str = b, amount: int = amount) -> object:
            with w.db.transaction() as s:
                if op == "earn":
                    return ledger.post_entry(s, w.tenant_id, _entry(
                        w, (ledger.Line(w.issued_id, u, D, amount), ledger.Line(a, u, C, amount)),
                        "earn"))
                if op == "redeem":
                    return ledger.post_entry(s, w.tenant_id, _entry(
                        w, (ledger.Line(a, u, D, amount), ledger.Line(w.redeemed_id, u, C, amount)),
                        "redeem"))
                if op == "transfer":
                    return ledger.transfer(s, w.tenant_id, from_wallet_id=a, to_wallet_id=b,
                                           amount=amount)
                if op == "hold":
                    hold, _ = ledger.create_hold(s, w.tenant_id, ledger.HoldRequest(
                        w.program_id, a, w.redeemed_id, u, amount))
                    return hold.id
                with acks.lock:
                    open_holds = sorted(set(acks.holds) - set(acks.resolved))
                if not open_holds:
                    return None
                hold_id = rng.choice(open_holds)
                if rng.random() < 0.5:
                    hold = ledger.post_hold(s, w.tenant_id, hold_id,
                                            rng.randint(1, acks.holds[hold_id][1]))
                    return (hold_id, "posted", hold.posted_amount)
                ledger.void_hold(s, w.tenant_id, hold_id)
                return (hold_id, "voided", 0)

        try:
            out = with_retries(run, retries)
        except AllegianceError as exc:
            acks.note(exc.code)
            continue
        acks.note("ok")
        if op == "earn":
            effect = {a: amount}
        elif op == "redeem":
            effect = {a: -amount}
        elif op == "transfer":
            effect = {a: -amount, b: amount}
        with acks.lock:
            if op == "hold":
                assert isinstance(out, str)
                acks.holds[out] = (a, amount)
            elif op == "resolve" and out is not None:
                assert isinstance(out, tuple)
                hold_id, state, posted = out
                assert hold_id not in acks.resolved, f"hold {hold_id} resolved twice"
                acks.resolved[hold_id] = state
                effect = {acks.holds[hold_id][0]: -posted}
            for wallet_id, delta in effect.items():
                acks.posted[wallet_id] += delta


def test_concurrent_workload_matches_acknowledged_operations(db: Database) -> None:
    threads = 6 if db.is_sqlite else 12
    w = build_world(db, expiry={"kind": "after_months", "months": 12})
    wallets = [w.wallet(f"acc_{i}") for i in range(4)]
    for wallet_id in wallets:
        w.earn(wallet_id, OPENING)
    acks, retries = Acks(), Retries()
    started = time.monotonic()

    def thread(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        _worker(w, wallets, acks, retries, SEED * 1000 + i)

    outcomes = run_threads(threads, thread, timeout=LOOP_BUDGET + 30)
    elapsed = time.monotonic() - started
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, f"seed {SEED}: {errors[:3]!r}"

    pending = Counter[str]()
    for hold_id, (wallet_id, amount) in acks.holds.items():
        if hold_id not in acks.resolved:
            pending[wallet_id] += amount
    with db.read() as s:
        lots = dict(s.execute(select(Lot.account_id, func.sum(Lot.remaining)).where(
            Lot.tenant_id == w.tenant_id).group_by(Lot.account_id)).all())
        for wallet_id in wallets:
            bal = ledger.balance_of(ledger.get_account(s, w.tenant_id, wallet_id))
            expected = OPENING + acks.posted[wallet_id]
            assert bal.posted == expected, (
                f"seed {SEED}: {wallet_id} posted {bal.posted}, acknowledged ops say {expected}")
            assert bal.pending_out == pending[wallet_id], (wallet_id, bal, pending[wallet_id])
            assert bal.available >= 0
            assert lots.get(wallet_id, 0) == bal.posted, (wallet_id, lots.get(wallet_id), bal)
        states = Counter(ledger.get_hold(s, w.tenant_id, h).state for h in acks.holds)
    assert states["posted"] + states["voided"] == len(acks.resolved)
    counts = assert_ledger_invariants(db)
    figures.record(
        f"concurrent_model.{engine_name(db)}", threads=threads, seed=SEED,
        ops=sum(acks.codes.values()), codes=dict(acks.codes), holds=len(acks.holds),
        holds_resolved=len(acks.resolved), retries=retries.count,
        model_mismatches=0, entries=counts["entries"], seconds=round(elapsed, 2),
    )
