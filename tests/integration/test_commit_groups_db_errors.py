"""Group commit (``kit.db.GroupCommit``) when a unit of work fails *in the database*: a unique
violation, a CHECK constraint, a refusal raised by a PL/pgSQL function inside a psycopg
pipeline — not a Python-side validation. On PostgreSQL such an error aborts the transaction it
happens in, so a unit must run in a savepoint of the group's transaction (or, as the group's
first unit, in the transaction itself: nothing else is in it yet) for its error to take only
its own writes with it: the other units of the group are written, and the group's COMMIT
does not fail with "the group's transaction was rolled back".

Each case puts two units in one group deterministically (``_two_in_one_group``: the first
unit waits inside its turn until the second has asked for the turn), on SQLite and on
PostgreSQL with ``ALLEGIANCE_GROUP_COMMIT=on``, with the failing unit first and second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from allegiance import ledger, tenants
from allegiance.kit import clock
from allegiance.kit.db import (
    Database,
    add_unique,
    driver_connection,
    is_check_violation,
    is_unique_violation,
    pipelined,
)
from allegiance.kit.errors import Conflict
from allegiance.kit.models import Tenant
from tests.conftest import World, build_world
from tests.integration.test_commit_groups import _group, _two_in_one_group, grouped_db
from tests.reliability.harness import count
from tests.support.invariants import assert_ledger_invariants

__all__ = ["grouped_db"]  # the fixture, shared with test_commit_groups

Body = Callable[[Any], None]


def _funded(w: World, owner: str, amount: int) -> str:
    wallet = w.wallet(owner)
    w.earn(wallet, amount)
    return wallet


def _redeem(w: World, wallet: str, amount: int, groups: list[int]) -> Body:
    """A unit that succeeds: a real redemption through the ledger."""
    def body(s: Any) -> None:
        groups.append(_group(w.db)._group)
        ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="redeem",
            lines=(ledger.Line(wallet, w.unit_id, ledger.Side.DEBIT, amount),
                   ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT, amount))))
    return body


def _duplicate_key(w: World, groups: list[int]) -> Body:
    """Writes, then inserts a row whose primary key exists: the database refuses it."""
    def body(s: Any) -> None:
        groups.append(_group(w.db)._group)
        tenants.create_tenant(s, "doomed")
        s.flush()
        s.execute(text("INSERT INTO tenant (id, name, status, created_at, settings) "
                       "SELECT id, name, status, created_at, settings FROM tenant "
                       "WHERE id = :id"), {"id": w.tenant_id})
    return body


def _overdraw(w: World, wallet: str, groups: list[int]) -> Body:
    """Writes, then overdraws a wallet by an unconditional UPDATE: the schema's CHECK
    constraint (``ck_ledger_account_overdraw``) refuses it."""
    def body(s: Any) -> None:
        groups.append(_group(w.db)._group)
        tenants.create_tenant(s, "doomed")
        s.flush()
        s.execute(text("UPDATE ledger_account SET debits_posted = debits_posted + 1000000 "
                       "WHERE tenant_id = :t AND id = :id"), {"t": w.tenant_id, "id": wallet})
    return body


def _refused_in_pipeline(w: World, groups: list[int]) -> Body:
    """Writes, then a statement refused by ``allegiance_refuse`` (SQLSTATE AL001) inside a
    psycopg pipeline, as a final last write's refusal is (``kit.placement``)."""
    def body(s: Any) -> None:
        groups.append(_group(w.db)._group)
        tenants.create_tenant(s, "doomed")
        s.flush()
        with pipelined(s), driver_connection(s) as conn:
            conn.execute("SELECT allegiance_refuse('refused', 'in the database')")
            conn.execute("SELECT 1").fetchone()
    return body


FAILURES: dict[str, tuple[Callable[..., Body], Callable[[BaseException], bool]]] = {
    "unique": (lambda w, wallet, groups: _duplicate_key(w, groups), is_unique_violation),
    "check": (_overdraw, is_check_violation),
    "refused": (lambda w, wallet, groups: _refused_in_pipeline(w, groups),
                lambda exc: "refused" in str(exc)),
}


@pytest.mark.parametrize("failing_first", [True, False], ids=["failing-first", "failing-second"])
@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_a_unit_failing_in_the_database_takes_only_its_own_writes(
        grouped_db: Database, kind: str, failing_first: bool) -> None:
    if kind == "refused" and grouped_db.is_sqlite:
        pytest.skip("allegiance_refuse is a PostgreSQL function")
    w = build_world(grouped_db)
    payer = _funded(w, "acc_payer", 100)
    victim = _funded(w, "acc_victim", 100)
    groups: list[int] = []
    make_failing, matches = FAILURES[kind]
    failing, good = make_failing(w, victim, groups), _redeem(w, payer, 30, groups)
    bodies = (failing, good) if failing_first else (good, failing)

    results = _two_in_one_group(grouped_db, *bodies)

    failed, succeeded = results if failing_first else results[::-1]
    assert succeeded is None, f"the good unit failed with the other's error: {succeeded!r}"
    assert isinstance(failed, Exception) and matches(failed), repr(failed)
    if not failing_first:  # the good unit opened the group, the failing one joined it
        assert groups[0] == groups[1], groups
    assert w.balance(payer).available == 70, "the good unit's redemption was not written"
    assert w.balance(victim).available == 100
    assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name = 'doomed'") == 0
    # the group (and the next one) still write
    with grouped_db.transaction() as s:
        tenants.create_tenant(s, "next")
    assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name = 'next'") == 1
    assert_ledger_invariants(grouped_db)


def test_a_first_unit_that_recovers_from_its_database_error_keeps_the_group(
        grouped_db: Database) -> None:
    """The group's first unit runs without a savepoint of the group's own; a database error it
    handles in a savepoint of its own (``add_unique``) leaves the group's transaction usable
    for itself and for the unit that joins it."""
    w = build_world(grouped_db)
    payer = _funded(w, "acc_payer", 100)
    groups: list[int] = []

    def recovering(s: Any) -> None:
        groups.append(_group(grouped_db)._group)
        twin = Tenant(id=w.tenant_id, name="twin", status="active",
                      created_at=clock.now(), settings={})
        with pytest.raises(Conflict):
            add_unique(s, twin, Conflict("exists"))
        tenants.create_tenant(s, "recovered")

    results = _two_in_one_group(grouped_db, recovering, _redeem(w, payer, 30, groups))
    assert results == [None, None], results
    assert groups[0] == groups[1], "one group"
    assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name = 'recovered'") == 1
    assert w.balance(payer).available == 70
    assert_ledger_invariants(grouped_db)
