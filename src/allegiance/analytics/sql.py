"""Set-based reads for the reports over many rows: SQL text per dialect for days, months and
amounts, and results fetched through the driver in bulk into Polars.

SQLAlchemy's per-row processing costs more than the database when a report reads a million
rows; here the database aggregates, and the (already aggregated) rows come back through the
driver: on PostgreSQL as one ``COPY (query) TO STDOUT`` read by Polars' CSV reader, on SQLite
by ``fetchall``. Timestamps are compared as the columns store them (SQLite: naive UTC text).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import text
from sqlalchemy.orm import Session

from allegiance.kit import zones
from allegiance.kit.clock import as_utc
from allegiance.kit.db import driver_connection
from allegiance.kit.money import known_exponents


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# Memory a report's sorts and hashes may use on PostgreSQL, for its own transaction only
# (``SET LOCAL``): the default 4 MB sends the grouping of a million wallets or buyers to disk.
WORK_MEM = "256MB"


def roomy(session: Session) -> None:
    """Let this transaction's grouping run in memory (PostgreSQL; nothing elsewhere)."""
    if dialect(session) == "postgresql":
        session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))


def whole_local_days(time_zone: str, *moments: datetime | None) -> bool:
    """Whether every given bound is the start of a local day of the zone (by ``zone_offset``'s
    intervals, :func:`kit.zones.day_start`): then the summaries kept per local day
    (``purchase_day``) answer exactly."""
    return all(m is None or zones.day_start(time_zone, zones.local_day(time_zone, m)) == m
               for m in moments)


def whole_local_months(time_zone: str, *moments: datetime) -> bool:
    """Whether every bound is the first instant of a local month (``member_month``)."""
    return all(whole_local_days(time_zone, m) and zones.local_day(time_zone, m).day == 1
               for m in moments)


def day_number(moment: datetime, time_zone: str = "UTC") -> int:
    """Days since 1970-01-01 of the local date of ``moment``."""
    return (zones.local_day(time_zone, as_utc(moment)) - date(1970, 1, 1)).days


def month_number(moment: datetime, time_zone: str = "UTC") -> int:
    """year × 12 + month of ``moment`` in the zone."""
    local = zones.local_day(time_zone, as_utc(moment))
    return local.year * 12 + local.month


def month_case(column: str, name: str, time_zone: str, start: datetime, end: datetime) -> str:
    """year × 12 + month in the zone of a timestamp column known to lie in [start, end): a
    CASE over the local months' first instants (a few comparisons a row, no lookup)."""
    first, last = month_number(start, time_zone), month_number(end - _TICK, time_zone)
    branches = []
    for index in range(first, last):
        year, month = divmod(index, 12)  # the month after ``index``
        boundary = zones.day_start(time_zone, date(year, month + 1, 1))
        literal = stamp(boundary, name)
        text_ = f"'{literal}'" if name == "sqlite" else f"TIMESTAMPTZ '{literal.isoformat()}'"
        branches.append(f"WHEN {column} < {text_} THEN {index}")
    if not branches:
        return str(first)
    return f"(CASE {' '.join(branches)} ELSE {last} END)"


_TICK = timedelta(microseconds=1)


def _local(column: str, name: str, time_zone: str) -> str:
    """A timestamp column in the zone by ``zone_offset`` (the rule of the summaries, on both
    engines): SQLite, the local date as text; PostgreSQL, a timestamp without time zone."""
    offset = (f"(SELECT z.offset_seconds FROM zone_offset z WHERE z.zone = '{_zone(time_zone)}' "
              f"AND z.starts_at <= {column} ORDER BY z.starts_at DESC LIMIT 1)")
    if name == "sqlite":
        return f"date({column}, {offset} || ' seconds')"
    return f"(({column} AT TIME ZONE 'UTC') + make_interval(secs => {offset}))"


def local_day_of(column: str, name: str, time_zone: str) -> str:
    """Days since 1970-01-01 of a timestamp column's local date in the zone."""
    local = _local(column, name, time_zone)
    if name == "sqlite":
        return f"CAST(julianday({local}) - 2440587.5 AS INTEGER)"
    return f"(CAST({local} AS DATE) - DATE '1970-01-01')"


def major_units(amount: str, currency: str, base_currency: str) -> str:
    """``amount`` (minor units of ``currency``, the base currency when NULL) in major units."""
    divisors = " ".join(f"WHEN '{code}' THEN {10.0 ** exp!r}"
                        for code, exp in sorted(known_exponents().items()))
    base = 10.0 ** known_exponents().get(base_currency.upper(), 2)
    if not divisors:
        return f"(CAST({amount} AS DOUBLE PRECISION) / {base!r})"
    # The base currency (or none) first: one comparison per row instead of the whole list.
    return (f"(CAST({amount} AS DOUBLE PRECISION) / CASE WHEN {currency} IS NULL "
            f"OR {currency} = '{base_currency.upper()}' THEN {base!r} ELSE CASE "
            f"UPPER({currency}) {divisors} ELSE 100.0 END END)")


def stamp(value: datetime, name: str) -> Any:
    """A timestamp parameter as the column stores it."""
    utc = as_utc(value)
    return utc.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if name == "sqlite" else utc


def frame(session: Session, sql: str, params: Sequence[Any],
          schema: dict[str, Any]) -> pl.DataFrame:
    """The rows of ``sql`` (``?`` placeholders) as a frame of ``schema``."""
    name = dialect(session)
    with driver_connection(session) as conn:
        if name == "sqlite":
            cursor = conn.cursor()
            try:
                rows = cursor.execute(sql, tuple(params)).fetchall()
            finally:
                cursor.close()
            return pl.DataFrame(rows, schema=schema, orient="row")
        from psycopg import sql as pgsql

        parts = sql.split("?")
        if len(parts) != len(params) + 1:
            raise ValueError("one parameter per placeholder")
        composed = pgsql.SQL("").join(
            [pgsql.SQL(parts[0])]
            + [piece for value, text in zip(params, parts[1:], strict=True)
               for piece in (pgsql.Literal(value), pgsql.SQL(text))])
        buffer = io.BytesIO()
        with conn.cursor() as cursor, cursor.copy(
                pgsql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(composed)) as copy:
            for block in copy:
                buffer.write(block)
    if buffer.tell() == 0:
        return pl.DataFrame(schema=schema)
    buffer.seek(0)
    return pl.read_csv(buffer, has_header=False, new_columns=list(schema),
                       schema_overrides=schema)


def _zone(time_zone: str) -> str:
    if not all(c.isalnum() or c in "/_+-" for c in time_zone):
        raise ValueError(f"not a time zone name: {time_zone!r}")
    return time_zone
