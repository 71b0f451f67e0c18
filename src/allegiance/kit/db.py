"""Database plumbing: declarative base, engines for SQLite and PostgreSQL, the unit of work.

Services take a ``Session`` and only ``flush()``; the request, job or CLI command owns the
transaction through :func:`transaction`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, DateTime, Engine, MetaData, String, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from allegiance.kit import tenancy
from allegiance.kit.clock import as_utc

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use kit.clock.now()")
        utc = as_utc(value)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        int: BigInteger(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


ID = String(40)  # opaque public ids: prefix + 26 characters


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_setup(engine: Engine, busy_timeout: float, synchronous: str = "FULL") -> None:
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"SQLite synchronous must be FULL or NORMAL, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so BEGIN IMMEDIATE is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        # sorts and GROUP BY temporaries in memory, and a 64 MB page cache: set-based reads
        # (segments, RFM, leaderboards) over millions of rows spill to disk otherwise
        cursor.execute("PRAGMA temp_store = MEMORY")
        cursor.execute("PRAGMA cache_size = -65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers use a deferred transaction (WAL lets them run beside the writer); every
        # other transaction takes the write lock at once, so it never fails half-way with
        # SQLITE_BUSY when it upgrades from read to write.
        mode = "DEFERRED" if conn.get_execution_options().get("readonly") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, busy_timeout: float = 5.0, echo: bool = False,
                synchronous: str = "FULL") -> Engine:
    """An engine for ``url`` with the project's settings for its database."""
    if is_sqlite(url):
        parsed = make_url(url)
        memory = parsed.database in (None, "", ":memory:")
        kwargs: dict[str, Any] = {
            "connect_args": {"check_same_thread": False, "timeout": busy_timeout},
        }
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, echo=echo, **kwargs)
        _sqlite_setup(engine, busy_timeout, synchronous)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    # LIFO: the busy few connections are reused (a pooled connection rarely idles), and a
    # connection is pinged on checkout only after it idled (see ``_ping_if_idle``): a ping per
    # checkout cost every transaction a round trip.
    engine = create_engine(url, echo=echo, pool_size=20, max_overflow=80, pool_use_lifo=True)
    _ping_if_idle(engine)
    return engine


# A pooled PostgreSQL connection idle longer than this is pinged before use.
PING_AFTER_IDLE = 1.0


