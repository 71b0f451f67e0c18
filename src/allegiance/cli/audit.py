"""``allegiance audit``: tamper detection of the hash-chained audit log."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlalchemy import select

from allegiance import audit
from allegiance.kit.cli import DatabaseUrl, JsonFlag, console, open_database
from allegiance.kit.models import Tenant

app = typer.Typer(help="The audit log: verify its hash chain.", no_args_is_help=True)


@app.command("verify")
def verify(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: all).")
    ] = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Recompute every tenant's audit chain; exits with status 1 when a row was altered,
    removed or inserted out of order."""
    with open_database(database_url) as db, db.read() as session:
        tenant_ids = [tenant] if tenant else list(
            session.scalars(select(Tenant.id).order_by(Tenant.id)))
        checks = {t: audit.verify(session, t) for t in tenant_ids}
    broken = {t: c.first_bad_seq for t, c in checks.items() if c.first_bad_seq is not None}
    if as_json:
        typer.echo(json.dumps({
            "tenants": [{"tenant_id": t, "rows": c.rows, "first_bad_seq": c.first_bad_seq}
                        for t, c in checks.items()],
            "broken": len(broken)}))
    else:
        for tenant_id, seq in broken.items():
            console.print(f"[bold red]Audit chain of {tenant_id} breaks at row #{seq}.[/]")
        if not broken:
            rows = sum(c.rows for c in checks.values())
            console.print(f"[green]OK[/]: {len(checks):,} audit chain(s), {rows:,} rows verified.")
    if broken:
        raise typer.Exit(1)
