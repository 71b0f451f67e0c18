"""``allegiance export ENTITY``: one tenant's rows of any table, as CSV or Parquet, for a
finance or BI system.

``ENTITY`` is a table name (``allegiance export list`` shows them). Rows are read in chunks in
the tenant's row-level-security context and in primary-key order; CSV is written as it is read
(constant memory), Parquet is assembled from the chunks and written once. Secret columns
(key and password hashes, webhook secrets, invitation tokens) are never exported. JSON columns
are written as JSON text, decimals as text (exact), times in UTC ISO 8601 (CSV) or as UTC
timestamps (Parquet).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from sqlalchemy import Table, select

from allegiance.kit.cli import DatabaseUrl, console, fail, open_database
from allegiance.kit.db import Database
from allegiance.registry import metadata

SECRET_COLUMNS = frozenset({
    ("api_key", "secret_hash"), ("api_key", "previous_secret_hash"),
    ("member_user", "password_hash"), ("invitation", "token_hash"),
    ("webhook_endpoint", "secret"), ("webhook_endpoint", "previous_secret"),
})
CHUNK = 5000


class Format(StrEnum):
    csv = "csv"
    parquet = "parquet"


def exportable() -> dict[str, Table]:
    """Tables that belong to a tenant, by name."""
    return {t.name: t for t in metadata.sorted_tables if "tenant_id" in t.c}


def columns_of(table: Table) -> list[str]:
    return [c.name for c in table.c if (table.name, c.name) not in SECRET_COLUMNS]


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, Decimal):
        return str(value)
    return value


def rows(db: Database, table: Table, tenant_id: str) -> Iterator[list[Any]]:
    """The tenant's rows of ``table`` (exported columns only), in primary-key order."""
    cols = [table.c[name] for name in columns_of(table)]
    order = list(table.primary_key.columns) or cols
    with db.read(tenant_id) as session:
        result = session.execute(
            select(*cols).where(table.c.tenant_id == tenant_id).order_by(*order)
            .execution_options(yield_per=CHUNK))
        for row in result:
            yield [_cell(v) for v in row]


def write_csv(db: Database, table: Table, tenant_id: str, out: Any) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns_of(table))
    count = 0
    for row in rows(db, table, tenant_id):
        writer.writerow([v.isoformat() if isinstance(v, datetime) else v for v in row])
        count += 1
    return count


def write_parquet(db: Database, table: Table, tenant_id: str, path: Path) -> int:
    names = columns_of(table)
    frames: list[pl.DataFrame] = []
    chunk: list[list[Any]] = []
    for row in rows(db, table, tenant_id):
        chunk.append(row)
        if len(chunk) >= CHUNK:
            frames.append(pl.DataFrame(chunk, schema=names, orient="row", infer_schema_length=None))
            chunk = []
    if chunk or not frames:
        frames.append(pl.DataFrame(chunk, schema=names, orient="row", infer_schema_length=None))
    frame = pl.concat(frames, how="vertical_relaxed")
    frame.write_parquet(path)
    return frame.height


def export(
    entity: Annotated[str, typer.Argument(help="A table name, or 'list' to show them.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="The tenant to export.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="csv or parquet.")] = Format.csv,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write (CSV: default standard output).")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Export one tenant's rows of a table (any entity) as CSV or Parquet."""
    tables = exportable()
    if entity == "list":
        for name in sorted(tables):
            typer.echo(name)
        return
    table = tables.get(entity)
    if table is None:
        fail(f"unknown entity {entity!r}; `allegiance export list` shows them")
    if not tenant:
        fail("give --tenant: exports are per tenant")
    if fmt is Format.parquet and output is None:
        fail("Parquet needs --output FILE")
    with open_database(database_url) as db:
        if fmt is Format.parquet:
            assert output is not None
            count = write_parquet(db, table, tenant, output)
        elif output is None:
            count = write_csv(db, table, tenant, sys.stdout)
            return
        else:
            with output.open("w", newline="", encoding="utf-8") as handle:
                count = write_csv(db, table, tenant, handle)
    console.print(f"[green]{count:,} {entity} row(s) of {tenant} written to {output}.[/]")
