"""Every table carries tenant_id in its primary key, unique constraints and foreign keys
(ARCHITECTURE.md "Tenancy and scale"), so one tenant's rows can be distributed together and
no key of one tenant can point into another. Checked on the models that the migration builds."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint

from allegiance.registry import metadata

# Global tables: the tenant itself; reference data (time zones' UTC offsets, kit.zones).
EXCEPTIONS = {"tenant", "zone_offset"}


def test_every_key_includes_tenant_id() -> None:
    problems = []
    for table in metadata.sorted_tables:
        if table.name in EXCEPTIONS:
            continue
        if "tenant_id" not in table.c:
            problems.append(f"{table.name}: no tenant_id column")
            continue
        if "tenant_id" not in table.primary_key.columns:
            problems.append(f"{table.name}: primary key lacks tenant_id")
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint) and "tenant_id" not in constraint.columns:
                problems.append(f"{table.name}: unique {constraint.name} lacks tenant_id")
        for fk in table.foreign_key_constraints:
            local = [c.name for c in fk.columns]
            if "tenant_id" not in local:
                problems.append(f"{table.name}: foreign key {fk.name} lacks tenant_id")
            else:
                target = fk.elements[local.index("tenant_id")].column
                if target.name not in ("tenant_id", "id") or (
                    target.name == "id" and target.table.name != "tenant"
                ):
                    problems.append(f"{table.name}: {fk.name} maps tenant_id to {target}")
        for index in table.indexes:
            if index.unique and "tenant_id" not in index.columns:
                problems.append(f"{table.name}: unique index {index.name} lacks tenant_id")
    assert not problems, "\n".join(problems)


def test_migration_matches_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The schema built by Alembic is the schema the models describe (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from allegiance.kit.db import make_engine
    from allegiance.kit.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"