def _ping_if_idle(engine: Engine) -> None:
    """Replace dead pooled connections (a restarted server) without a round trip per checkout.

    A connection the driver already knows broken is replaced at once; one that sat in the pool
    longer than :data:`PING_AFTER_IDLE` seconds is pinged first and replaced if the ping fails
    (the pool then tries another: SQLAlchemy's ``DisconnectionError`` protocol, as
    ``pool_pre_ping`` does). A connection back from a transaction less than that ago is used as
    is: if the server died in between, the transaction fails as one in flight at the crash
    does (nothing of it is written; clients retry, with their ``Idempotency-Key``), and the
    broken connection is discarded, not pooled again."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if getattr(dbapi_connection, "broken", False) or dbapi_connection.closed:
            raise DisconnectionError("the connection is closed")
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()  # the ping's implicit BEGIN: the checkout starts clean
        except Exception as exc:
            raise DisconnectionError(f"ping failed: {exc}") from exc


class Database:
    """An engine with its session factories; one per process (or per test).

    On PostgreSQL every transaction starts by setting ``allegiance.tenant_id`` for row-level
    security (see :mod:`allegiance.kit.tenancy`): the ``tenant_id`` given to
    :meth:`transaction` / :meth:`read`, else the one of :func:`tenancy.tenant_scope`, else the
    system context ``'*'``.
    """

    def __init__(self, url: str, *, busy_timeout: float = 5.0, echo: bool = False,
                 group_commit: bool | None = None, synchronous: str = "FULL") -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout=busy_timeout, echo=echo,
                                  synchronous=synchronous)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._busy_timeout = busy_timeout
        # Reentrant: a thread that opens a second transaction meets SQLite's own lock.
        self._write_lock = threading.RLock() if self.is_sqlite else None
        memory = make_url(url).database in (None, "", ":memory:")
        # Group commit: on by default for a file SQLite database (one writer at a time there
        # anyway); on PostgreSQL only when asked (``ALLEGIANCE_GROUP_COMMIT=on`` for the
        # server), since it also serialises this process's write transactions.
        grouped = self.is_sqlite if group_commit is None else group_commit
        self._group = GroupCommit(self.engine, busy_timeout) if grouped and not memory else None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._readonly_sessions = sessionmaker(
            self.engine.execution_options(readonly=True), expire_on_commit=False, autoflush=False
        )
        if self.engine.dialect.name == "postgresql":
            for factory in (self._sessions, self._readonly_sessions):
                event.listen(factory, "after_begin", _set_tenant_setting)

    def _open(self, factory: sessionmaker[Session], tenant_id: str | None) -> Session:
        session = factory()
        session.info["tenant"] = tenancy.setting_for(tenant_id)
        return session

    @contextlib.contextmanager
    def transaction(self, tenant_id: str | None = None) -> Iterator[Session]:
        """The unit of work: commit on success, roll back on any exception. Callables in
        ``session.info["on_commit"]`` run once the commit is durable.

        With group commit (a file SQLite database, or PostgreSQL when asked) the units of work
        of this process's threads share commits (see :class:`GroupCommit`): the unit is a
        savepoint of the group's transaction, and this returns only when the group's COMMIT is
        durable."""
        group = self._group
        if group is not None:
            # A transaction opened inside another one of the same thread joins its group
            # as a savepoint of its own (it is durable with the group's commit).
            with (group.joined() if group.held_by_me() else group.unit()) as connection:
                # The group's first unit runs in the transaction itself (it fails alone: the
                # transaction holds nothing else yet); a savepoint makes every write slower
                # (SQLite journals the pages each statement and trigger changes).
                mode = "rollback_only" if group.first_unit else "create_savepoint"
                session = self._sessions(bind=connection, join_transaction_mode=mode)
                session.info["tenant"] = tenancy.setting_for(tenant_id)
                with _unit_of_work(session):
                    yield session
            _run_on_commit(session)
            return
        with self._sqlite_writer():
            session = self._open(self._sessions, tenant_id)
            session.info[OWNS_COMMIT] = True
            with _unit_of_work(session):
                yield session
        _run_on_commit(session)

    @contextlib.contextmanager
    def _sqlite_writer(self) -> Iterator[None]:
        """On SQLite, the threads of one process queue for the write lock in order here.
        SQLite lets one writer in at a time and makes the others poll with growing sleeps
        (up to 100 ms each), which under concurrent requests costs far more than the writes
        themselves. Other processes still wait in SQLite's busy handler. Like SQLite, a
        writer gives up after the busy timeout with "database is locked"."""
        if self._write_lock is None:
            yield
            return
        if not self._write_lock.acquire(timeout=self._busy_timeout):
            raise _locked("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            self._write_lock.release()

    @contextlib.contextmanager
    def read(self, tenant_id: str | None = None) -> Iterator[Session]:
        """A read-only session (a deferred transaction on SQLite); never commits."""
        session = self._open(self._readonly_sessions, tenant_id)
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def session(self) -> Session:
        """A bare session; the caller owns commit and close."""
        return self._open(self._sessions, None)

    def dispose(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def _unit_of_work(session: Session) -> Iterator[None]:
    """Commit ``session`` when the block ends, roll it back on any exception; close it."""
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _run_on_commit(session: Session) -> None:
    for callback in session.info.pop("on_commit", ()):
        callback()


class GroupCommit:
    """Group commit for the writer threads of one process (SQLite, or PostgreSQL on request).

    With ``synchronous=FULL`` (``synchronous_commit=on``) every COMMIT waits for an fsync of the
    WAL (milliseconds), and SQLite has one writer at a time, so one commit per request caps a
    process at a few hundred writes a second however little each costs. On PostgreSQL the
    ledger serialises a tenant's postings on its journal sequence and hash chain until COMMIT,
    so the same cap holds per tenant. Here the threads take turns on one connection
    whose transaction stays open while others are queued: each unit of work runs in its own
    SAVEPOINT (a failing unit is rolled back alone, leaving the group intact), and the unit
    that finds nobody waiting behind it (or the group full or old) COMMITs for all. Every unit
    returns only after that COMMIT is durable; if the COMMIT fails, every unit of the group
    fails and none of them was written. Other processes meet the group's write lock in
    SQLite's busy handler as before."""

    MAX_UNITS = 32
    MAX_AGE = 0.010  # seconds from the group's first unit to its commit

    def __init__(self, engine: Engine, busy_timeout: float) -> None:
        self._engine = engine
        self._busy_timeout = busy_timeout
        self._mutex = threading.Lock()
        self._state = threading.Condition(threading.Lock())
        self._holder: int | None = None
        self._holder_name = ""
        self._taken = 0.0  # when the holder took its turn (monotonic)
        self._waiting = 0
        self._connection: Any = None
        self._transaction: Any = None
        self._group = 0
        self._units = 0
        self._opened = 0.0
        self._first = False
        self._done: dict[int, BaseException | None] = {}

    def held_by_me(self) -> bool:
        return self._holder == threading.get_ident()

    @property
    def first_unit(self) -> bool:
        """True while the unit holding the turn is the first of its group (and not nested)."""
        return self._first

    @contextlib.contextmanager
    def joined(self) -> Iterator[Any]:
        """The open group's connection for a unit nested in the current holder's unit."""
        if self._connection is None:
            self._open()
        self._units += 1
        first, self._first = self._first, False
        try:
            yield self._connection
        finally:
            self._first = first

    @contextlib.contextmanager
    def unit(self) -> Iterator[Any]:
        """The group's connection, for one unit of work, between its turn and its commit."""
        with self._state:
            self._waiting += 1
        asked = time.monotonic()
        try:
            acquired = self._mutex.acquire(timeout=self._busy_timeout)
        finally:
            with self._state:
                self._waiting -= 1
        if not acquired:
            raise _locked("BEGIN IMMEDIATE", self._who_holds(time.monotonic() - asked))
        self._take_turn()
        failed: BaseException | None = None
        try:
            if self._connection is None:
                self._open()
            group = self._group
            self._first = self._units == 0
            self._units += 1
            try:
                yield self._connection
            except BaseException as exc:
                failed = exc
            finally:
                self._first = False
        except BaseException:
            # the group could not be opened: nothing of it exists
            self._holder = None
            self._mutex.release()
            raise
        try:
            self._end_turn()
        except BaseException as exc:
            if failed is None:
                raise
            raise failed from exc
        if failed is not None:
            raise failed
        self._wait(group)

    def _take_turn(self) -> None:
        self._holder = threading.get_ident()
        self._holder_name = threading.current_thread().name
        self._taken = time.monotonic()

    def _who_holds(self, waited: float) -> str:
        """What a writer that gave up on its turn saw: how long it waited, who held the turn
        and since when, how many units the open group has. (Read without the turn: a
        snapshot for the error message, enough to tell a stuck holder from a long queue.)"""
        now = time.monotonic()
        holder = (f"thread {self._holder_name!r} has held it {now - self._taken:.2f} s"
                  if self._holder is not None else "nobody holds it now")
        group = (f"the open group has {self._units} unit(s), open {now - self._opened:.2f} s"
                 if self._connection is not None else "no group is open")
        return (f"waited {waited:.2f} s for the write turn; {holder}; {group}; "
                f"{self._waiting} other writer(s) waiting")

    def _open(self) -> None:
        self._connection = self._engine.connect()
        try:
            self._transaction = self._connection.begin()
        except BaseException:
            self._connection.close()
            self._connection = None
            raise
        self._group += 1
        self._units = 0
        self._opened = time.monotonic()

    def _end_turn(self) -> None:
        """Release the turn: COMMIT the group unless another unit is queued to join it."""
        try:
            with self._state:
                queued = self._waiting > 0
            if (queued and self._units < self.MAX_UNITS
                    and time.monotonic() - self._opened < self.MAX_AGE
                    and self._connection is not None and self._transaction.is_active):
                return
            self._commit()
        finally:
            self._holder = None
            self._mutex.release()

    def _commit(self) -> None:
        """COMMIT (or, if a unit broke the transaction, roll back) the open group."""
        if self._connection is None:
            return
        group, connection, transaction = self._group, self._connection, self._transaction
        self._connection = self._transaction = None
        outcome: BaseException | None = None
        try:
            if transaction.is_active:
                transaction.commit()
            else:
                outcome = OperationalError("COMMIT", None, sqlite3.OperationalError(
                    "the group's transaction was rolled back"))  # same on both engines
        except BaseException as exc:
            outcome = exc
            with contextlib.suppress(Exception):
                transaction.rollback()
        finally:
            connection.close()
            with self._state:
                self._done[group] = outcome
                self._state.notify_all()
        if outcome is not None:
            raise outcome

    def _wait(self, group: int) -> None:
        """Until ``group`` is committed. Its last unit commits it, or leaves it open only for a
        unit already queued for the next turn; should that unit give up (busy timeout), a
        member that waited as long commits the group itself. (A short wait here made members
        of slow groups take turns only to commit, one fsync each: under overload, latency
        grew tenfold.)"""
        with self._state:
            while group not in self._done:
                if not self._state.wait(timeout=self._busy_timeout) and group not in self._done:
                    break
            outcome = self._done.get(group, _PENDING)
        if outcome is _PENDING:
            with self._mutex_turn():
                if self._group == group:
                    self._commit_quietly()
            with self._state:
                while group not in self._done:
                    self._state.wait(timeout=self._busy_timeout)
                outcome = self._done[group]
        with self._state:
            if len(self._done) > 1000:
                for old in [g for g in self._done if g < group - 500]:
                    del self._done[old]
        if isinstance(outcome, BaseException):
            raise outcome

    @contextlib.contextmanager
    def _mutex_turn(self) -> Iterator[None]:
        self._mutex.acquire()
        self._take_turn()
        try:
            yield
        finally:
            self._holder = None
            self._mutex.release()

    def _commit_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self._commit()


