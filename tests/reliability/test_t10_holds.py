"""T10: two-phase holds resolve at most once; partial posts release the remainder exactly;
expiry follows the injected clock."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from allegiance import ledger
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.conftest import World, build_world
from tests.reliability.harness import Retries, engine_name, run_threads, with_retries
from tests.support import figures
from tests.support.broken_ledger import read_check_write_void
from tests.support.invariants import assert_ledger_invariants

RACE_ROUNDS = 5
RACERS = 16


def _hold(w: World, wallet_id: str, amount: int, expires_at: datetime | None = None) -> str:
    with w.db.transaction() as s:
        hold, created = ledger.create_hold(s, w.tenant_id, ledger.HoldRequest(
            w.program_id, wallet_id, w.redeemed_id, w.unit_id, amount, expires_at=expires_at))
        assert created
        return hold.id


def _counters(w: World, account_id: str) -> tuple[int, int, int, int]:
    with w.db.read() as s:
        a = ledger.get_account(s, w.tenant_id, account_id)
        return (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)


Resolver = Callable[[Session, str, str, int], object]


def real_resolver(s: Session, tenant_id: str, hold_id: str, i: int) -> object:
    if i % 2 == 0:
        return ledger.post_hold(s, tenant_id, hold_id, 150 + i)
    return ledger.void_hold(s, tenant_id, hold_id)


def broken_resolver(s: Session, tenant_id: str, hold_id: str, i: int) -> object:
    # The pause must outlast the racers' start-up skew (new pooled connections, a loaded
    # machine), or they never overlap and the broken resolver looks correct.
    read_check_write_void(s, tenant_id, hold_id, pause=0.3)
    return None


@dataclass
class Race:
    retries: Retries = field(default_factory=Retries)
    resolutions: list[int] = field(default_factory=list)
    winners: list[str] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)


def race_round(db: Database, resolver: Resolver, race: Race, round_no: int) -> None:
    """One hold, RACERS threads resolving it at once; asserts exactly one resolution."""
    w = build_world(db)
    wallet_id = w.wallet("acc_race")
    w.earn(wallet_id, 1000)
    hold_id = _hold(w, wallet_id, 400)

    def racer(i: int, barrier: threading.Barrier) -> str:
        barrier.wait()

        def attempt() -> None:
            with w.db.transaction() as s:
                resolver(s, w.tenant_id, hold_id, i)

        try:
            with_retries(attempt, race.retries)
            return "ok"
        except AllegianceError as exc:
            return exc.code
        except DBAPIError as exc:  # e.g. a CHECK constraint refusing a second release
            return f"db_error:{type(exc.orig).__name__}"

    outcomes = run_threads(RACERS, racer, timeout=60)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, f"round {round_no}: {errors[:3]!r}"
    race.codes.update(outcomes)
    winners = outcomes.count("ok")
    race.resolutions.append(winners)
    assert set(outcomes) <= {"ok", "hold_already_resolved"}, f"round {round_no}: {outcomes}"
    assert winners == 1, f"round {round_no}: {winners} resolutions of one hold"
    with db.read() as s:
        hold = ledger.get_hold(s, w.tenant_id, hold_id)
        state, posted = hold.state, hold.posted_amount
    wallet = _counters(w, wallet_id)
    redeemed = _counters(w, w.redeemed_id)
    assert wallet[2] == 0 and redeemed[3] == 0, "the reservation was not released"
    assert wallet[0] == posted and redeemed[1] == posted
    assert (state == "voided" and posted == 0) or (state == "posted" and posted > 0)
    race.winners.append(state)


def test_t10_concurrent_post_and_void_resolve_once(db: Database) -> None:
    started = time.monotonic()
    race = Race()
    for round_no in range(RACE_ROUNDS):
        race_round(db, real_resolver, race, round_no)
    figures.record(
        f"T10.race.{engine_name(db)}", rounds=RACE_ROUNDS, racers=RACERS,
        resolutions_per_round=race.resolutions, winners=race.winners, codes=dict(race.codes),
        retries=race.retries.count, seconds=round(time.monotonic() - started, 2),
    )
    assert_ledger_invariants(db)


def test_t10p_positive_control_read_check_write_resolves_twice(pg_db: Database) -> None:
    """The race harness must fail a resolver that checks the state in Python (PostgreSQL)."""
    race = Race()
    caught: list[str] = []
    for round_no in range(3):
        try:
            race_round(pg_db, broken_resolver, race, round_no)
        except AssertionError as exc:
            caught.append(str(exc).splitlines()[0][:200])
            break
    figures.record("T10p", rounds=len(race.resolutions), resolutions_per_round=race.resolutions,
                   codes=dict(race.codes), detected=bool(caught))
    assert caught, f"the harness passed a broken resolver: {race}"
    assert max(race.resolutions) > 1, race.resolutions


def test_t10_partial_post_releases_remainder_exactly(world: World) -> None:
    w = world
    wallet_id = w.wallet("acc_partial")
    w.earn(wallet_id, 500)
    hold_id = _hold(w, wallet_id, 300)
    before = w.balance(wallet_id)
    assert (before.posted, before.pending_out, before.available) == (500, 300, 200)
    with w.db.transaction() as s:
        hold = ledger.post_hold(s, w.tenant_id, hold_id, 120)
        assert (hold.state, hold.posted_amount) == ("posted", 120)
    after = w.balance(wallet_id)
    assert (after.posted, after.pending_out, after.available) == (380, 0, 380)
    assert _counters(w, w.redeemed_id) == (0, 120, 0, 0)
    with pytest.raises(AllegianceError) as again, w.db.transaction() as s:
        ledger.post_hold(s, w.tenant_id, hold_id, 10)
    assert again.value.code == "hold_already_resolved"
    assert w.balance(wallet_id) == after
    figures.record("T10.partial", held=300, posted=120, released=300 - 120,
                   available_after=after.available)


def test_t10_expiry_follows_the_injected_clock(db: Database) -> None:
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    with clock.frozen(start) as frozen:
        w = build_world(db)
        wallet_id = w.wallet("acc_expiry")
        w.earn(wallet_id, 1000)
        deadlines = [start + timedelta(minutes=m) for m in (5, 10, 15, 60, 120)]
        holds = [_hold(w, wallet_id, 50, d) for d in deadlines]
        forever = _hold(w, wallet_id, 50)  # no deadline: never expires
        assert w.balance(wallet_id).available == 1000 - 6 * 50

        frozen.set(start + timedelta(minutes=4, seconds=59))
        with db.transaction() as s:
            assert ledger.expire_holds(s) == 0
        frozen.set(start + timedelta(minutes=15))  # exactly at the third deadline
        with db.transaction() as s:
            first = ledger.expire_holds(s)
        assert first == 3
        with db.transaction() as s:
            assert ledger.expire_holds(s) == 0  # idempotent
        assert w.balance(wallet_id).available == 1000 - 3 * 50

        # Posting a hold past its deadline fails, even before the job has expired it.
        frozen.set(start + timedelta(minutes=61))
        with pytest.raises(AllegianceError) as late, db.transaction() as s:
            ledger.post_hold(s, w.tenant_id, holds[3])
        assert late.value.code == "hold_expired"
        # Posting one the job already expired answers that it is resolved or expired.
        with pytest.raises(AllegianceError) as resolved, db.transaction() as s:
            ledger.post_hold(s, w.tenant_id, holds[0])
        assert resolved.value.code in ("hold_expired", "hold_already_resolved")

        frozen.set(start + timedelta(days=365))
        with db.transaction() as s:
            second = ledger.expire_holds(s)
        assert second == 2
        with db.read() as s:
            states = [ledger.get_hold(s, w.tenant_id, h).state for h in holds]
            assert ledger.get_hold(s, w.tenant_id, forever).state == "pending"
        assert states == ["expired"] * 5
        bal = w.balance(wallet_id)
        assert (bal.posted, bal.available) == (1000, 950)
    figures.record(f"T10.expiry.{engine_name(db)}", holds=6, expired_first_run=first,
                   expired_second_run=second, expected=[3, 2])
    assert_ledger_invariants(db)
