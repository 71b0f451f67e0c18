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