_PENDING = BaseException()

# PostgreSQL deadlock and serialization failure: the transaction was rolled back, run it again.
RETRYABLE = ("40P01", "40001")
_T = TypeVar("_T")


def retrying(attempt: Callable[[], _T], tries: int = 3) -> _T:
    """``attempt()`` — one whole transaction — run again (at most ``tries`` times in all) when
    PostgreSQL rolled it back as the loser of a deadlock (40P01) or a serialization failure
    (40001). Writes of one tenant do not queue on one lock for their whole transaction, so
    two of them can meet that way; nothing of the loser was written, so running it again is
    safe. Any other error, and the last attempt's, goes to the caller."""
    for left in range(tries - 1, -1, -1):
        try:
            return attempt()
        except OperationalError as exc:
            if left == 0 or getattr(exc.orig, "sqlstate", None) not in RETRYABLE:
                raise
    raise AssertionError("unreachable")


def _locked(statement: str, detail: str = "") -> OperationalError:
    """The error of a writer that waited longer than the busy timeout for its turn (SQLite's
    own wording, which callers and clients already know as "retry later"), with what the
    writer saw (``detail``) after it in parentheses."""
    message = f"database is locked ({detail})" if detail else "database is locked"
    return OperationalError(statement, None, sqlite3.OperationalError(message))


