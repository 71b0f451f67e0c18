"""expirypause: on PostgreSQL the pausable row triggers test their pause in the trigger's
``WHEN`` (no PL/pgSQL call for a paused row), and ``liability_aging_track`` can be paused too

``ledger_aging_track`` (on ``posting``) was paused by the function itself returning at once:
a PL/pgSQL call per posting of a writer that keeps ``ledger_aging`` itself. Its ``WHEN``
now reads the same transaction-local setting ``allegiance.aging_paused`` (the function keeps
its own check). ``liability_aging_track`` (on ``ledger_aging``) gets the setting
``allegiance.liability_paused``: a writer that changes many aging rows in one statement (the
expiry job) pauses it for that statement and appends the same sums to ``liability_delta``
itself, grouped, in the same statement (``ledger.expiry_bulk``). Every other writer is
unchanged. SQLite: nothing (its triggers write ``liability_holding``; it has no such setting).

Revision ID: 0035_expirypause
Revises: 0034_posthot
Create Date: 2026-11-25 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0035_expirypause'
down_revision: str | None = '0034_posthot'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGGERS = (
    ("ledger_aging_track", "posting", "AFTER INSERT", "allegiance.aging_paused"),
    ("liability_aging_track", "ledger_aging", "AFTER INSERT OR UPDATE OR DELETE",
     "allegiance.liability_paused"),
)


def _create(name: str, table: str, events: str, setting: str | None) -> str:
    when = (f"WHEN (current_setting('{setting}', true) IS DISTINCT FROM 'on') "
            if setting else "")
    return (f"CREATE TRIGGER {name} {events} ON {table} FOR EACH ROW {when}"
            f"EXECUTE FUNCTION {name}()")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, events, setting in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute(_create(name, table, events, setting))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, events, _ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute(_create(name, table, events, None))
