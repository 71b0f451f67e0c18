"""segmentinputs: a log of the programs whose segment inputs changed, kept by triggers, so a
refresh with nothing changed since the last one writes no membership and reads no member

* ``segment_input_change (tenant_id, program_id, tx)``: one row per program and writing
  transaction (PostgreSQL: its ``pg_current_xact_id()``; SQLite, one writer at a time: 0)
  that changed what a segment refresh reads — an enrolment (inserted, deleted, its status,
  tier, creation time, account or program changed), an enrolled account's region,
  attributes or status, a running RFM input (``engagement_rfm_input``) or a member counter
  (``member_counter``). Inserts only, keyed by the transaction on PostgreSQL: concurrent
  purchases of a program never wait for each other on it (a counter row would be held by
  each until its commit). ``campaigns.segments.refresh_program`` reads the program's rows
  first, refreshes, and deletes exactly the rows it read (and its own transaction's): a
  change committed meanwhile stays for the next refresh.
* ``segment_refresh (tenant_id, program_id, fingerprint, refreshed_at)``: what the last full
  refresh was computed for (local day, definition version, RFM window, the segments and
  their conditions). A refresh whose fingerprint is the same and finds no change row keeps
  every membership as it is.

PostgreSQL: statement triggers with transition tables (one grouped insert per statement —
a tier recalculation of a million enrolments adds one row). SQLite: row triggers (a probe of
the log's key each; a row is written only by the first change of a program since the last
refresh), on UPDATE only for the columns read and with the log's probe in the WHEN clause.

Revision ID: 0036_segmentinputs
Revises: 0035_expirypause
Create Date: 2026-11-25 04:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from allegiance.kit import tenancy
from allegiance.kit.db import UTCDateTime

revision: str = '0036_segmentinputs'
down_revision: str | None = '0035_expirypause'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table → the columns an UPDATE must change to matter (SQLite's ``UPDATE OF``)
_PROGRAM_TABLES = {
    "enrolment": ("status", "tier", "created_at", "account_id", "program_id", "tenant_id"),
    "engagement_rfm_input": ("last_day", "purchases", "spend", "account_id", "program_id",
                             "tenant_id"),
    "member_counter": ("value", "name", "account_id", "program_id", "tenant_id"),
}
_ACCOUNT_COLUMNS = ("region", "attributes", "status")

# (no trigger body reads the log: an INSERT reading its own table copies the rows it reads to a
# temporary table first — 13 µs a row against 1.8 µs with the probe in the WHEN clause)
_SQLITE_ABSENT = """NOT EXISTS (SELECT 1 FROM segment_input_change c
    WHERE c.tenant_id = {row}.tenant_id AND c.program_id = {row}.program_id AND c.tx = 0)"""
_SQLITE_LOG = """INSERT INTO segment_input_change (tenant_id, program_id, tx)
    VALUES ({row}.tenant_id, {row}.program_id, 0);"""
_SQLITE_ACCOUNT_ABSENT = """EXISTS (SELECT 1 FROM enrolment e
    WHERE e.tenant_id = {row}.tenant_id AND e.account_id = {row}.id AND NOT EXISTS (
        SELECT 1 FROM segment_input_change c WHERE c.tenant_id = e.tenant_id
        AND c.program_id = e.program_id AND c.tx = 0))"""
_SQLITE_ACCOUNT = """INSERT OR IGNORE INTO segment_input_change (tenant_id, program_id, tx)
    SELECT e.tenant_id, e.program_id, 0 FROM enrolment e
    WHERE e.tenant_id = {row}.tenant_id AND e.account_id = {row}.id;"""

_PG_PROGRAMS = """
CREATE OR REPLACE FUNCTION segment_inputs_programs() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO segment_input_change (tenant_id, program_id, tx)
        SELECT DISTINCT tenant_id, program_id, pg_current_xact_id()::text::bigint FROM new_rows
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO segment_input_change (tenant_id, program_id, tx)
        SELECT DISTINCT tenant_id, program_id, pg_current_xact_id()::text::bigint FROM old_rows
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$fn$
"""
_PG_ACCOUNTS = """
CREATE OR REPLACE FUNCTION segment_inputs_accounts() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO segment_input_change (tenant_id, program_id, tx)
        SELECT DISTINCT e.tenant_id, e.program_id, pg_current_xact_id()::text::bigint
        FROM old_rows o JOIN new_rows n ON n.tenant_id = o.tenant_id AND n.id = o.id
        JOIN enrolment e ON e.tenant_id = n.tenant_id AND e.account_id = n.id
        WHERE o.region IS DISTINCT FROM n.region OR o.status IS DISTINCT FROM n.status
           OR CAST(o.attributes AS TEXT) IS DISTINCT FROM CAST(n.attributes AS TEXT)
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO segment_input_change (tenant_id, program_id, tx)
        SELECT DISTINCT e.tenant_id, e.program_id, pg_current_xact_id()::text::bigint
        FROM old_rows o JOIN enrolment e ON e.tenant_id = o.tenant_id AND e.account_id = o.id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$fn$