@contextlib.contextmanager
def driver_connection(session: Session) -> Iterator[Any]:
    """The session's DBAPI connection, inside the session's transaction, for hot paths where
    SQLAlchemy's per-statement overhead costs more than the database. Driver errors come out
    wrapped as SQLAlchemy's (``IntegrityError`` …), exactly as from ``session.execute``."""
    connection = session.connection()
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield connection.connection.driver_connection
    except dbapi.Error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc


@contextlib.contextmanager
def pipelined(session: Session) -> Iterator[None]:
    """On PostgreSQL, the driver statements of the block go out in psycopg's pipeline mode:
    statements whose results nobody reads yet (inserts) travel with the next one that is read
    (``fetchone`` sends them all and waits once), so a few statements cost one round trip. An
    error of any of them is raised at the latest when the block ends (the caller's unit of
    work then rolls back). Elsewhere (SQLite, in-process) a no-op."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    with driver_connection(session) as conn, conn.pipeline():
        yield


def _set_tenant_setting(session: Session, _transaction: Any, connection: Any) -> None:
    tenancy.set_transaction_tenant(connection, session.info.get("tenant", tenancy.setting_for(None)),
                                   session.info.pop(BEGIN_READ, None))


# ``session.info`` key of the read that goes out with the transaction's BEGIN (PostgreSQL;
# see ``kit.placement.read_with_begin``).
BEGIN_READ = "begin_read"

# ``session.info`` flag of a unit of work that owns its transaction (not one inside a group
# commit's): it may send its COMMIT itself, early (``kit.placement.SentWrites.commit_early``).
OWNS_COMMIT = "owns_commit"


def add_unique(session: Session, row: Any, duplicate: Exception) -> None:
    """Add and flush ``row`` in a savepoint; if a unique constraint refuses it, the savepoint
    is rolled back (the session stays usable) and ``duplicate`` is raised instead."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise duplicate from exc


def dialect_insert(session: Session) -> Any:
    """The dialect's ``insert`` (PostgreSQL's or SQLite's), which has ``on_conflict_do_*``."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def is_unique_violation(exc: BaseException) -> bool:
    """True when a driver error is a unique-constraint violation (SQLite or PostgreSQL)."""
    text = str(getattr(exc, "orig", exc))
    return "UNIQUE constraint failed" in text or "duplicate key value" in text


def is_check_violation(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc))
    return "CHECK constraint failed" in text or "violates check constraint" in text
