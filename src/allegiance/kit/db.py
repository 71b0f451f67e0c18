"""Database plumbing: declarative base, engines for SQLite and PostgreSQL, the unit of work.

Services take a ``Session`` and only ``flush()``; the request, job or CLI command owns the
transaction through :func:`transaction`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Engine, MetaData, String, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
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


def _sqlite_setup(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so BEGIN IMMEDIATE is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
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


def make_engine(url: str, *, busy_timeout: float = 5.0, echo: bool = False) -> Engine:
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
        _sqlite_setup(engine, busy_timeout)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, echo=echo, pool_size=20, max_overflow=80, pool_pre_ping=True)


class Database:
    """An engine with its session factories; one per process (or per test).

    On PostgreSQL every transaction starts by setting ``allegiance.tenant_id`` for row-level
    security (see :mod:`allegiance.kit.tenancy`): the ``tenant_id`` given to
    :meth:`transaction` / :meth:`read`, else the one of :func:`tenancy.tenant_scope`, else the
    system context ``'*'``.
    """

    def __init__(self, url: str, *, busy_timeout: float = 5.0, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout=busy_timeout, echo=echo)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._busy_timeout = busy_timeout
        # Reentrant: a thread that opens a second transaction meets SQLite's own lock.
        self._write_lock = threading.RLock() if self.is_sqlite else None
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
        """The unit of work: commit on success, roll back on any exception."""
        with self._sqlite_writer():
            session = self._open(self._sessions, tenant_id)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

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
            raise OperationalError("BEGIN IMMEDIATE", None,
                                   sqlite3.OperationalError("database is locked"))
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


def _set_tenant_setting(session: Session, _transaction: Any, connection: Any) -> None:
    tenancy.set_transaction_tenant(connection, session.info.get("tenant", tenancy.setting_for(None)))


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
