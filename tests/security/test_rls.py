"""T20, the second wall: PostgreSQL row-level security with FORCE on every tenant table, tested
with the application's tenant filter out of the way (plain SELECTs without a WHERE)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from allegiance.kit import tenancy
from allegiance.kit.db import Database
from allegiance.registry import metadata
from tests.security.conftest import Two
from tests.support import databases, figures


def _tenant_tables() -> list[str]:
    return sorted(t.name for t in metadata.sorted_tables if "tenant_id" in t.c)


def test_every_tenant_table_forces_row_level_security(pg_db: Database) -> None:
    with pg_db.engine.connect() as conn:
        missing = tenancy.tables_without_forced_rls(conn)
        tables = tenancy.tenant_tables(conn)
    assert missing == []
    assert set(_tenant_tables()) | {"tenant"} <= set(tables)
    figures.record("t20.rls_tables", tables=len(tables), lacking_force_rls=len(missing))


def test_the_app_connects_as_an_ordinary_role(pg_db: Database) -> None:
    if databases.as_superuser():
        pytest.skip("ALLEGIANCE_TEST_PG_AS_SUPERUSER=1")
    with pg_db.engine.connect() as conn:
        row = conn.execute(text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
    assert tuple(row) == (False, False)


def test_rows_of_another_tenant_are_invisible_without_the_app_filter(two: Two) -> None:
    db = two.db
    if db.is_sqlite or databases.as_superuser():
        pytest.skip("row-level security is PostgreSQL's, for an ordinary role")
    a, b = two.a.tenant_id, two.b.tenant_id
    visible_other = 0
    checked = 0
    with db.read(tenant_id=a) as s:
        for table in _tenant_tables():
            rows = s.execute(text(f'SELECT DISTINCT tenant_id FROM "{table}"')).scalars().all()
            visible_other += sum(1 for t in rows if t != a)
            checked += 1
        tenants_seen = s.execute(text("SELECT id FROM tenant")).scalars().all()
    assert visible_other == 0 and tenants_seen == [a]
    # The system context (jobs, key lookup) sees both; no setting at all sees nothing.
    with db.read() as s:
        both = set(s.execute(text("SELECT id FROM tenant")).scalars())
    assert {a, b} <= both
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM account")).scalar() == 0
    figures.record("t20.rls_filter_disabled", tables=checked, rows_visible=visible_other)


def test_writes_into_another_tenant_are_refused(two: Two) -> None:
    db = two.db
    if db.is_sqlite or databases.as_superuser():
        pytest.skip("row-level security is PostgreSQL's, for an ordinary role")
    a, b = two.a.tenant_id, two.b.tenant_id
    with db.transaction(tenant_id=a) as s:
        changed = s.execute(text("UPDATE account SET name = 'owned' WHERE tenant_id = :b"),
                            {"b": b}).rowcount
        deleted = s.execute(text("DELETE FROM idempotency_record WHERE tenant_id = :b"),
                            {"b": b}).rowcount
    assert (changed, deleted) == (0, 0)
    with pytest.raises(Exception, match="row-level security"), db.transaction(tenant_id=a) as s:
        s.execute(text("UPDATE account SET tenant_id = :b WHERE tenant_id = :a"),
                  {"a": a, "b": b})
    with db.read(tenant_id=b) as s:
        names = s.execute(text("SELECT name FROM account")).scalars().all()
    assert "owned" not in names and names
