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

from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from allegiance.kit.db import driver_connection

_Prepared = tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]


def _dialect(session: Session) -> tuple[Dialect, Callable[[str], str], str]:
    """The session's dialect, its identifier quoting and its parameter mark."""
    dialect = session.get_bind().dialect
    return dialect, dialect.identifier_preparer.quote, (
        "?" if dialect.paramstyle == "qmark" else "%s")


class RowInsert:
    """``RowInsert(table)(session, row_or_rows)``: INSERT whole rows (dicts by column key)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._prepared: dict[str, _Prepared] = {}

    def _prepare(self, session: Session) -> _Prepared:
        dialect, quote, mark = _dialect(session)
        found = self._prepared.get(dialect.name)
        if found is None:
            columns = list(self.table.columns)
            sql = (f"INSERT INTO {quote(self.table.name)} "
                   f"({', '.join(quote(c.name) for c in columns)}) "
                   f"VALUES ({', '.join(mark for _ in columns)})")
            found = (sql, [(c.key, c.type._cached_bind_processor(dialect)) for c in columns])
            self._prepared[dialect.name] = found
        return found

    def __call__(self, session: Session, rows: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        sql, converters = self._prepare(session)
        many = [rows] if isinstance(rows, dict) else list(rows)
        params = [tuple(row[key] if convert is None else convert(row[key])
                        for key, convert in converters) for row in many]
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


class RowByKey:
    """``RowByKey(table, columns, keys)(session, *key_values)``: some columns of the row whose
    ``keys`` columns equal the values (a primary or unique key), or None; through the driver,
    every value converted by its column type's own result processor (as Core returns it)."""

    def __init__(self, table: Table, columns: Sequence[str], keys: Sequence[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.keys = tuple(keys)
        self.row = namedtuple(f"{table.name}_row", self.columns)  # type: ignore[misc]
        self._prepared: dict[str, _Prepared] = {}

    def _prepare(self, dialect: Dialect) -> _Prepared:
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        found = self._prepared.get(dialect.name)
        if found is None:
            sql = (f"SELECT {', '.join(quote(self.table.c[c].name) for c in self.columns)} "
                   f"FROM {quote(self.table.name)} WHERE "
                   + " AND ".join(f"{quote(self.table.c[k].name)} = {mark}" for k in self.keys))
            found = (sql, [(c, self.table.c[c].type._cached_result_processor(dialect, None))
                           for c in self.columns])
            self._prepared[dialect.name] = found
        return found

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
