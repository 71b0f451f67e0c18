"""What every command shares: the ``--database-url`` option, the consoles, opening the database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from allegiance.kit.db import Database
from allegiance.kit.settings import get_settings

console = Console()
err_console = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="ALLEGIANCE_DATABASE_URL",
        show_envvar=True,
        help="SQLAlchemy URL of the database (default: sqlite:///./allegiance.db).",
    ),
]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def resolve_url(url: str | None) -> str:
    return url or get_settings().database_url


@contextlib.contextmanager
def open_database(url: str | None) -> Iterator[Database]:
    """A :class:`Database` for the command's URL, disposed when the command ends."""
    db = Database(resolve_url(url), busy_timeout=get_settings().sqlite_busy_timeout)
    try:
        yield db
    finally:
        db.dispose()


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def redact(url: str) -> str:
    """The database URL without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)
