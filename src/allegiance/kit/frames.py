"""Reading a query's rows into a Polars frame without a Python object per value where the
driver allows it: PostgreSQL streams ``COPY (query) TO STDOUT`` as CSV into Polars' reader;
SQLite's cursor returns tuples that are turned into columns at once."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

_PARAM = re.compile(r":([A-Za-z_]\w*)")


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"unsupported parameter {value!r}")


def read_frame(session: Session, sql: str, params: Mapping[str, Any],
               schema: Mapping[str, Any]) -> pl.DataFrame:
    """The rows of ``sql`` (named ``:params``: text, integers, booleans) as a frame with
    ``schema`` (the statement's columns, in order). Runs in the session's transaction."""
    connection = session.connection()
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        query = _PARAM.sub(lambda m: _literal(params[m.group(1)]), sql)
        buffer = io.BytesIO()
        with raw.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
            for block in copy:
                buffer.write(block)
        if not buffer.tell():
            return pl.DataFrame(schema=dict(schema))
        buffer.seek(0)
        return pl.read_csv(buffer, has_header=False, schema=dict(schema))
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        rows = cursor.execute(_PARAM.sub(lambda m: "?", sql),
                              [params[m.group(1)] for m in _PARAM.finditer(sql)]).fetchall()
    finally:
        cursor.close()
    if not rows:
        return pl.DataFrame(schema=dict(schema))
    return pl.DataFrame(rows, schema=dict(schema), orient="row")


_SEPARATOR = "\x1f"  # the unit separator: never inside an id, a number or a date-time
CHUNK_ROWS = 100_000


def insert_rows(session: Session, table: str, columns: tuple[str, ...],
                rows: list[tuple[Any, ...]], types: tuple[str, ...]) -> None:
    """Insert plain rows (values already in the database's form; no NULLs, no text holding
    the unit separator) in the session's transaction: SQLite's executemany straight on the
    driver (a C loop); on PostgreSQL, per 100,000 rows one INSERT of ``unnest`` over each
    column sent as one text split by the server (COPY is refused under row-level security,
    and arrays of many values are slow to send from Python)."""
    if not rows:
        return
    connection = session.connection()
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(string_to_array(%(c{i})s, %(sep)s) AS {kind}[])"
                           for i, kind in enumerate(types))
        statement = f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            for start in range(0, len(rows), CHUNK_ROWS):
                part = list(zip(*rows[start:start + CHUNK_ROWS], strict=True))
                cursor.execute(statement, {"sep": _SEPARATOR, **{
                    f"c{i}": _SEPARATOR.join(map(str, values))
                    for i, values in enumerate(part)}})
        return
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                           f"({', '.join('?' for _ in columns)})", rows)
    finally:
        cursor.close()
