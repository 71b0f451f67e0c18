"""expiry: the due-lot index holds only open lots, in the expiry job's order (``expires_at``,
``id``); and the aging trigger can be paused by a transaction that keeps ``ledger_aging``
itself, set-based (the expiry job: one statement per chunk instead of one trigger run per
posting)

The pause is visible only to the transaction that sets it: on PostgreSQL the transaction-local
setting ``allegiance.aging_paused``; on SQLite the tenant's row ``aging_paused`` in
``sequence``, written and deleted inside the writer's own transaction (SQLite has one writer at
a time, and readers fire no trigger). Every other writer's postings are tracked by the trigger exactly as before.

Revision ID: 0024_expiry
Revises: 0023_tiers
Create Date: 2026-11-24 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0024_expiry'
down_revision: str | None = '0023_tiers'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DAY = {
    "sqlite": "CAST(julianday(substr(e.effective_at, 1, 10)) - 2440587.5 AS INTEGER)",
    "postgresql": "(((e.effective_at AT TIME ZONE 'UTC')::date) - DATE '1970-01-01')",
}
_WALLET = ("a.purpose = 'wallet' AND a.owner_type IN ('account', 'user')")
_PART = {"sqlite": "max(0, min(credits, bal - (newer - credits)))",
         "postgresql": "GREATEST(0, LEAST(credits, bal - (newer - credits)))"}

_SQLITE_TRIGGER = """
CREATE TRIGGER ledger_aging_track AFTER INSERT ON posting
WHEN EXISTS (SELECT 1 FROM ledger_account a WHERE a.tenant_id = NEW.tenant_id
             AND a.id = NEW.account_id AND {wallet}){paused}
BEGIN
    INSERT INTO ledger_aging (tenant_id, account_id, day, credits, debits, remaining)
    SELECT NEW.tenant_id, NEW.account_id, {day},
           CASE WHEN NEW.side = 'C' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.side = 'D' THEN NEW.amount ELSE 0 END, 0
    FROM journal_entry e WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.entry_id
    ON CONFLICT (tenant_id, account_id, day) DO UPDATE
    SET credits = credits + excluded.credits, debits = debits + excluded.debits;
    UPDATE ledger_aging SET remaining = r.part
    FROM (SELECT day, {part} AS part FROM (
            SELECT day, credits, SUM(credits - debits) OVER () AS bal,
                   SUM(credits) OVER (ORDER BY day DESC ROWS UNBOUNDED PRECEDING) AS newer
            FROM ledger_aging WHERE tenant_id = NEW.tenant_id AND account_id = NEW.account_id)
         ) AS r
    WHERE ledger_aging.tenant_id = NEW.tenant_id AND ledger_aging.account_id = NEW.account_id
      AND ledger_aging.day = r.day AND ledger_aging.remaining <> r.part;
END
"""

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_aging_track() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {paused}IF NOT EXISTS (SELECT 1 FROM ledger_account a WHERE a.tenant_id = NEW.tenant_id
                   AND a.id = NEW.account_id AND {wallet}) THEN
        RETURN NULL;
    END IF;
    INSERT INTO ledger_aging AS g (tenant_id, account_id, day, credits, debits, remaining)
    SELECT NEW.tenant_id, NEW.account_id, {day},
           CASE WHEN NEW.side = 'C' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.side = 'D' THEN NEW.amount ELSE 0 END, 0
    FROM journal_entry e WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.entry_id
    ON CONFLICT (tenant_id, account_id, day) DO UPDATE
    SET credits = g.credits + EXCLUDED.credits, debits = g.debits + EXCLUDED.debits;
    UPDATE ledger_aging g SET remaining = r.part
    FROM (SELECT day, {part} AS part FROM (
            SELECT day, credits, SUM(credits - debits) OVER () AS bal,
                   SUM(credits) OVER (ORDER BY day DESC ROWS UNBOUNDED PRECEDING) AS newer
            FROM ledger_aging WHERE tenant_id = NEW.tenant_id AND account_id = NEW.account_id
         ) w) r
    WHERE g.tenant_id = NEW.tenant_id AND g.account_id = NEW.account_id AND g.day = r.day
      AND g.remaining <> r.part;
    RETURN NULL;
END
$fn$
"""
_SQLITE_PAUSED = ("\n     AND NOT EXISTS (SELECT 1 FROM sequence s WHERE s.tenant_id = NEW.tenant_id"
                  "\n                     AND s.name = 'aging_paused')")
_PG_PAUSED = ("IF current_setting('allegiance.aging_paused', true) = 'on' THEN\n"
              "        RETURN NULL;\n    END IF;\n    ")


def _trigger(dialect: str, pausable: bool) -> str:
    if dialect == "sqlite":
        return _SQLITE_TRIGGER.format(wallet=_WALLET, day=_DAY["sqlite"], part=_PART["sqlite"],
                                      paused=_SQLITE_PAUSED if pausable else "")
    return _PG_FUNCTION.format(wallet=_WALLET, day=_DAY["postgresql"],
                               part=_PART["postgresql"], paused=_PG_PAUSED if pausable else "")


def upgrade() -> None:
    op.drop_index('ix_lot_expiry', table_name='lot')
    op.create_index('ix_lot_expiry', 'lot', ['expires_at', 'id'], unique=False,
                    sqlite_where=sa.text('remaining > 0'),
                    postgresql_where=sa.text('remaining > 0'))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER ledger_aging_track")
    op.execute(_trigger(dialect, pausable=True))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER ledger_aging_track")
    op.execute(_trigger(dialect, pausable=False))
    op.drop_index('ix_lot_expiry', table_name='lot')
    op.create_index('ix_lot_expiry', 'lot', ['expires_at', 'remaining'], unique=False)
