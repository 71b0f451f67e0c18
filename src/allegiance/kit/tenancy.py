"""Tenant context and PostgreSQL row-level security: the second wall of tenant isolation.

The first wall is the application: every query filters on ``tenant_id``. The second is the
database: on PostgreSQL every table with a ``tenant_id`` column (and ``tenant`` itself, on
``id``) has row-level security enabled and *forced*, with one policy::

    tenant_id = current_setting('allegiance.tenant_id', true)
    OR current_setting('allegiance.tenant_id', true) = '*'

:class:`allegiance.kit.db.Database` sets ``allegiance.tenant_id`` with ``SET LOCAL`` semantics
(``set_config(..., true)``) at the start of every transaction: the tenant of the request (API
routes pass it through ``Ctx``) or of :func:`tenant_scope`, else ``'*'`` — the system context
of jobs, the CLI and API-key lookup, which work across tenants. A connection that sets nothing
sees no rows at all.

Superusers and roles with ``BYPASSRLS`` skip every policy, so the application must connect as
an ordinary role: :func:`grant_app_role` creates one (``allegiance_app`` by default) with the
rights the application needs and nothing more.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, text

SETTING = "allegiance.tenant_id"
SYSTEM = "*"
POLICY = "tenant_isolation"
DEFAULT_APP_ROLE = "allegiance_app"

_current: ContextVar[str | None] = ContextVar("allegiance_tenant", default=None)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def current_tenant() -> str | None:
    """The tenant of the running code, or None (system context)."""
    return _current.get()


@contextlib.contextmanager
def tenant_scope(tenant_id: str | None) -> Iterator[None]:
    """Run the block as ``tenant_id``: transactions opened inside see only its rows on PG."""
    token = _current.set(tenant_id)
    try:
        yield
    finally:
        _current.reset(token)


def setting_for(tenant_id: str | None) -> str:
    """The value of ``allegiance.tenant_id`` for a transaction of ``tenant_id``."""
    chosen = tenant_id if tenant_id is not None else current_tenant()
    return chosen if chosen else SYSTEM


def set_transaction_tenant(connection: Connection, value: str,
                           then: Callable[[Any], None] | None = None) -> None:
    """``SET LOCAL allegiance.tenant_id`` (lasts until the transaction ends).

    It goes to the driver in pipeline mode, so psycopg sends the transaction's ``BEGIN`` and
    this statement in one round trip (every transaction pays for it); ``then`` (given the
    driver connection: a statement of the transaction's own, see ``kit.placement.read_with_begin``)
    runs in the same pipeline, so its answer comes back in that round trip too."""
    driver = connection.connection.driver_connection
    if driver is None or not hasattr(driver, "pipeline"):
        connection.execute(text("SELECT set_config(:name, :value, true)"),
                           {"name": SETTING, "value": value})
        if then is not None:
            then(driver)
        return
    with driver.pipeline(), driver.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", (SETTING, value))
        if then is not None:
            then(driver)


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain SQL identifier")
    return name


def tenant_tables(connection: Connection) -> dict[str, str]:
    """Every table of the current schema that belongs to a tenant: name → tenant column."""
    rows = connection.execute(text(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
        " AND t.table_name = c.table_name "
        "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
        " AND (c.column_name = 'tenant_id' OR (c.table_name = 'tenant' AND c.column_name = 'id'))"
    )).all()
    return {str(table): str(column) for table, column in rows}


def apply_row_level_security(connection: Connection) -> list[str]:
    """Enable and force RLS with the tenant policy on every tenant table (idempotent);
    returns the tables. PostgreSQL only; a no-op elsewhere."""
    if connection.dialect.name != "postgresql":
        return []
    tables = tenant_tables(connection)
    predicate = (
        "{column} = current_setting('" + SETTING + "', true) "
        "OR current_setting('" + SETTING + "', true) = '" + SYSTEM + "'"
    )
    for table, column in sorted(tables.items()):
        name = _identifier(table)
        connection.execute(text(f'ALTER TABLE "{name}" ENABLE ROW LEVEL SECURITY'))
        connection.execute(text(f'ALTER TABLE "{name}" FORCE ROW LEVEL SECURITY'))
        connection.execute(text(f'DROP POLICY IF EXISTS {POLICY} ON "{name}"'))
        rule = predicate.format(column=_identifier(column))
        connection.execute(text(
            f'CREATE POLICY {POLICY} ON "{name}" USING ({rule}) WITH CHECK ({rule})'
        ))
    return sorted(tables)


def remove_row_level_security(connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    for table in tenant_tables(connection):
        name = _identifier(table)
        connection.execute(text(f'DROP POLICY IF EXISTS {POLICY} ON "{name}"'))
        connection.execute(text(f'ALTER TABLE "{name}" NO FORCE ROW LEVEL SECURITY'))
        connection.execute(text(f'ALTER TABLE "{name}" DISABLE ROW LEVEL SECURITY'))


def tables_without_forced_rls(connection: Connection) -> list[str]:
    """Tenant tables lacking enabled + forced RLS or the policy (should be none on PG)."""
    tables = tenant_tables(connection)
    rows = connection.execute(text(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
        " EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = :policy) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
    ), {"policy": POLICY}).all()
    protected = {str(name) for name, enabled, forced, policy in rows
                 if enabled and forced and policy}
    return sorted(set(tables) - protected)


def grant_app_role(connection: Connection, role: str = DEFAULT_APP_ROLE,
                   password: str | None = None) -> None:
    """Create (if missing) an ordinary login role for the application — not a superuser, no
    BYPASSRLS — and grant it data rights on the schema's tables and sequences. Run as the
    owner of the schema (for instance ``postgres``) after the migrations."""
    name = _identifier(role)
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                {"r": name}).first()
    if exists is None:
        with contextlib.suppress(Exception), connection.begin_nested():
            # Two processes may race to create the role; the loser's error is harmless.
            connection.execute(text(
                f"CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            ))
    if password is not None:
        connection.execute(text(f"ALTER ROLE {name} PASSWORD :p"), {"p": password})
    attributes = connection.execute(
        text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": name}
    ).one()
    if attributes[0] or attributes[1]:
        raise ValueError(f"role {name} is a superuser or bypasses RLS: it cannot be the app role")
    connection.execute(text(f"GRANT USAGE ON SCHEMA {_schema(connection)} TO {name}"))
    connection.execute(text(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "
        f"{_schema(connection)} TO {name}"
    ))
    connection.execute(text(
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {_schema(connection)} TO {name}"
    ))
    # The audit log and the ledger are append-only for the application (T29): triggers refuse
    # changes, and the role has no right to try. (Journal entries keep UPDATE only because
    # ``SELECT … FOR UPDATE`` — the reversal lock — needs it; the trigger refuses real updates.)
    for table, rights in (("audit_log", "UPDATE, DELETE, TRUNCATE"),
                          ("posting", "UPDATE, DELETE, TRUNCATE"),
                          ("journal_entry", "DELETE, TRUNCATE")):
        if connection.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar():
            connection.execute(text(f'REVOKE {rights} ON "{table}" FROM {name}'))


def _schema(connection: Connection) -> str:
    return _identifier(str(connection.execute(text("SELECT current_schema()")).scalar()))
