"""expiryliability: on SQLite the liability triggers on ``ledger_aging`` can be paused by a
writer that keeps ``liability_holding`` itself, and the aging trigger on ``posting`` reads its
pause before it probes the wallet

SQLite only (PostgreSQL got the same in 0035_expirypause). ``liability_aging_insert`` and
``liability_aging_update`` skip the rows of a tenant whose ``sequence`` row
``liability_paused`` exists: the expiry job adds that row inside its own transaction (one
writer at a time; it is gone when the job's statement is done, before its commit), changes a
chunk's aging rows in two statements and adds their sums to ``liability_holding`` itself,
grouped per (program, unit, tier, day): a few rows where the triggers made one upsert, with
its tier lookup, per changed aging row (``ledger.aging_writes.debit_day_sqlite``). Every other
writer meets one more probe of ``sequence``'s key per aging row and is otherwise unchanged.

``ledger_aging_track``'s ``WHEN`` tested the wallet (a probe of ``ledger_account``) before
its pause (``aging_paused``, 0024_expiry): a paused posting now costs the pause's probe only.

Revision ID: 0037_expiryliability
Revises: 0036_segmentinputs
Create Date: 2026-11-25 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0037_expiryliability'
down_revision: str | None = '0036_segmentinputs'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAUSED = ("NOT EXISTS (SELECT 1 FROM sequence s WHERE s.tenant_id = NEW.tenant_id "
           "AND s.name = 'liability_paused')")
# (trigger, text of the current definition, its replacement)
_EDITS = (
    ("liability_aging_insert", "AFTER INSERT ON ledger_aging BEGIN",
     f"AFTER INSERT ON ledger_aging WHEN {_PAUSED} BEGIN"),
    ("liability_aging_update", "AFTER UPDATE ON ledger_aging WHEN ",
     f"AFTER UPDATE ON ledger_aging WHEN {_PAUSED} AND "),
)
_AGING_WALLET = (
    "EXISTS (SELECT 1 FROM ledger_account a WHERE a.tenant_id = NEW.tenant_id\n"
    "             AND a.id = NEW.account_id AND a.purpose = 'wallet' "
    "AND a.owner_type IN ('account', 'user'))"
)
_AGING_PAUSE = ("NOT EXISTS (SELECT 1 FROM sequence s WHERE s.tenant_id = NEW.tenant_id\n"
                "                     AND s.name = 'aging_paused')")


def _sql(name: str) -> str:
    row = op.get_bind().exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).fetchone()
    if row is None:
        raise RuntimeError(f"trigger {name} is missing")
    return str(row[0])


def _replace(name: str, old: str, new: str) -> None:
    sql = _sql(name)
    if sql.count(old) != 1:
        raise RuntimeError(f"trigger {name} is not the one this migration changes")
    op.execute(f"DROP TRIGGER {name}")
    op.execute(sql.replace(old, new))


def _edits(forward: bool) -> list[tuple[str, str, str]]:
    aging = ("ledger_aging_track", f"WHEN {_AGING_WALLET}\n     AND {_AGING_PAUSE}",
             f"WHEN {_AGING_PAUSE}\n     AND {_AGING_WALLET}")
    edits = [*_EDITS, aging]
    return edits if forward else [(name, new, old) for name, old, new in edits]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, old, new in _edits(True):
        _replace(name, old, new)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, old, new in _edits(False):
        _replace(name, old, new)
