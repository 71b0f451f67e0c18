"""agingfast: the ledger_aging trigger recomputes a wallet's remaining-per-day only when a
posting can change how its balance spreads over the days

A credit on the wallet's newest day (or a newer one) while its balance is not negative only
adds to that day's remaining: the newest credits make up the balance first, so every older
day keeps its part. That is almost every posting (earning); the trigger used to run a window
over all the wallet's days for each one. Debits, back-dated credits and credits that pay a debt
still take the full recomputation (on SQLite: whenever the sum of the remaining amounts no
longer equals the balance, which is what any of those changes). The pause of 0024_expiry (a
transaction that keeps ``ledger_aging`` itself) is kept.

Revision ID: 0025_agingfast
Revises: 0024_expiry
Create Date: 2026-11-24 08:40:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = '0025_agingfast'
down_revision: str | None = '0024_expiry'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WALLET = "a.purpose = 'wallet' AND a.owner_type IN ('account', 'user')"
_MINE = "g.tenant_id = NEW.tenant_id AND g.account_id = NEW.account_id"

_SQLITE_TRIGGER = f"""
CREATE TRIGGER ledger_aging_track AFTER INSERT ON posting
WHEN EXISTS (SELECT 1 FROM ledger_account a WHERE a.tenant_id = NEW.tenant_id
             AND a.id = NEW.account_id AND {_WALLET})
     AND NOT EXISTS (SELECT 1 FROM sequence s WHERE s.tenant_id = NEW.tenant_id
                     AND s.name = 'aging_paused')
BEGIN
    INSERT INTO ledger_aging (tenant_id, account_id, day, credits, debits, remaining)
    SELECT NEW.tenant_id, NEW.account_id, d.day,
           CASE WHEN NEW.side = 'C' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.side = 'D' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.side = 'C'
                 AND NOT EXISTS (SELECT 1 FROM ledger_aging g WHERE {_MINE} AND g.day > d.day)
                 AND (SELECT COALESCE(SUM(g.credits - g.debits), 0) FROM ledger_aging g
                      WHERE {_MINE}) >= 0
                THEN NEW.amount ELSE 0 END
    FROM (SELECT CAST(julianday(substr(e.effective_at, 1, 10)) - 2440587.5 AS INTEGER) AS day
          FROM journal_entry e WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.entry_id) AS d
    WHERE true
    ON CONFLICT (tenant_id, account_id, day) DO UPDATE
    SET credits = credits + excluded.credits, debits = debits + excluded.debits,
        remaining = remaining + excluded.remaining;
    UPDATE ledger_aging SET remaining = r.part
    FROM (SELECT day, max(0, min(credits, bal - (newer - credits))) AS part FROM (
            SELECT day, credits, SUM(credits - debits) OVER () AS bal,
                   SUM(credits) OVER (ORDER BY day DESC ROWS UNBOUNDED PRECEDING) AS newer
            FROM ledger_aging g WHERE {_MINE}
              AND (SELECT SUM(remaining) FROM ledger_aging g WHERE {_MINE})
                  <> (SELECT max(0, SUM(credits - debits)) FROM ledger_aging g WHERE {_MINE}))
         ) AS r
    WHERE ledger_aging.tenant_id = NEW.tenant_id AND ledger_aging.account_id = NEW.account_id
      AND ledger_aging.day = r.day AND ledger_aging.remaining <> r.part;
END
"""

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION ledger_aging_track() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    credit_day bigint;
    adds_only boolean;
BEGIN
    IF current_setting('allegiance.aging_paused', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ledger_account a WHERE a.tenant_id = NEW.tenant_id
                   AND a.id = NEW.account_id AND {_WALLET}) THEN
        RETURN NULL;
    END IF;
    SELECT ((e.effective_at AT TIME ZONE 'UTC')::date) - DATE '1970-01-01' INTO credit_day
    FROM journal_entry e WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.entry_id;
    adds_only := NEW.side = 'C'
        AND NOT EXISTS (SELECT 1 FROM ledger_aging g WHERE {_MINE} AND g.day > credit_day)
        AND (SELECT COALESCE(SUM(g.credits - g.debits), 0) FROM ledger_aging g
             WHERE {_MINE}) >= 0;
    INSERT INTO ledger_aging AS g (tenant_id, account_id, day, credits, debits, remaining)
    VALUES (NEW.tenant_id, NEW.account_id, credit_day,
            CASE WHEN NEW.side = 'C' THEN NEW.amount ELSE 0 END,
            CASE WHEN NEW.side = 'D' THEN NEW.amount ELSE 0 END,
            CASE WHEN adds_only THEN NEW.amount ELSE 0 END)
    ON CONFLICT (tenant_id, account_id, day) DO UPDATE
    SET credits = g.credits + EXCLUDED.credits, debits = g.debits + EXCLUDED.debits,
        remaining = g.remaining + EXCLUDED.remaining;
    IF adds_only THEN
        RETURN NULL;
    END IF;
    UPDATE ledger_aging g SET remaining = r.part
    FROM (SELECT day, GREATEST(0, LEAST(credits, bal - (newer - credits))) AS part FROM (
            SELECT day, credits, SUM(credits - debits) OVER () AS bal,
                   SUM(credits) OVER (ORDER BY day DESC ROWS UNBOUNDED PRECEDING) AS newer
            FROM ledger_aging g WHERE {_MINE}
         ) w) r
    WHERE {_MINE} AND g.day = r.day AND g.remaining <> r.part;
    RETURN NULL;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_aging_track")
        op.execute(_SQLITE_TRIGGER)
    else:
        op.execute(_PG_FUNCTION)


def downgrade() -> None:
    """Back to 0024_expiry's trigger (its own text, read from that migration)."""
    path = Path(__file__).with_name("20261124_0024_expiry.py")
    spec = importlib.util.spec_from_file_location("expiry_0024", path)
    assert spec is not None and spec.loader is not None
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_aging_track")
    op.execute(previous._trigger(dialect, pausable=True))
