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


def _copy_text(rows: list[tuple[Any, ...]], width: int) -> str | None:
    """The rows in COPY's text format, or None when a value would need escaping (a tab, a
    newline or a backslash: the counts below then differ)."""
    text = "\n".join("\t".join(map(str, row)) for row in rows)
    if "\\" in text or text.count("\t") != len(rows) * (width - 1) \
            or text.count("\n") != len(rows) - 1:
        return None
    return text + "\n"


def insert_rows(session: Session, table: str, columns: tuple[str, ...],
                rows: list[tuple[Any, ...]], types: tuple[str, ...]) -> None:
    """Insert plain rows (values already in the database's form, no NULLs) in the session's
    transaction: SQLite's executemany straight on the driver (a C loop); on PostgreSQL
    ``COPY`` into a temporary table (COPY FROM is refused under row-level security, which a
    temporary table does not have) and one ``INSERT … SELECT`` from it (faster than sending
    the columns as arrays). Rows given in the table's key order are cheapest to index.
    ``types``: the columns' PostgreSQL types."""
    if not rows:
        return
    connection = session.connection()
    raw = connection.connection.driver_connection
    names = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        staged = f"_staged_{table}"
        kinds = ", ".join(f"{c} {kind}" for c, kind in zip(columns, types, strict=True))
        text = _copy_text(rows, len(columns))
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(f"CREATE TEMPORARY TABLE {staged} ({kinds}) ON COMMIT DROP")
            with cursor.copy(f"COPY {staged} ({names}) FROM STDIN") as copy:
                if text is not None:
                    copy.write(text)
                else:
                    for row in rows:
                        copy.write_row(row)
            cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staged}")
            cursor.execute(f"DROP TABLE {staged}")
        return
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES "
                           f"({', '.join('?' for _ in columns)})", rows)
    finally:
        cursor.close()
