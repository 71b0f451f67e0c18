"""T1/T2: a stateful model of the ledger's service layer (Hypothesis ``RuleBasedStateMachine``).

A pure Python model predicts the result code and the four counters of every account after each
operation: earn, redeem, transfer, hold create / post (full or partial) / void, reversal (full or
partial), manual adjustment, and repeated business keys. After every step the model's counters
must equal the database's, and ``ledger.balance_of`` must agree; at the end of each example the
tenant reconciles and its hash chain verifies; at the end of the test every ledger invariant holds.

Each example runs in a fresh tenant of one database (tenants are isolated), which is far faster
than a database per example.

Profiles (``ALLEGIANCE_HYPOTHESIS_PROFILE``): ``ci`` (default, derandomized) runs 60 examples x
30 steps on SQLite and 25 x 30 on PostgreSQL; ``nightly`` runs 200 x 50 and 100 x 50, randomized.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from allegiance import ledger
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.ledger.models import Lot
from tests.conftest import build_world
from tests.reliability.harness import engine_name
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

PROFILE = os.environ.get("ALLEGIANCE_HYPOTHESIS_PROFILE", "ci")
SIZES = {
    ("ci", "sqlite"): (60, 30),
    ("ci", "postgres"): (25, 30),
    ("nightly", "sqlite"): (200, 50),
    ("nightly", "postgres"): (100, 50),
}
WALLETS = ("w0", "w1", "w2")
KEYS = ("k0", "k1", "k2", "k3")
amounts = st.integers(min_value=1, max_value=400)
maybe_key = st.one_of(st.none(), st.sampled_from(KEYS))
pick = st.integers(min_value=0, max_value=10_000)
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Acct:
    normal: str
    no_overdraw: bool
    floor: int = 0
    dp: int = 0
    cp: int = 0
    dpend: int = 0
    cpend: int = 0

    @property
    def posted(self) -> int:
        return self.cp - self.dp if self.normal == "credit" else self.dp - self.cp

    @property
    def available(self) -> int:
        return self.posted - (self.dpend if self.normal == "credit" else self.cpend)

    def counters(self) -> tuple[int, int, int, int]:
        return (self.dp, self.cp, self.dpend, self.cpend)


@dataclass
class MEntry:
    entry_id: str
    lines: list[tuple[str, str, int]]  # (account name, side D/C, amount) for line 1, 2, …
    reversed: Counter[int] = field(default_factory=Counter)


@dataclass
class MHold:
    hold_id: str
    wallet: str
    amount: int
    expires_at: datetime | None
    state: str = "pending"


@dataclass
class Stats:
    examples: int = 0
    ops: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    by_op: Counter[str] = field(default_factory=Counter)
    checks: int = 0


def make_machine(db: Database, stats: Stats,
                 frozen: clock.FrozenClock) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        @initialize(floor=st.sampled_from([0, 0, -150]))
        def setup(self, floor: int) -> None:
            stats.examples += 1
            frozen.set(START)  # holds' deadlines follow the injected clock
            self.floor = floor
            w = build_world(db, expiry={"kind": "after_months", "months": 12},
                            negative_floor=floor)
            self.w = w
            self.t = w.tenant_id
            self.ids: dict[str, str] = {"issued": w.issued_id, "redeemed": w.redeemed_id}
            self.accts: dict[str, Acct] = {
                "issued": Acct("debit", False), "redeemed": Acct("credit", False),
                "adjustments": Acct("debit", False),
            }
            with db.transaction() as s:
                self.ids["adjustments"] = ledger.program_account(
                    s, self.t, w.program_id, w.unit_id, "adjustments").id
                for name in WALLETS:
                    self.ids[name] = ledger.wallet(
                        s, self.t, w.program_id, w.unit_id, "account", f"acc_{name}").id
                    self.ids[f"recv:{name}"] = ledger.receivable(
                        s, self.t, w.program_id, w.unit_id, "account", f"acc_{name}").id
                    self.accts[name] = Acct("credit", True, floor)
                    self.accts[f"recv:{name}"] = Acct("debit", False)
            self.names = {v: k for k, v in self.ids.items()}
            self.entries: list[MEntry] = []
            self.keys: dict[str, str] = {}
            self.holds: list[MHold] = []
            for name in WALLETS:  # start funded, so most operations have something to move
                lines = [("issued", "D", 1000), (name, "C", 1000)]
                self.entries.append(MEntry(w.earn(self.ids[name], 1000).entry_id, lines))
                self._apply(lines)

        # -- model helpers --------------------------------------------------------------

        def _overdraws(self, lines: list[tuple[str, str, int]]) -> bool:
            net: Counter[str] = Counter()
            for name, side, amount in lines:
                net[name] += amount if side == "D" else -amount
            for name, debit_minus_credit in net.items():
                acct = self.accts[name]
                if not acct.no_overdraw:
                    continue
                lowers = debit_minus_credit > 0 if acct.normal == "credit" else debit_minus_credit < 0
                if lowers and acct.available - abs(debit_minus_credit) < acct.floor:
                    return True
            return False

        def _apply(self, lines: list[tuple[str, str, int]]) -> None:
            for name, side, amount in lines:
                if side == "D":
                    self.accts[name].dp += amount
                else:
                    self.accts[name].cp += amount

        def _expect_entry(self, lines: list[tuple[str, str, int]], key: str | None) -> str:
            """The result code a plain entry gets, before it is sent."""
            if key is not None and key in self.keys:
                return "replay"
            if self._overdraws(lines):
                return "insufficient_funds"
            return "ok"

        def _run(self, op: str, expected: str, fn: object) -> object:
            stats.ops += 1
            stats.by_op[op] += 1
            result: object = None
            try:
                with db.transaction() as s:
                    result = fn(s)  # type: ignore[operator]
                got = "ok"
            except AllegianceError as exc:
                got = exc.code
            stats.codes[got] += 1
            want = "ok" if expected == "replay" else expected
            assert got == want, f"{op}: model expected {want!r}, ledger answered {got!r}"
            return result

        def _post_plain(self, op: str, lines: list[tuple[str, str, int]], key: str | None,
                        kind: str) -> None:
            expected = self._expect_entry(lines, key)
            request = ledger.EntryRequest(
                program_id=self.w.program_id, kind=kind, entry_key=key,
                lines=tuple(ledger.Line(self.ids[n], self.w.unit_id, ledger.Side(side), a)
                            for n, side, a in lines))
            result = self._run(op, expected, lambda s: ledger.post_entry(s, self.t, request))
            self._after_entry(expected, result, lines, key)

        def _after_entry(self, expected: str, result: object,
                         lines: list[tuple[str, str, int]], key: str | None) -> None:
            if expected == "replay":
                assert isinstance(result, ledger.EntryResult) and not result.created
                assert key is not None and result.entry_id == self.keys[key]
            elif expected == "ok":
                assert isinstance(result, ledger.EntryResult) and result.created
                self._apply(lines)
                self.entries.append(MEntry(result.entry_id, list(lines)))
                if key is not None:
                    self.keys[key] = result.entry_id

        # -- rules ----------------------------------------------------------------------

        @rule(w=st.sampled_from(WALLETS), amount=amounts, key=maybe_key)
        def earn(self, w: str, amount: int, key: str | None) -> None:
            self._post_plain("earn", [("issued", "D", amount), (w, "C", amount)], key, "earn")

        @rule(w=st.sampled_from(WALLETS), amount=amounts, key=maybe_key)
        def redeem(self, w: str, amount: int, key: str | None) -> None:
            self._post_plain("redeem", [(w, "D", amount), ("redeemed", "C", amount)], key,
                             "redeem")

        @rule(a=st.sampled_from(WALLETS), b=st.sampled_from(WALLETS), amount=amounts,
              key=maybe_key)
        def transfer(self, a: str, b: str, amount: int, key: str | None) -> None:
            lines = [(a, "D", amount), (b, "C", amount)]
            expected = "invalid_entry" if a == b else self._expect_entry(lines, key)
            result = self._run("transfer", expected, lambda s: ledger.transfer(
                s, self.t, from_wallet_id=self.ids[a], to_wallet_id=self.ids[b], amount=amount,
                entry_key=key))
            self._after_entry(expected, result, lines, key)

        @rule(w=st.sampled_from(WALLETS), amount=st.integers(-300, 300).filter(bool))
        def adjust(self, w: str, amount: int) -> None:
            a = abs(amount)
            lines = ([("adjustments", "D", a), (w, "C", a)] if amount > 0
                     else [("adjustments", "C", a), (w, "D", a)])
            expected = "insufficient_funds" if self._overdraws(lines) else "ok"
            adj = self._run("adjust", expected, lambda s: ledger.request_adjustment(
                s, self.t, wallet_id=self.ids[w], amount=amount, reason="model",
                requested_by="user:model"))
            if expected == "ok":
                assert isinstance(adj, ledger.Adjustment) and adj.entry_id is not None
                self._apply(lines)
                self.entries.append(MEntry(adj.entry_id, lines))

        @rule(w=st.sampled_from(WALLETS), amount=amounts,
              minutes=st.one_of(st.none(), st.integers(1, 240)))
        def create_hold(self, w: str, amount: int, minutes: int | None) -> None:
            acct = self.accts[w]
            expected = "insufficient_funds" if acct.available - amount < acct.floor else "ok"
            expires_at = None if minutes is None else clock.now() + timedelta(minutes=minutes)
            out = self._run("hold", expected, lambda s: ledger.create_hold(s, self.t, ledger.HoldRequest(
                self.w.program_id, self.ids[w], self.ids["redeemed"], self.w.unit_id, amount,
                expires_at=expires_at)))
            if expected == "ok":
                assert isinstance(out, tuple)
                hold, created = out
                assert created
                self.accts[w].dpend += amount
                self.accts["redeemed"].cpend += amount
                self.holds.append(MHold(hold.id, w, amount, expires_at))

        @precondition(lambda self: bool(self.holds))
        @rule(i=pick, amount=st.one_of(st.none(), st.integers(1, 450)))
        def post_hold(self, i: int, amount: int | None) -> None:
            h = self.holds[i % len(self.holds)]
            take = h.amount if amount is None else amount
            expected = ("invalid_entry" if take > h.amount
                        else "hold_expired" if self._past_deadline(h)
                        else "hold_already_resolved" if h.state != "pending" else "ok")
            hold = self._run("post_hold", expected,
                             lambda s: ledger.post_hold(s, self.t, h.hold_id, amount))
            if expected == "ok":
                assert isinstance(hold, ledger.Hold) and hold.state == "posted"
                assert hold.posted_amount == take and hold.resolved_entry_id is not None
                h.state = "posted"
                self.accts[h.wallet].dpend -= h.amount
                self.accts["redeemed"].cpend -= h.amount
                lines = [(h.wallet, "D", take), ("redeemed", "C", take)]
                self._apply(lines)
                self.entries.append(MEntry(hold.resolved_entry_id, lines))

        @precondition(lambda self: bool(self.holds))
        @rule(i=pick)
        def void_hold(self, i: int) -> None:
            h = self.holds[i % len(self.holds)]
            expected = "hold_already_resolved" if h.state != "pending" else "ok"
            self._run("void_hold", expected, lambda s: ledger.void_hold(s, self.t, h.hold_id))
            if expected == "ok":
                h.state = "voided"
                self.accts[h.wallet].dpend -= h.amount
                self.accts["redeemed"].cpend -= h.amount

        def _past_deadline(self, h: MHold) -> bool:
            return h.expires_at is not None and h.expires_at <= clock.now()

        @rule(minutes=st.integers(1, 120))
        def tick(self, minutes: int) -> None:
            frozen.advance(timedelta(minutes=minutes))

        @rule()
        def expire_holds(self) -> None:
            due = [h for h in self.holds if h.state == "pending" and self._past_deadline(h)]
            expired = self._run("expire_holds", "ok", lambda s: ledger.expire_holds(s))
            assert expired == len(due), f"expire_holds expired {expired}, model {len(due)}"
            for h in due:
                h.state = "expired"
                self.accts[h.wallet].dpend -= h.amount
                self.accts["redeemed"].cpend -= h.amount

        @precondition(lambda self: bool(self.entries))
        @rule(i=pick, amount=st.one_of(st.none(), st.integers(1, 450)))
        def reverse(self, i: int, amount: int | None) -> None:
            e = self.entries[i % len(self.entries)]
            left = {n: a - e.reversed[n] for n, (_, _, a) in enumerate(e.lines, start=1)}
            if amount is None:
                wanted = {n: a for n, a in left.items() if a > 0}
                expected = "ok" if wanted else "reversal_exceeds_original"
            else:
                wanted = dict.fromkeys(left, amount)
                expected = "reversal_exceeds_original" if amount > min(left.values()) else "ok"
            lines: list[tuple[str, str, int]] = []
            sources: list[int] = []
            if expected == "ok":
                avail = {n: a.available for n, a in self.accts.items()}
                for n in sorted(wanted):
                    name, side, _ = e.lines[n - 1]
                    a = wanted[n]
                    if side == "C" and name in WALLETS:  # debit back a member wallet
                        take = min(a, max(0, avail[name] - self.floor))
                        avail[name] -= take
                        if take:
                            lines.append((name, "D", take))
                            sources.append(n)
                        if a - take:
                            lines.append((f"recv:{name}", "D", a - take))
                            sources.append(n)
                    else:
                        lines.append((name, "C" if side == "D" else "D", a))
                        sources.append(n)
                debits = sum(a for _, side, a in lines if side == "D")
                credits = sum(a for _, side, a in lines if side == "C")
                if len(lines) < 2 or debits != credits:
                    expected = "invalid_entry"
                elif self._overdraws(lines):
                    expected = "insufficient_funds"
            result = self._run("reverse", expected, lambda s: ledger.reverse_entry(
                s, self.t, e.entry_id, lines=None if amount is None else wanted))
            if expected == "ok":
                assert isinstance(result, ledger.EntryResult) and result.created
                self._apply(lines)
                for n, (_, _, a) in zip(sources, lines, strict=True):
                    e.reversed[n] += a
                self.entries.append(MEntry(result.entry_id, lines))

        # -- invariants -----------------------------------------------------------------

        @invariant()
        def matches_database(self) -> None:
            if not hasattr(self, "w"):
                return
            stats.checks += 1
            with db.read() as s:
                rows = {a.id: a for a in s.scalars(select(ledger.LedgerAccount).where(
                    ledger.LedgerAccount.tenant_id == self.t))}
                lots: dict[str, int] = dict(s.execute(
                    select(Lot.account_id, func.sum(Lot.remaining))
                    .where(Lot.tenant_id == self.t).group_by(Lot.account_id)).all())
                assert set(rows) == set(self.ids.values()), "an account appeared or vanished"
                for name, acct in self.accts.items():
                    row = rows[self.ids[name]]
                    stored = (row.debits_posted, row.credits_posted, row.debits_pending,
                              row.credits_pending)
                    assert stored == acct.counters(), (
                        f"{name}: database counters {stored} != model {acct.counters()}")
                    bal = ledger.balance_of(row)
                    assert (bal.posted, bal.available) == (acct.posted, acct.available), name
                    if name in WALLETS:
                        assert bal.available >= self.floor, f"{name} below its floor: {bal}"
                        open_lots = int(lots.get(self.ids[name], 0))
                        # Lots track points held; a wallet allowed below zero holds none.
                        assert self.floor < 0 or open_lots == acct.posted, (
                            f"{name}: open lots {open_lots} != posted balance {acct.posted}")

        def teardown(self) -> None:
            if not hasattr(self, "w"):
                return
            # Leave no pending hold behind: expire_holds looks at every tenant.
            with db.transaction() as s:
                for h in self.holds:
                    if h.state == "pending":
                        ledger.void_hold(s, self.t, h.hold_id)
            with db.read() as s:
                _, mismatches = ledger.reconcile(s, self.t)
                assert mismatches == [], mismatches
                assert ledger.verify_chain(s, self.t) is None
                entries = s.scalar(select(func.count()).select_from(ledger.JournalEntry).where(
                    ledger.JournalEntry.tenant_id == self.t))
            assert entries == len(self.entries), (entries, len(self.entries))

    return LedgerMachine


def _run_model(db: Database, test_id: str) -> None:
    engine = engine_name(db)
    examples, steps = SIZES[(PROFILE, engine)]
    stats = Stats()
    started = time.monotonic()
    with clock.frozen(START) as frozen:
        _run_machine(make_machine(db, stats, frozen), examples, steps)
    elapsed = time.monotonic() - started
    counts = assert_ledger_invariants(db)
    figures.record(
        test_id, engine=engine, profile=PROFILE, examples=stats.examples,
        steps_per_example=steps, ops_executed=stats.ops, invariant_checks=stats.checks,
        invariant_violations=0, result_code_mismatches=0, result_codes=dict(stats.codes),
        ops_by_kind=dict(stats.by_op), journal_entries=counts["entries"],
        seconds=round(elapsed, 2),
    )
    assert stats.ops > examples, "the state machine executed (almost) no operations"


def _run_machine(machine: type[RuleBasedStateMachine], examples: int, steps: int) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
            derandomize=PROFILE == "ci", print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_t1_stateful_model_sqlite(sqlite_db: Database) -> None:
    _run_model(sqlite_db, "T1")


def test_t2_stateful_model_postgres(pg_db: Database) -> None:
    _run_model(pg_db, "T2")
