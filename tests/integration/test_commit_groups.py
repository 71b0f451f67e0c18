"""Group commit (``kit.db.GroupCommit``): the writer threads of one process share COMMITs,
each unit of work in its own savepoint — on a file SQLite database by default, and on
PostgreSQL when asked (``ALLEGIANCE_GROUP_COMMIT=on``).

* many threads writing at once: every unit is durable when its ``transaction()`` returns,
  and fewer COMMITs than units were needed;
* a unit that fails is rolled back alone; the units grouped with it are written;
* a COMMIT that fails fails every unit of its group, and none of them was written;
* a transaction opened inside another one of the same thread joins its group;
* on PostgreSQL each unit runs under its own tenant (row-level security) inside the group.

Two units are put in one group deterministically: the first unit waits, inside its turn,
until the second thread has asked for the turn (a lock wrapper signals the request), so the
first leaves the group open for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from allegiance import tenants
from allegiance.kit.db import Database, GroupCommit
from allegiance.kit.settings import Settings, group_commit_choice
from tests.conftest import make_database
from tests.reliability.harness import count, run_threads


@pytest.fixture(params=["sqlite", "postgres"])
def grouped_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A file SQLite database (grouped by default) or PostgreSQL with group commit on."""
    for db in make_database(request.param, tmp_path):
        if not db.is_sqlite:
            url = db.url
            db.dispose()
            db = Database(url, group_commit=True)
        try:
            yield db
        finally:
            db.dispose()


def _group(db: Database) -> GroupCommit:
    group = db._group
    assert group is not None, "this database commits in groups"
    return group


def _count_commits(group: GroupCommit) -> list[int]:
    commits: list[int] = []
    original = group._commit

    def counting() -> None:
        commits.append(1)
        original()

    group._commit = counting  # type: ignore[method-assign]
    return commits


class _SignallingLock:
    """The group's mutex, signalling when a thread other than ``first`` asks for it."""

    def __init__(self, inner: Any, asked: threading.Event) -> None:
        self.inner = inner
        self.asked = asked
        self.first: int | None = None

    def acquire(self, *args: Any, **kw: Any) -> bool:
        if self.first is not None and threading.get_ident() != self.first:
            self.asked.set()
        return bool(self.inner.acquire(*args, **kw))

    def release(self) -> None:
        self.inner.release()


def _two_in_one_group(db: Database, first_body: Callable[[Any], None],
                      second_body: Callable[[Any], None],
                      tenant_ids: tuple[str | None, str | None] = (None, None)) -> list[Any]:
    """Run two units in one group: the first waits in its turn until the second asks."""
    group = _group(db)
    group.MAX_AGE = 60.0  # the group stays open while the second is queued
    asked = threading.Event()
    lock = _SignallingLock(group._mutex, asked)
    group._mutex = lock  # type: ignore[assignment]
    first_in = threading.Event()

    def first() -> None:
        lock.first = threading.get_ident()
        with db.transaction(tenant_ids[0]) as s:
            first_in.set()
            assert asked.wait(30), "the second unit never asked for its turn"
            first_body(s)

    def second() -> None:
        assert first_in.wait(30)
        with db.transaction(tenant_ids[1]) as s:
            second_body(s)

    def target(i: int, _barrier: threading.Barrier) -> None:
        (first if i == 0 else second)()

    return run_threads(2, target, timeout=60)


def _tenant(name: str) -> Callable[[Any], None]:
    def body(s: Any) -> None:
        tenants.create_tenant(s, name)
    return body


def test_concurrent_units_share_commits_and_are_all_durable(grouped_db: Database) -> None:
    commits = _count_commits(_group(grouped_db))

    def target(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        for n in range(10):
            with grouped_db.transaction() as s:
                tenants.create_tenant(s, f"t{i}-{n}")
            # durable and visible to a fresh reader as soon as transaction() returns
            assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name = :n",
                         n=f"t{i}-{n}") == 1

    results = run_threads(16, target, timeout=120)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name LIKE 't%-%'") == 160
    assert 0 < len(commits) <= 160


def test_a_failing_unit_is_rolled_back_alone(grouped_db: Database) -> None:
    def failing(s: Any) -> None:
        tenants.create_tenant(s, "doomed")
        s.flush()
        raise ValueError("the unit fails")

    results = _two_in_one_group(grouped_db, failing, _tenant("kept"))
    assert isinstance(results[0], ValueError)
    assert results[1] is None
    assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name = 'doomed'") == 0
    assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name = 'kept'") == 1


def test_a_failed_commit_fails_every_unit_of_its_group(grouped_db: Database) -> None:
    group = _group(grouped_db)
    original = group._open
    broken: list[int] = []

    def open_with_failing_commit() -> None:
        original()
        transaction = group._transaction

        class Failing:
            is_active = True

            def commit(self) -> None:
                broken.append(1)
                transaction.rollback()
                raise OSError("disk I/O error")

            def rollback(self) -> None:
                if transaction.is_active:
                    transaction.rollback()

        group._transaction = Failing()

    group._open = open_with_failing_commit  # type: ignore[method-assign]
    results = _two_in_one_group(grouped_db, _tenant("first"), _tenant("second"))
    assert broken == [1], "both units were committed by one COMMIT"
    assert all(isinstance(r, OSError) for r in results), results
    assert count(grouped_db,
                 "SELECT COUNT(*) FROM tenant WHERE name IN ('first', 'second')") == 0


