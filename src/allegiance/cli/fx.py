"""``allegiance fx``: exchange rates from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from allegiance import audit, fx
from allegiance.kit.cli import DatabaseUrl, console, fail, open_database

app = typer.Typer(help="Exchange rates: import a rates file.", no_args_is_help=True)


@app.command("import")
def import_rates(
    path: Annotated[Path, typer.Argument(help="CSV with currency,date,rate[,base_currency].")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the rates are for.")],
    base_currency: Annotated[str, typer.Option(
        "--base-currency", help="Base currency of rows without their own.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Create or replace the file's rates (one transaction: all or nothing)."""
    if not path.is_file():
        fail(f"{path}: no such file")
    text = path.read_text(encoding="utf-8-sig")
    with open_database(database_url) as db, db.transaction(tenant) as session:
        written = fx.import_csv(session, tenant, base_currency.upper(), text,
                                source=f"file:{path.name}"[:40])
        audit.record(session, tenant, actor="cli", action="fx_rates.set",
                     object_type="fx_rate", object_id=base_currency.upper(),
                     after={"rates": len(written), "source": "file"})
    console.print(f"[green]{len(written):,} rate(s) written for {tenant}.[/]")
