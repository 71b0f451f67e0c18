"""aging: member wallets' credits, debits and remaining balance per day of credit, kept by a
trigger on posting (the liability "now" reads it instead of every posting)

Revision ID: 0018_aging
Revises: 0017_engage
Create Date: 2026-11-24 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018_aging'
down_revision: str | None = '0017_engage'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The UTC day of a journal entry's effective_at, as days since 1970-01-01. SQLite stores the
# timestamp as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'.
_DAY = {
    "sqlite": "CAST(julianday(substr({e}.effective_at, 1, 10)) - 2440587.5 AS INTEGER)",
    "postgresql": "((({e}.effective_at AT TIME ZONE 'UTC')::date) - DATE '1970-01-01')",
}
_WALLET = ("a.purpose = 'wallet' AND a.owner_type IN ('account', 'user')")
# remaining of a day = the part of the balance its credits make up, the newest credits first.
_PART = {"sqlite": "max(0, min(credits, bal - (newer - credits)))",
         "postgresql": "GREATEST(0, LEAST(credits, bal - (newer - credits)))"}

_SQLITE_TRIGGER = f"""
CREATE TRIGGER ledger_aging_track AFTER INSERT ON posting
WHEN EXISTS (SELECT 1 FROM ledger_account a WHERE a.tenant_id = NEW.tenant_id
             AND a.id = NEW.account_id AND {_WALLET})
BEGIN
    INSERT INTO ledger_aging (tenant_id, account_id, day, credits, debits, remaining)
    SELECT NEW.tenant_id, NEW.account_id, {_DAY["sqlite"].format(e="e")},
           CASE WHEN NEW.side = 'C' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.side = 'D' THEN NEW.amount ELSE 0 END, 0
    FROM journal_entry e WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.entry_id
    ON CONFLICT (tenant_id, account_id, day) DO UPDATE
    SET credits = credits + excluded.credits, debits = debits + excluded.debits;
    UPDATE ledger_aging SET remaining = r.part
    FROM (SELECT day, {_PART["sqlite"]} AS part FROM (
            SELECT day, credits, SUM(credits - debits) OVER () AS bal,
                   SUM(credits) OVER (ORDER BY day DESC ROWS UNBOUNDED PRECEDING) AS newer
            FROM ledger_aging WHERE tenant_id = NEW.tenant_id AND account_id = NEW.account_id)
         ) AS r
    WHERE ledger_aging.tenant_id = NEW.tenant_id AND ledger_aging.account_id = NEW.account_id
      AND ledger_aging.day = r.day AND ledger_aging.remaining <> r.part;
END
"""

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION ledger_aging_track() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_account a WHERE a.tenant_id = NEW.tenant_id
                   AND a.id = NEW.account_id AND {_WALLET}) THEN
        RETURN NULL;
    END IF;
    INSERT INTO ledger_aging AS g (tenant_id, account_id, day, credits, debits, remaining)
    SELECT NEW.tenant_id, NEW.account_id, {_DAY["postgresql"].format(e="e")},
           CASE WHEN NEW.side = 'C' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.side = 'D' THEN NEW.amount ELSE 0 END, 0
    FROM journal_entry e WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.entry_id
    ON CONFLICT (tenant_id, account_id, day) DO UPDATE
    SET credits = g.credits + EXCLUDED.credits, debits = g.debits + EXCLUDED.debits;
    UPDATE ledger_aging g SET remaining = r.part
    FROM (SELECT day, {_PART["postgresql"]} AS part FROM (
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


def backfill_sql(dialect: str) -> list[str]:
    """The table's rows from the postings already written (also used by ``bench``)."""
    fill = (
        "INSERT INTO ledger_aging (tenant_id, account_id, day, credits, debits, remaining) "
        f"SELECT p.tenant_id, p.account_id, {_DAY[dialect].format(e='e')}, "
        "SUM(CASE WHEN p.side = 'C' THEN p.amount ELSE 0 END), "
        "SUM(CASE WHEN p.side = 'D' THEN p.amount ELSE 0 END), 0 "
        "FROM posting p JOIN journal_entry e ON e.tenant_id = p.tenant_id AND e.id = p.entry_id "
        "JOIN ledger_account a ON a.tenant_id = p.tenant_id AND a.id = p.account_id "
        f"WHERE {_WALLET} GROUP BY 1, 2, 3"
    )
    window = (
        f"SELECT tenant_id, account_id, day, {_PART[dialect]} AS part FROM ("
        "SELECT tenant_id, account_id, day, credits, "
        "SUM(credits - debits) OVER (PARTITION BY tenant_id, account_id) AS bal, "
        "SUM(credits) OVER (PARTITION BY tenant_id, account_id ORDER BY day DESC "
        "ROWS UNBOUNDED PRECEDING) AS newer FROM ledger_aging) w"
    )
    update = (
        f"UPDATE ledger_aging SET remaining = r.part FROM ({window}) AS r "
        "WHERE ledger_aging.tenant_id = r.tenant_id AND ledger_aging.account_id = r.account_id "
        "AND ledger_aging.day = r.day AND r.part <> 0"
    )
    return [fill, update]


def upgrade() -> None:
    op.create_table('ledger_aging',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('day', sa.BigInteger(), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('debits', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('credits >= 0 AND debits >= 0 AND remaining >= 0 AND remaining <= credits',
                       name=op.f('ck_ledger_aging_amounts')),
    sa.ForeignKeyConstraint(['tenant_id', 'account_id'], ['ledger_account.tenant_id', 'ledger_account.id'], name=op.f('fk_ledger_aging_tenant_id_account_id_ledger_account')),
    sa.PrimaryKeyConstraint('tenant_id', 'account_id', 'day', name=op.f('pk_ledger_aging')),
    sqlite_with_rowid=False
    )
    dialect = op.get_bind().dialect.name
    for statement in backfill_sql(dialect):
        op.execute(statement)
    if dialect == "sqlite":
        op.execute(_SQLITE_TRIGGER)
    else:
        op.execute(_PG_FUNCTION)
        op.execute("CREATE TRIGGER ledger_aging_track AFTER INSERT ON posting "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_aging_track()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_aging_track")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_aging_track ON posting")
        op.execute("DROP FUNCTION IF EXISTS ledger_aging_track()")
    op.drop_table('ledger_aging')