def test_a_transaction_inside_another_joins_its_group(grouped_db: Database) -> None:
    with grouped_db.transaction() as outer:
        outer.execute(text("SELECT 1"))  # the outer unit holds the group's connection
        with grouped_db.transaction() as inner:
            tenants.create_tenant(inner, "inner")
        tenants.create_tenant(outer, "outer")
    assert count(grouped_db,
                 "SELECT COUNT(*) FROM tenant WHERE name IN ('inner', 'outer')") == 2


def test_memory_databases_do_not_group() -> None:
    db = Database("sqlite://")
    try:
        assert db._group is None
    finally:
        db.dispose()


def test_the_setting_chooses_group_commit_per_engine() -> None:
    assert group_commit_choice(Settings(group_commit="auto")) is None
    assert group_commit_choice(Settings(group_commit="on")) is True
    assert group_commit_choice(Settings(group_commit="off")) is False
    with pytest.raises(ValueError, match="group_commit"):
        Settings(group_commit="sometimes")  # type: ignore[arg-type]


def test_postgres_groups_only_when_asked(pg_db: Database) -> None:
    assert pg_db._group is None, "PostgreSQL commits each transaction alone by default"


def test_each_unit_of_a_postgres_group_runs_as_its_own_tenant(pg_db: Database) -> None:
    with pg_db.transaction() as s:
        a = tenants.create_tenant(s, "A").id
        b = tenants.create_tenant(s, "B").id
    grouped = Database(pg_db.url, group_commit=True)
    seen: dict[str, object] = {}
    try:
        def reads(name: str) -> Callable[[Any], None]:
            def body(s: Any) -> None:
                seen[name] = (s.execute(text(
                    "SELECT current_setting('allegiance.tenant_id', true)")).scalar(),
                    sorted(s.execute(text("SELECT name FROM tenant")).scalars()))
            return body

        results = _two_in_one_group(grouped, reads("first"), reads("second"), (a, b))
        assert results == [None, None]
        assert grouped._group is not None and grouped._group._group == 1, "one group"
    finally:
        grouped.dispose()
    assert seen["first"] == (a, ["A"])
    assert seen["second"] == (b, ["B"])


@pytest.mark.parametrize("fail_first", [True, False])
def test_the_group_survives_a_failed_unit_for_the_next_writer(grouped_db: Database,
                                                              fail_first: bool) -> None:
    """After a failing unit (alone or not) the next transaction writes normally."""
    with pytest.raises(ValueError), grouped_db.transaction() as s:
        tenants.create_tenant(s, "gone")
        s.flush()
        if fail_first:
            raise ValueError("fails")
        raise ValueError("fails after flush")
    with grouped_db.transaction() as s:
        tenants.create_tenant(s, "next")
    assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name = 'gone'") == 0
    assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name = 'next'") == 1


def test_a_groups_first_unit_runs_without_a_savepoint(grouped_db: Database) -> None:
    """A savepoint makes every statement and trigger of the unit slower (SQLite journals the
    pages it changes); the first unit of a group needs none: it fails alone."""
    statements: list[str] = []

    def log(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(grouped_db.engine, "before_cursor_execute", log)
    try:
        with grouped_db.transaction() as s:
            tenants.create_tenant(s, "alone")
        with pytest.raises(ValueError), grouped_db.transaction() as s:
            tenants.create_tenant(s, "alone and failing")
            s.flush()
            raise ValueError("fails")
    finally:
        event.remove(grouped_db.engine, "before_cursor_execute", log)
    assert not [st for st in statements if "SAVEPOINT" in st.upper()]
    assert count(grouped_db, "SELECT COUNT(*) FROM tenant WHERE name LIKE 'alone%'") == 1


def test_a_writer_that_gives_up_on_its_turn_says_who_held_it(grouped_db: Database) -> None:
    """The "database is locked" of a writer that waited longer than the busy timeout for its
    turn tells a stuck holder from a long queue: who held the turn, for how long, and the
    open group's size (T3s's rare SQLITE_BUSY did not say)."""
    group = _group(grouped_db)
    group._busy_timeout = 0.3
    inside, release = threading.Event(), threading.Event()

    def holder() -> None:
        with grouped_db.transaction() as s:
            s.execute(text("SELECT 1"))
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=holder, name="slow-holder", daemon=True)
    thread.start()
    assert inside.wait(30)
    try:
        with pytest.raises(OperationalError) as caught, grouped_db.transaction():
            pass
    finally:
        release.set()
        thread.join(30)
    message = str(caught.value.orig)
    assert message.startswith("database is locked (waited 0."), message
    assert "thread 'slow-holder' has held it" in message, message
    assert "the open group has 1 unit(s)" in message, message
