"""``allegiance check-settings``: is this configuration fit for production?"""

from __future__ import annotations

import typer
from sqlalchemy import text

from allegiance.kit.cli import DatabaseUrl, console, err_console, open_database
from allegiance.kit.settings import get_settings, production_problems


def database_problems(url: str | None) -> list[str]:
    """On PostgreSQL the application's role must not skip row-level security."""
    with open_database(url) as db:
        if db.is_sqlite:
            return ["the database is SQLite: no row-level security (single tenant / development)"]
        with db.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
                "WHERE rolname = current_user")).one()
    if row[1] or row[2]:
        return [f"the database role {row[0]} is a superuser or bypasses RLS: connect as the "
                "role of `allegiance db grant-app-role`"]
    return []


def check_settings(database_url: DatabaseUrl = None) -> None:
    """Check debug, CORS, rate limits and the database role; exit status 1 on a problem."""
    problems = production_problems(get_settings()) + database_problems(database_url)
    for problem in problems:
        err_console.print(f"[bold red]problem:[/] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print("[green]OK[/]: settings fit for production.")
