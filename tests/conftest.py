"""Shared fixtures: a fresh migrated database per test (SQLite, and PostgreSQL where one
answers), a frozen clock, a tenant with a program, and an API client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from allegiance import ledger, tenants
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.support import databases, figures
from tests.support.invariants import assert_ledger_invariants

ENGINES = ("sqlite", "postgres")

# The CLI's jobs and reports lower their process's CPU priority; tests invoke them in-process,
# so that would renice the test worker for the rest of its run.
os.environ.setdefault("ALLEGIANCE_BATCH_NICE", "0")


_RUN_STARTED: str | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _RUN_STARTED
    _RUN_STARTED = datetime.now(UTC).isoformat(timespec="seconds")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    databases.drop_template()
    # The controlling process (not an xdist worker) writes which T-tests this run measured.
    if _RUN_STARTED is not None and not hasattr(session.config, "workerinput"):
        figures.summarize_run(_RUN_STARTED, int(exitstatus))


def _skip_or_fail_without_postgres() -> None:
    if databases.postgres_available():
        return
    if databases.require_postgres():
        pytest.fail("ALLEGIANCE_REQUIRE_POSTGRES=1 but no PostgreSQL answers at "
                    f"{databases.postgres_admin_url()}")
    pytest.skip("no PostgreSQL answers (set ALLEGIANCE_TEST_POSTGRES_URL)")


def make_database(engine: str, tmp_path: Path) -> Iterator[Database]:
    if engine == "sqlite":
        db = Database(databases.sqlite_url(tmp_path))
        try:
            yield db
        finally:
            db.dispose()
        return
    _skip_or_fail_without_postgres()
    url = databases.postgres_url()
    db = Database(url)
    try:
        yield db
    finally:
        db.dispose()
        databases.drop_postgres(url)


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh migrated database; tests using it run on SQLite and on PostgreSQL."""
    yield from make_database(request.param, tmp_path)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    yield from make_database("sqlite", tmp_path)


@pytest.fixture
def pg_db(tmp_path: Path) -> Iterator[Database]:
    yield from make_database("postgres", tmp_path)


@pytest.fixture
def frozen_clock() -> Iterator[clock.FrozenClock]:
    with clock.frozen(datetime(2026, 1, 15, 12, 0, tzinfo=UTC)) as c:
        yield c


@dataclass
class World:
    """A tenant with one program, a points unit and the usual program accounts."""

    db: Database
    tenant_id: str
    program_id: str
    unit_id: str
    issued_id: str
    redeemed_id: str

    def wallet(self, owner_id: str, owner_type: str = "account") -> str:
        with self.db.transaction() as s:
            return ledger.wallet(s, self.tenant_id, self.program_id, self.unit_id, owner_type,
                                 owner_id).id

    def earn(self, wallet_id: str, amount: int, key: str | None = None) -> ledger.EntryResult:
        with self.db.transaction() as s:
            return ledger.post_entry(s, self.tenant_id, ledger.EntryRequest(
                program_id=self.program_id, kind="earn", entry_key=key,
                lines=(ledger.Line(self.issued_id, self.unit_id, ledger.Side.DEBIT, amount),
                       ledger.Line(wallet_id, self.unit_id, ledger.Side.CREDIT, amount))))

    def balance(self, wallet_id: str) -> ledger.Balance:
        with self.db.read() as s:
            return ledger.balance_of(ledger.get_account(s, self.tenant_id, wallet_id))


def build_world(db: Database, expiry: dict[str, object] | None = None,
                negative_floor: int = 0) -> World:
    with db.transaction() as s:
        t = tenants.create_tenant(s, "Test tenant")
        p = tenants.create_program(s, t.id, code="main", name="Main", base_currency="USD")
        u = tenants.create_unit(s, t.id, p.id, code="points", name="Points", kind="points",
                                value_in_base="0.01", expiry_policy=expiry or {"kind": "never"},
                                negative_floor=negative_floor)
        issued = ledger.program_account(s, t.id, p.id, u.id, "issued")
        redeemed = ledger.program_account(s, t.id, p.id, u.id, "redeemed", normal="credit")
        return World(db, t.id, p.id, u.id, issued.id, redeemed.id)


@pytest.fixture
def world(db: Database) -> Iterator[World]:
    w = build_world(db)
    yield w
    assert_ledger_invariants(db)
