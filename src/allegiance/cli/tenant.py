"""``allegiance tenant``: create tenants and issue their API keys."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Column, Table
from sqlalchemy import select

from allegiance import tenants
from allegiance.kit.cli import DatabaseUrl, JsonFlag, console, open_database
from allegiance.kit.models import Tenant

app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="The tenant's (company's) name.")],
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a tenant and an admin API key; the key is printed once and never again."""
    with open_database(database_url) as db, db.transaction() as session:
        tenant = tenants.create_tenant(session, name)
        issued = tenants.create_api_key(session, tenant.id, name="admin (cli)", scopes=["admin"])
        tenant_id, secret = tenant.id, issued.secret
    if as_json:
        typer.echo(json.dumps({"tenant_id": tenant_id, "api_key": secret}))
        return
    console.print(f"Tenant [bold]{name}[/] created: [cyan]{tenant_id}[/]")
    console.print("Admin API key (shown once, store it now):")
    console.print(secret, soft_wrap=True, highlight=False)


@app.command("create-key")
def create_key(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id (ten_…).")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="admin, integration or read; repeatable.")
    ],
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "cli",
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue another API key for a tenant; the key is printed once."""
    with open_database(database_url) as db, db.transaction() as session:
        issued = tenants.create_api_key(session, tenant, name=name, scopes=scope)
        key_id, secret = issued.key.id, issued.secret
    if as_json:
        typer.echo(json.dumps({"tenant_id": tenant, "key_id": key_id, "api_key": secret}))
        return
    console.print(f"API key {key_id} (shown once):")
    console.print(secret, soft_wrap=True, highlight=False)


@app.command("list")
def list_tenants(database_url: DatabaseUrl = None, as_json: JsonFlag = False) -> None:
    """List the tenants of this database."""
    with open_database(database_url) as db, db.read() as session:
        rows = [
            {"id": t.id, "name": t.name, "status": t.status, "created_at": t.created_at.isoformat()}
            for t in session.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.id))
        ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(Column("id", overflow="fold"), "name", "status", "created (UTC)")
    for row in rows:
        table.add_row(row["id"], row["name"], row["status"], row["created_at"][:16])
    console.print(table)
