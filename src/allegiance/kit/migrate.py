"""Run the Alembic migrations shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from allegiance.kit import tenancy
from allegiance.kit.db import is_sqlite, make_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate ``url``; on PostgreSQL, then (re)apply row-level security to every tenant table,
    so tables added by any migration are covered."""
    command.upgrade(alembic_config(url), revision)
    if revision == "head" and not is_sqlite(url):
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                tenancy.apply_row_level_security(connection)
        finally:
            engine.dispose()


def grant_app_role(url: str, role: str = tenancy.DEFAULT_APP_ROLE,
                   password: str | None = None) -> None:
    """As the schema owner at ``url``: create/refresh the application's ordinary role."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            tenancy.grant_app_role(connection, role, password)
    finally:
        engine.dispose()
