"""Whole-row INSERTs through the database driver, for the API's hot writes.

A Core ``session.execute(insert(table), values)`` costs more Python than the database spends
storing the row (the ORM session's execute path, the compiled-cache lookup, per-parameter
processing). :class:`RowInsert` builds the statement once per dialect, converts every value
with its column type's own bind processor (so the row is stored exactly as Core stores it:
JSON serialised, UTC timestamps as the dialect keeps them) and runs it on the session's DBAPI
connection, inside the session's transaction; driver errors come out as SQLAlchemy's
(``IntegrityError`` …), as from ``session.execute``. Every column must be given: no Python
default is applied.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from allegiance.kit.db import driver_connection

_Prepared = tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]
_T = TypeVar("_T")


class SqlDialect(NamedTuple):
    """What a statement written by hand needs of the dialect: its name, identifier quoting,
    the driver's parameter mark, and the dialect itself (for the column types' converters)."""

    name: str
    quote: Callable[[str], str]
    mark: str
    dialect: Dialect


class _PerDialect(Generic[_T]):
    """``build(SqlDialect)`` made once per dialect (a statement, its converters)."""

    def __init__(self, build: Callable[[SqlDialect], _T]) -> None:
        self._build = build
        self._made: dict[str, _T] = {}

    def __call__(self, dialect: Dialect) -> _T:
        found = self._made.get(dialect.name)
        if found is None:
            found = self._build(SqlDialect(dialect.name, dialect.identifier_preparer.quote,
                                           "?" if dialect.paramstyle == "qmark" else "%s",
                                           dialect))
            self._made[dialect.name] = found
        return found


class RowInsert:
    """``RowInsert(table)(session, row_or_rows)``: INSERT whole rows (dicts by column key)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._prepare = _PerDialect(self._build)

    def _build(self, d: SqlDialect) -> _Prepared:
        columns = list(self.table.columns)
        sql = (f"INSERT INTO {d.quote(self.table.name)} "
               f"({', '.join(d.quote(c.name) for c in columns)}) "
               f"VALUES ({', '.join(d.mark for _ in columns)})")
        return sql, [(c.key, c.type._cached_bind_processor(d.dialect)) for c in columns]

    def __call__(self, session: Session, rows: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        sql, converters = self._prepare(session.get_bind().dialect)
        many = [rows] if isinstance(rows, dict) else list(rows)
        params = _params(many, converters)
        if not params:
            return
        with driver_connection(session) as conn:
            cursor = conn.cursor()
            try:
                if len(params) == 1:
                    cursor.execute(sql, params[0])
                else:
                    cursor.executemany(sql, params)
            finally:
                cursor.close()


def _params(rows: Sequence[dict[str, Any]],
            converters: Sequence[tuple[str, Callable[[Any], Any] | None]]) -> list[Any]:
    """Each row's values in the converters' order, converted where a column has a bind
    processor: the values taken by one ``itemgetter`` per row, and only the columns that
    have a processor converted, a column at a time."""
    if not rows:
        return []
    get = itemgetter(*(key for key, _ in converters))
    if len(converters) == 1:
        convert = converters[0][1]
        return [(get(row) if convert is None else convert(get(row)),) for row in rows]
    converted = [(i, convert) for i, (_, convert) in enumerate(converters) if convert is not None]
    if not converted:
        return [get(row) for row in rows]
    columns: list[Sequence[Any]] = list(zip(*[get(row) for row in rows], strict=True))
    for i, convert in converted:
        columns[i] = _converted(columns[i], convert)
    return list(zip(*columns, strict=True))


def _converted(values: Sequence[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """``convert`` of each value; a run of one value (a batch's shared timestamp) and the
    empty JSON containers are converted once."""
    out: list[Any] = []
    before: Any = _MISSING
    done: Any = None
    empty: dict[type, Any] = {}
    for value in values:
        if value is before:
            out.append(done)
        elif type(value) in _CONTAINERS and not value:
            kind = type(value)
            if kind not in empty:
                empty[kind] = convert(value)
            out.append(empty[kind])
        else:
            before, done = value, convert(value)  # ``before`` keeps the value alive
            out.append(done)
    return out


_CONTAINERS = (dict, list, tuple)


_MISSING = object()


class RowByKey:
    """``RowByKey(table, columns, keys)(session, *key_values)``: some columns of the row whose
    ``keys`` columns equal the values (a primary or unique key), or None; through the driver,
    every value converted by its column type's own result processor (as Core returns it)."""

    def __init__(self, table: Table, columns: Sequence[str], keys: Sequence[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.keys = tuple(keys)
        self.row = namedtuple(f"{table.name}_row", self.columns)  # type: ignore[misc]
        self._prepare = _PerDialect(self._build)

    def _build(self, d: SqlDialect) -> _Prepared:
        sql = (f"SELECT {', '.join(d.quote(self.table.c[c].name) for c in self.columns)} "
               f"FROM {d.quote(self.table.name)} WHERE "
               + " AND ".join(f"{d.quote(self.table.c[k].name)} = {d.mark}" for k in self.keys))
        return sql, [(c, self.table.c[c].type._cached_result_processor(d.dialect, None))
                     for c in self.columns]

    def __call__(self, session: Session, *key_values: Any) -> Any:
        with driver_connection(session) as conn:
            return self.read(conn, session.get_bind().dialect, *key_values)

    def read(self, conn: Any, dialect: Dialect, *key_values: Any) -> Any:
        """The same, on the session's DBAPI connection ``conn`` of that ``dialect`` (for
        ``kit.placement.read_with_begin``: the read that goes out with ``BEGIN``)."""
        sql, converters = self._prepare(dialect)
        cursor = conn.cursor()
        try:
            cursor.execute(sql, key_values)
            found = cursor.fetchone()
        finally:
            cursor.close()
        if found is None:
            return None
        return self.row(*(value if convert is None else convert(value)
                          for value, (_, convert) in zip(found, converters, strict=True)))


class DriverStatement:
    """``DriverStatement(build)(session, params, fetch=False)``: a statement written once per
    dialect by ``build(SqlDialect)`` and run with positional ``params`` through the driver
    inside the session's transaction; returns the first row when ``fetch`` (None when there is
    none). For hot statements whose SQL SQLAlchemy would otherwise rebuild or re-process on
    every call. ``prepare``: on PostgreSQL, a server-side prepared statement."""

    def __init__(self, build: Callable[[SqlDialect], str], *, prepare: bool = False) -> None:
        self._sql = _PerDialect(build)
        self._prepare = prepare

    def sql(self, session: Session) -> str:
        return self._sql(session.get_bind().dialect)

    def _execute(self, session: Session, cursor: Any, params: Sequence[Any]) -> bool:
        """Execute on ``cursor``; True on PostgreSQL (whose answer may be read later)."""
        postgres = session.get_bind().dialect.name == "postgresql"
        options = {"prepare": True} if postgres and self._prepare else {}
        cursor.execute(self.sql(session), tuple(params), **options)
        return postgres

    def __call__(self, session: Session, params: Sequence[Any], fetch: bool = False) -> Any:
        with driver_connection(session) as conn:
            cursor = conn.cursor()
            try:
                self._execute(session, cursor, params)
                return cursor.fetchone() if fetch else None
            finally:
                cursor.close()

    def send(self, session: Session, params: Sequence[Any]) -> Callable[[], Any]:
        """Send the statement without waiting for it; the function returned reads its first
        row (None when there is none). In a PostgreSQL pipeline (``kit.db.pipelined``) it
        travels with the next statement whose answer is read, so the statements sent after it
        share its round trip. On SQLite it runs to its end at once (a statement left open
        there would keep the group's COMMIT from running if a later write failed)."""
        with driver_connection(session) as conn:
            cursor = conn.cursor()
            try:
                later = self._execute(session, cursor, params)
                if not later:
                    row = cursor.fetchone()
                    cursor.close()
                    return lambda: row
            except BaseException:
                cursor.close()
                raise

        def answer() -> Any:
            with driver_connection(session):
                try:
                    return cursor.fetchone()
                finally:
                    cursor.close()

        return answer


class CounterAdd:
    """``CounterAdd(table, keys, counters, returning)(session, key_values, deltas)``: add
    ``deltas`` to the counter columns of the row at ``key_values`` (the table's primary or a
    unique key), inserting the row when it is missing, in one atomic statement
    (``INSERT … ON CONFLICT … DO UPDATE``, SQLite ≥ 3.35 and PostgreSQL): concurrent adders
    never lose an update and never meet a duplicate key. Returns the ``returning`` columns of
    the row after the change (a tuple; empty when none are asked). Counters not in ``deltas``
    add 0; every other column of the table must be nullable or have a server default."""

    def __init__(self, table: Table, keys: Sequence[str], counters: Sequence[str],
                 returning: Sequence[str] = ()) -> None:
        self.table = table
        self.keys = tuple(keys)
        self.counters = tuple(counters)
        self.returning = tuple(returning)
        missing = [c.key for c in table.columns if c.key not in (*self.keys, *self.counters)
                   and not c.nullable and c.server_default is None]
        if missing:  # the INSERT names only keys and counters: nothing else may be required
            raise ValueError(f"{table.name}.{missing[0]} must be a key or a counter")
        self._statement = DriverStatement(self._build)

    def _build(self, d: SqlDialect) -> str:
        quote, mark = d.quote, d.mark
        table = quote(self.table.name)
        names = [quote(self.table.c[c].name) for c in (*self.keys, *self.counters)]
        adds = ", ".join(f"{name} = {table}.{name} + excluded.{name}"
                         for name in names[len(self.keys):])
        sql = (f"INSERT INTO {table} ({', '.join(names)}) "
               f"VALUES ({', '.join(mark for _ in names)}) "
               f"ON CONFLICT ({', '.join(names[:len(self.keys)])}) DO UPDATE SET {adds}")
        if self.returning:
            sql += " RETURNING " + ", ".join(quote(self.table.c[c].name) for c in self.returning)
        return sql

    def __call__(self, session: Session, key_values: dict[str, Any],
                 deltas: dict[str, int]) -> tuple[Any, ...]:
        unknown = set(deltas) - set(self.counters)
        if unknown:
            raise ValueError(f"{self.table.name} has no counter {sorted(unknown)[0]}")
        params = (*(key_values[k] for k in self.keys),
                  *(int(deltas.get(c, 0)) for c in self.counters))
        found = self._statement(session, params, fetch=bool(self.returning))
        return tuple(found or ())


_NAMED_MARK = re.compile(r"%\((\w+)\)s")


class CompiledMany:
    """``CompiledMany(build, keys)(session, rows)``: the Core statement ``build(insert)`` (an
    INSERT, an upsert …; ``insert`` is the dialect's own, which has ``on_conflict_do_*``)
    whose parameters are ``keys``, compiled once per dialect and run through the driver's
    ``executemany``, every row's values converted by its parameter's own bind processor: what
    ``session.execute(statement, rows)`` stores, without SQLAlchemy's per-row parameter
    processing (the larger part of a bulk write's Python time). Each row must give every key;
    the statement may hold no other parameter."""

    def __init__(self, build: Callable[[Any], Any], keys: Sequence[str]) -> None:
        self._build_statement = build
        self.keys = tuple(keys)
        self._prepare = _PerDialect(self._build)

    def _build(self, d: SqlDialect) -> _Prepared:
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = self._build_statement(pg_insert if d.name == "postgresql" else sqlite_insert)
        compiled = statement.compile(dialect=d.dialect, column_keys=list(self.keys))
        sql = compiled.string
        if compiled.positiontup is not None:
            names = list(compiled.positiontup)
        else:  # pyformat (psycopg): each named mark becomes a positional one, in order
            names = _NAMED_MARK.findall(sql)
            if len(set(names)) != len(names):
                raise ValueError("a parameter appears twice in the statement")
            sql = _NAMED_MARK.sub("%s", sql)
        unknown = [n for n in names if n not in self.keys]
        if unknown:
            raise ValueError(f"{unknown[0]} is not one of the rows' keys")
        return sql, [(n, compiled.binds[n].type._cached_bind_processor(d.dialect))
                     for n in names]

    def __call__(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        sql, converters = self._prepare(session.get_bind().dialect)
        params = _params(rows, converters)
        with driver_connection(session) as conn:
            cursor = conn.cursor()
            try:
                cursor.executemany(sql, params)
            finally:
                cursor.close()
