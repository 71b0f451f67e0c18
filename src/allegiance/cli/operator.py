"""``allegiance operator``: the people who sign in to the admin app (/admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from allegiance import operators
from allegiance.kit.cli import DatabaseUrl, console, open_database

app = typer.Typer(help="Operator users of the admin app.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant id (ten_…).")]


@app.command("create")
def create(
    tenant: TenantOpt,
    email: Annotated[str, typer.Option("--email", help="Their sign-in e-mail.")],
    name: Annotated[str, typer.Option("--name", help="Their name.")],
    role: Annotated[str, typer.Option(
        "--role", help="owner, program_manager, finance, support or read_only.")] = "owner",
    password: Annotated[str, typer.Option(
        "--password", prompt=True, hide_input=True, confirmation_prompt=True,
        help="At least 12 characters (asked for when not given).")] = "",
    database_url: DatabaseUrl = None,
) -> None:
    """Create an operator who can sign in to /admin with this e-mail and password."""
    with open_database(database_url) as db, db.transaction() as session:
        row = operators.create_operator(session, tenant, email=email, name=name, role=role,
                                        password=password, actor="cli")
        summary = f"{row.email} ({operators.ROLE_NAMES[row.role]}) may now sign in at /admin"
    console.print(summary, highlight=False)


@app.command("list")
def list_operators(tenant: TenantOpt, database_url: DatabaseUrl = None) -> None:
    """The tenant's operators with their roles and status."""
    with open_database(database_url) as db, db.read() as session:
        lines = [f"{o.email:<40} {o.role:<16} {o.status}"
                 for o in operators.list_operators(session, tenant)]
    for line in lines:
        console.print(line, highlight=False)
