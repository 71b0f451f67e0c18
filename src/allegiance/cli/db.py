"""``allegiance db``: the database schema."""

from __future__ import annotations

from typing import Annotated

import typer

from allegiance.kit import migrate
from allegiance.kit.cli import DatabaseUrl, console, redact, resolve_url

app = typer.Typer(help="Database schema: run the migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(
    database_url: DatabaseUrl = None,
    revision: Annotated[str, typer.Option(help="Target Alembic revision.")] = "head",
) -> None:
    """Migrate the database to the latest schema (creates a SQLite file if needed)."""
    url = resolve_url(database_url)
    migrate.upgrade(url, revision)
    console.print(f"[green]Database {redact(url)} migrated to {revision}.[/]")


@app.command("grant-app-role")
def grant_app_role(
    database_url: DatabaseUrl = None,
    role: Annotated[str, typer.Option(help="The application's role.")] = "allegiance_app",
    password: Annotated[str | None, typer.Option(
        envvar="ALLEGIANCE_APP_ROLE_PASSWORD", help="Set the role's password.")] = None,
) -> None:
    """PostgreSQL, as the schema owner: create the application's ordinary role (no superuser,
    no BYPASSRLS, so row-level security applies) and grant it data rights; the audit log and
    postings stay append-only for it. Point ALLEGIANCE_DATABASE_URL of the API at this role."""
    url = resolve_url(database_url)
    migrate.grant_app_role(url, role, password)
    console.print(f"[green]Role {role} may now use {redact(url)}.[/]")
