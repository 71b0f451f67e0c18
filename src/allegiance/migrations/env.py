"""Alembic environment: batch mode on SQLite, the URL from the caller or the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from allegiance.kit import tenancy
from allegiance.kit.db import make_engine
from allegiance.kit.settings import get_settings
from allegiance.registry import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Migrations work across tenants: the system context of row-level security.
            tenancy.set_transaction_tenant(connection, tenancy.SYSTEM)
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
