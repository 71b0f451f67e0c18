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
    newline, a carriage return or a backslash: the counts below then differ)."""
    text = "\n".join("\t".join(map(str, row)) for row in rows)
    if "\\" in text or "\r" in text or text.count("\t") != len(rows) * (width - 1) \
            or text.count("\n") != len(rows) - 1:
        return None
    return text + "\n"


def _copy_in(session: Session, table: str, columns: tuple[str, ...], types: tuple[str, ...],
             data: str | list[tuple[Any, ...]]) -> None:
    """PostgreSQL: COPY ``data`` (COPY's text format, or rows) into a temporary table, then
    one ``INSERT … SELECT`` into ``table``."""
    raw = session.connection().connection.driver_connection
    names = ", ".join(columns)
    staged = f"_staged_{table}"
    kinds = ", ".join(f"{c} {kind}" for c, kind in zip(columns, types, strict=True))
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(f"CREATE TEMPORARY TABLE {staged} ({kinds}) ON COMMIT DROP")
        with cursor.copy(f"COPY {staged} ({names}) FROM STDIN") as copy:
            if isinstance(data, str):
                copy.write(data)
            else:
                for row in data:
                    copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staged}")
        cursor.execute(f"DROP TABLE {staged}")


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
        _copy_in(session, table, columns, types, _copy_text(rows, len(columns)) or rows)
        return
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES "
                           f"({', '.join('?' for _ in columns)})", rows)
    finally:
        cursor.close()


def insert_frame(session: Session, table: str, frame: pl.DataFrame,
                 types: tuple[str, ...]) -> None:
    """:func:`insert_rows` of a frame whose columns are named as the table's (values in the
    database's form, no NULLs); on PostgreSQL the COPY text is written by Polars (no Python
    per row) unless a text value holds a tab, a newline or a backslash."""
    if not frame.height:
        return
    columns = tuple(frame.columns)
    if session.get_bind().dialect.name != "postgresql" or any(
            frame.select(pl.col(c).str.contains(r"[\t\n\r\\]").any()).item()
            for c, kind in zip(columns, frame.dtypes, strict=True) if kind == pl.Utf8):
        insert_rows(session, table, columns, frame.rows(), types)
        return
    text = frame.write_csv(separator="\t", include_header=False, quote_style="never",
                           line_terminator="\n")
    _copy_in(session, table, columns, types, text)