"""


def _sqlite_triggers() -> list[str]:
    """Row triggers that write a program's row only when it is missing (one writer at a
    time: the WHEN clause's probe and the insert cannot race)."""
    out = []
    moved = "(OLD.tenant_id IS NOT NEW.tenant_id OR OLD.program_id IS NOT NEW.program_id)"
    for table, columns in _PROGRAM_TABLES.items():
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
        of = ", ".join(columns)
        out += [
            f"CREATE TRIGGER segment_inputs_{table}_insert AFTER INSERT ON {table} WHEN "
            + _SQLITE_ABSENT.format(row="NEW") + " BEGIN " + _SQLITE_LOG.format(row="NEW")
            + " END",
            f"CREATE TRIGGER segment_inputs_{table}_delete AFTER DELETE ON {table} WHEN "
            + _SQLITE_ABSENT.format(row="OLD") + " BEGIN " + _SQLITE_LOG.format(row="OLD")
            + " END",
            f"CREATE TRIGGER segment_inputs_{table}_update AFTER UPDATE OF {of} ON {table} "
            f"WHEN ({changed}) AND " + _SQLITE_ABSENT.format(row="NEW") + " BEGIN "
            + _SQLITE_LOG.format(row="NEW") + " END",
            f"CREATE TRIGGER segment_inputs_{table}_moved AFTER UPDATE OF {of} ON {table} "
            f"WHEN {moved} AND " + _SQLITE_ABSENT.format(row="OLD") + " BEGIN "
            + _SQLITE_LOG.format(row="OLD") + " END",
        ]
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _ACCOUNT_COLUMNS)
    out += [
        f"CREATE TRIGGER segment_inputs_account_update AFTER UPDATE OF "
        f"{', '.join(_ACCOUNT_COLUMNS)} ON account WHEN ({changed}) AND "
        + _SQLITE_ACCOUNT_ABSENT.format(row="NEW") + " BEGIN "
        + _SQLITE_ACCOUNT.format(row="NEW") + " END",
        "CREATE TRIGGER segment_inputs_account_delete AFTER DELETE ON account WHEN "
        + _SQLITE_ACCOUNT_ABSENT.format(row="OLD") + " BEGIN "
        + _SQLITE_ACCOUNT.format(row="OLD") + " END",
    ]
    return out


def _sqlite_names() -> list[str]:
    return [f"segment_inputs_{table}_{event}" for table in _PROGRAM_TABLES
            for event in ("insert", "delete", "update", "moved")] + [
        "segment_inputs_account_update", "segment_inputs_account_delete"]


def _pg_triggers() -> list[str]:
    out = [_PG_PROGRAMS, _PG_ACCOUNTS]
    for table in _PROGRAM_TABLES:
        out += [
            f"CREATE TRIGGER segment_inputs_insert AFTER INSERT ON {table} REFERENCING NEW TABLE "
            "AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_inputs_programs()",
            f"CREATE TRIGGER segment_inputs_update AFTER UPDATE ON {table} REFERENCING OLD TABLE "
            "AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION segment_inputs_programs()",
            f"CREATE TRIGGER segment_inputs_delete AFTER DELETE ON {table} REFERENCING OLD TABLE "
            "AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_inputs_programs()",
        ]
    out += [
        "CREATE TRIGGER segment_inputs_update AFTER UPDATE ON account REFERENCING OLD TABLE AS "
        "old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION segment_inputs_accounts()",
        "CREATE TRIGGER segment_inputs_delete AFTER DELETE ON account REFERENCING OLD TABLE AS "
        "old_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_inputs_accounts()",
    ]
    return out


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "segment_input_change",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("program_id", sa.String(length=40), nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "program_id", "tx",
                                name=op.f("pk_segment_input_change")))
    op.create_table(
        "segment_refresh",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("program_id", sa.String(length=40), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("refreshed_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"],
                                name=op.f("fk_segment_refresh_tenant_id_program_id_program")),
        sa.PrimaryKeyConstraint("tenant_id", "program_id", name=op.f("pk_segment_refresh")))
    if bind.dialect.name == "sqlite":
        for statement in _sqlite_triggers():
            op.execute(statement)
        return
    tenancy.apply_row_level_security(bind)
    for statement in _pg_triggers():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _sqlite_names():
            op.execute(f"DROP TRIGGER {name}")
    else:
        for table in (*_PROGRAM_TABLES, "account"):
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS segment_inputs_{event} ON {table}")
        op.execute("DROP FUNCTION segment_inputs_programs()")
        op.execute("DROP FUNCTION segment_inputs_accounts()")
    op.drop_table("segment_refresh")
    op.drop_table("segment_input_change")
