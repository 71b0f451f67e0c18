"""analytics: summary tables the reports read instead of the ledger and the events, kept by
triggers in the writing transaction

* ``liability_holding``: per (program, unit, member's tier, credit day) the sum over member
  wallets of ``ledger_aging.remaining`` and of ``credits - debits`` (``net``). Kept by a
  trigger on ``ledger_aging`` (not on ``posting``: the bulk expiry pauses the posting trigger
  and writes ``ledger_aging`` itself) and by one on ``enrolment`` (a tier change moves the
  member's holdings). A wallet's negative balance is ``net - remaining`` summed over its
  days (the remaining amounts add up to max(0, balance)), so it sums per tier too. No tier is
  ``''``. On PostgreSQL the triggers append to ``liability_delta`` instead (every earning of a
  day would otherwise lock one row per tier until commit); the job ``liability-fold`` moves
  the deltas into ``liability_holding`` and the report reads both.
* ``purchase_day``: per (program, member, UTC day, currency) the processed purchases with a
  member and their spend net of returns (minor units), for RFM / CLV.
* ``purchase_member``: per (program, member) the same purchases summed up — first and last
  purchase day, purchase days, spend, spend of the first day, and the currency ('*' when the
  member's days are in several) — so RFM with a calibration end after a member's last
  purchase reads one row per member.
* ``member_month``: per (program, member, UTC month as year × 12 + month) the processed
  purchases and activities, for retention cohorts.

Revision ID: 0026_analytics
Revises: 0025_agingfast
Create Date: 2026-11-24 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0026_analytics'
down_revision: str | None = '0025_agingfast'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOLDING_KEY = "tenant_id, program_id, unit_id, tier, day"
_HOLDING_COLS = f"{_HOLDING_KEY}, remaining, net"
_UPSERT_HOLDING = (f"ON CONFLICT ({_HOLDING_KEY}) DO UPDATE SET "
                   "remaining = liability_holding.remaining + excluded.remaining, "
                   "net = liability_holding.net + excluded.net")


def _tier(a: str) -> str:
    """The tier ('' when none) of the member behind wallet ``a`` in its program."""
    return (f"COALESCE((SELECT en.tier FROM enrolment en WHERE en.tenant_id = {a}.tenant_id "
            f"AND en.program_id = {a}.program_id AND en.account_id = CASE WHEN "
            f"{a}.owner_type = 'account' THEN {a}.owner_id ELSE (SELECT u.account_id FROM "
            f"member_user u WHERE u.tenant_id = {a}.tenant_id AND u.id = {a}.owner_id) END), '')")


def _member_wallets(t: str, p: str, m: str) -> str:
    return (f"a.tenant_id = {t} AND a.program_id = {p} AND a.purpose = 'wallet' AND ("
            f"(a.owner_type = 'account' AND a.owner_id = {m}) OR (a.owner_type = 'user' "
            f"AND a.owner_id IN (SELECT u.id FROM member_user u WHERE u.tenant_id = {t} "
            f"AND u.account_id = {m})))")


def _shift(table: str, t: str, p: str, m: str, old: str, new: str, upsert: str) -> str:
    """Move the holdings of member ``m``'s wallets in program ``p`` from tier ``old`` to
    ``new`` (tiers as SQL expressions, NULL meaning none)."""
    return (f"INSERT INTO {table} ({_HOLDING_COLS}) "
            f"SELECT a.tenant_id, a.program_id, a.unit_id, s.tier, g.day, "
            f"s.sign * SUM(g.remaining), s.sign * SUM(g.credits - g.debits) "
            f"FROM ledger_account a JOIN ledger_aging g ON g.tenant_id = a.tenant_id "
            f"AND g.account_id = a.id CROSS JOIN (SELECT COALESCE({old}, '') AS tier, -1 AS sign "
            f"UNION ALL SELECT COALESCE({new}, ''), 1) s WHERE {_member_wallets(t, p, m)} "
            f"GROUP BY a.tenant_id, a.program_id, a.unit_id, s.tier, g.day, s.sign {upsert}")


# --- SQLite: the triggers write liability_holding directly (one writer at a time) -----------

_S_DAY = "CAST(julianday(substr({c}, 1, 10)) - 2440587.5 AS INTEGER)"
_S_MONTH = "(CAST(substr({c}, 1, 4) AS INTEGER) * 12 + CAST(substr({c}, 6, 2) AS INTEGER))"


def _s_aging(sign: str, row: str, remaining: str, net: str) -> str:
    return (f"INSERT INTO liability_holding ({_HOLDING_COLS}) SELECT a.tenant_id, a.program_id, "
            f"a.unit_id, {_tier('a')}, {row}.day, {sign}{remaining}, {sign}{net} "
            f"FROM ledger_account a WHERE a.tenant_id = {row}.tenant_id AND a.id = {row}.account_id "
            f"{_UPSERT_HOLDING};")


_QUALIFIES = ("{r}.status = 'processed' AND {r}.account_id IS NOT NULL "
              "AND {r}.kind IN ('purchase', 'activity')")


_MEMBER_COLS = ("tenant_id, program_id, account_id, first_day, last_day, days, amount, "
                "first_amount, currency")
_MEMBER_VALUES = (
    "d.tenant_id, d.program_id, d.account_id, MIN(d.day), MAX(d.day), COUNT(DISTINCT d.day), "
    "SUM(d.amount), SUM(CASE WHEN d.day = f.day THEN d.amount ELSE 0 END), "
    "CASE WHEN MIN(d.currency) = MAX(d.currency) THEN MIN(d.currency) ELSE '*' END")


def _member_refresh(r: str, guard: str) -> list[str]:
    """``purchase_member``'s row of event ``r``'s member, again from ``purchase_day`` (only
    when ``guard`` holds)."""
    key = (f"tenant_id = {r}.tenant_id AND program_id = {r}.program_id "
           f"AND account_id = {r}.account_id")
    mine = " AND ".join(f"d.{part}" for part in key.split(" AND "))
    return [
        f"INSERT INTO purchase_member ({_MEMBER_COLS}) SELECT {_MEMBER_VALUES} "
        f"FROM purchase_day d, (SELECT MIN(day) AS day FROM purchase_day WHERE {key}) f "
        f"WHERE {mine} AND {guard} GROUP BY d.tenant_id, d.program_id, d.account_id "
        "ON CONFLICT (tenant_id, program_id, account_id) DO UPDATE SET "
        "first_day = excluded.first_day, last_day = excluded.last_day, days = excluded.days, "
        "amount = excluded.amount, first_amount = excluded.first_amount, "
        "currency = excluded.currency;",
        f"DELETE FROM purchase_member WHERE {key} AND {guard} "
        f"AND NOT EXISTS (SELECT 1 FROM purchase_day WHERE {key});",
    ]


def _s_event_add(r: str) -> list[str]:
    q = _QUALIFIES.format(r=r)
    return [
        "INSERT INTO purchase_day (tenant_id, program_id, account_id, day, currency, purchases, "
        f"amount) SELECT {r}.tenant_id, {r}.program_id, {r}.account_id, "
        f"{_S_DAY.format(c=f'{r}.occurred_at')}, COALESCE({r}.currency, ''), 1, "
        f"{r}.amount - {r}.returned_amount WHERE {q} AND {r}.kind = 'purchase' "
        "ON CONFLICT (tenant_id, program_id, account_id, day, currency) DO UPDATE SET "
        "purchases = purchases + 1, amount = amount + excluded.amount;",
        *_member_refresh(r, f"{q} AND {r}.kind = 'purchase'"),
        "INSERT INTO member_month (tenant_id, program_id, account_id, month, events) "
        f"SELECT {r}.tenant_id, {r}.program_id, {r}.account_id, "
        f"{_S_MONTH.format(c=f'{r}.occurred_at')}, 1 WHERE {q} "
        "ON CONFLICT (tenant_id, program_id, account_id, month) DO UPDATE SET "
        "events = events + 1;",
    ]


def _s_event_remove(r: str) -> list[str]:
    q = _QUALIFIES.format(r=r)
    day = (f"tenant_id = {r}.tenant_id AND program_id = {r}.program_id AND account_id = "
           f"{r}.account_id AND day = {_S_DAY.format(c=f'{r}.occurred_at')} "
           f"AND currency = COALESCE({r}.currency, '')")
    month = (f"tenant_id = {r}.tenant_id AND program_id = {r}.program_id AND account_id = "
             f"{r}.account_id AND month = {_S_MONTH.format(c=f'{r}.occurred_at')}")
    return [
        f"UPDATE purchase_day SET purchases = purchases - 1, amount = amount - "
        f"({r}.amount - {r}.returned_amount) WHERE {day} AND {q} AND {r}.kind = 'purchase';",
        f"DELETE FROM purchase_day WHERE {day} AND purchases = 0;",
        *_member_refresh(r, f"{q} AND {r}.kind = 'purchase'"),
        f"UPDATE member_month SET events = events - 1 WHERE {month} AND {q};",
        f"DELETE FROM member_month WHERE {month} AND events = 0;",
    ]


_EVENT_COLUMNS = ("status", "account_id", "kind", "occurred_at", "amount", "returned_amount",
                  "currency", "program_id", "tenant_id")


def _sqlite_triggers() -> list[str]:
    old_net, new_net = "(OLD.credits - OLD.debits)", "(NEW.credits - NEW.debits)"
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _EVENT_COLUMNS)
    either = f"({_QUALIFIES.format(r='OLD')}) OR ({_QUALIFIES.format(r='NEW')})"
    same_key = "OLD.account_id = NEW.account_id AND OLD.day = NEW.day"
    return [
        "CREATE TRIGGER liability_aging_insert AFTER INSERT ON ledger_aging BEGIN "
        + _s_aging("", "NEW", "NEW.remaining", new_net) + " END",
        "CREATE TRIGGER liability_aging_update AFTER UPDATE ON ledger_aging "
        f"WHEN {same_key} AND (OLD.remaining <> NEW.remaining OR {old_net} <> {new_net}) BEGIN "
        + _s_aging("", "NEW", "(NEW.remaining - OLD.remaining)", f"({new_net} - {old_net})")
        + " END",
        "CREATE TRIGGER liability_aging_rekey AFTER UPDATE ON ledger_aging "
        f"WHEN NOT ({same_key}) BEGIN "
        + _s_aging("-", "OLD", "OLD.remaining", old_net)
        + _s_aging("", "NEW", "NEW.remaining", new_net) + " END",
        "CREATE TRIGGER liability_aging_delete AFTER DELETE ON ledger_aging BEGIN "
        + _s_aging("-", "OLD", "OLD.remaining", old_net) + " END",
        "CREATE TRIGGER liability_tier_insert AFTER INSERT ON enrolment "
        "WHEN COALESCE(NEW.tier, '') <> '' BEGIN "
        + _shift("liability_holding", "NEW.tenant_id", "NEW.program_id", "NEW.account_id",
                 "NULL", "NEW.tier", _UPSERT_HOLDING) + "; END",
        "CREATE TRIGGER liability_tier_update AFTER UPDATE OF tier ON enrolment "
        "WHEN COALESCE(OLD.tier, '') <> COALESCE(NEW.tier, '') "
        "AND OLD.account_id = NEW.account_id AND OLD.program_id = NEW.program_id BEGIN "
        + _shift("liability_holding", "NEW.tenant_id", "NEW.program_id", "NEW.account_id",
                 "OLD.tier", "NEW.tier", _UPSERT_HOLDING) + "; END",
        "CREATE TRIGGER liability_tier_rekey AFTER UPDATE OF account_id, program_id ON enrolment "
        "WHEN OLD.account_id <> NEW.account_id OR OLD.program_id <> NEW.program_id BEGIN "
        + _shift("liability_holding", "OLD.tenant_id", "OLD.program_id", "OLD.account_id",
                 "OLD.tier", "NULL", _UPSERT_HOLDING) + "; "
        + _shift("liability_holding", "NEW.tenant_id", "NEW.program_id", "NEW.account_id",
                 "NULL", "NEW.tier", _UPSERT_HOLDING) + "; END",
        "CREATE TRIGGER liability_tier_delete AFTER DELETE ON enrolment "
        "WHEN COALESCE(OLD.tier, '') <> '' BEGIN "
        + _shift("liability_holding", "OLD.tenant_id", "OLD.program_id", "OLD.account_id",
                 "OLD.tier", "NULL", _UPSERT_HOLDING) + "; END",
        f"CREATE TRIGGER analytics_event_insert AFTER INSERT ON event "
        f"WHEN {_QUALIFIES.format(r='NEW')} BEGIN " + " ".join(_s_event_add("NEW")) + " END",
        f"CREATE TRIGGER analytics_event_update AFTER UPDATE ON event "
        f"WHEN ({either}) AND ({changed}) BEGIN "
        + " ".join(_s_event_remove("OLD") + _s_event_add("NEW")) + " END",
        f"CREATE TRIGGER analytics_event_delete AFTER DELETE ON event "
        f"WHEN {_QUALIFIES.format(r='OLD')} BEGIN " + " ".join(_s_event_remove("OLD")) + " END",
    ]


_SQLITE_TRIGGER_NAMES = (
    "liability_aging_insert", "liability_aging_update", "liability_aging_rekey",
    "liability_aging_delete", "liability_tier_insert", "liability_tier_update",
    "liability_tier_rekey", "liability_tier_delete", "analytics_event_insert",
    "analytics_event_update", "analytics_event_delete",
)

# --- PostgreSQL: deltas appended (no shared hot row), events upserted per member ------------

_P_DAY = "((({c} AT TIME ZONE 'UTC')::date) - DATE '1970-01-01')"
_P_MONTH = ("(CAST(EXTRACT(YEAR FROM {c} AT TIME ZONE 'UTC') AS INTEGER) * 12 "
            "+ CAST(EXTRACT(MONTH FROM {c} AT TIME ZONE 'UTC') AS INTEGER))")


def _p_aging(row: str, remaining: str, net: str) -> str:
    return (f"INSERT INTO liability_delta ({_HOLDING_COLS}) SELECT a.tenant_id, a.program_id, "
            f"a.unit_id, {_tier('a')}, {row}.day, {remaining}, {net} FROM ledger_account a "
            f"WHERE a.tenant_id = {row}.tenant_id AND a.id = {row}.account_id;")


_PG_AGING = f"""
CREATE OR REPLACE FUNCTION liability_aging_track() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.account_id = NEW.account_id AND OLD.day = NEW.day THEN
        IF OLD.remaining = NEW.remaining
           AND OLD.credits - OLD.debits = NEW.credits - NEW.debits THEN
            RETURN NULL;
        END IF;
        {_p_aging("NEW", "NEW.remaining - OLD.remaining",
                  "(NEW.credits - NEW.debits) - (OLD.credits - OLD.debits)")}
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_p_aging("OLD", "-OLD.remaining", "-(OLD.credits - OLD.debits)")}
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        {_p_aging("NEW", "NEW.remaining", "NEW.credits - NEW.debits")}
    END IF;
    RETURN NULL;
END
$fn$
"""


def _p_lock(t: str, p: str, m: str) -> str:
    """Lock the member's wallets (id order) before reading their aging: a posting holds its
    wallet's row from its counter update to its commit, so the shift waits for postings in
    flight and later ones read the new tier."""
    return (f"PERFORM 1 FROM ledger_account a WHERE {_member_wallets(t, p, m)} "
            "ORDER BY a.id FOR UPDATE;")


def _p_shift(r: str, old: str, new: str) -> str:
    t, p, m = f"{r}.tenant_id", f"{r}.program_id", f"{r}.account_id"
    return _p_lock(t, p, m) + "\n        " + _shift("liability_delta", t, p, m, old, new, "") + ";"


_PG_TIER = f"""
CREATE OR REPLACE FUNCTION liability_tier_track() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF COALESCE(NEW.tier, '') <> '' THEN
            {_p_shift("NEW", "NULL", "NEW.tier")}
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF COALESCE(OLD.tier, '') <> '' THEN
            {_p_shift("OLD", "OLD.tier", "NULL")}
        END IF;
    ELSIF OLD.account_id = NEW.account_id AND OLD.program_id = NEW.program_id THEN
        IF COALESCE(OLD.tier, '') <> COALESCE(NEW.tier, '') THEN
            {_p_shift("NEW", "OLD.tier", "NEW.tier")}
        END IF;
    ELSE
        {_p_shift("OLD", "OLD.tier", "NULL")}
        {_p_shift("NEW", "NULL", "NEW.tier")}
    END IF;
    RETURN NULL;
END
$fn$
"""


def _p_event(r: str, sign: str) -> str:
    q = _QUALIFIES.format(r=r)
    day, month = _P_DAY.format(c=f"{r}.occurred_at"), _P_MONTH.format(c=f"{r}.occurred_at")
    lock = (f"hashtextextended('purchase_member:' || {r}.tenant_id || ':' || {r}.program_id "
            f"|| ':' || {r}.account_id, 0)")
    return f"""IF {q} THEN
        IF {r}.kind = 'purchase' THEN
            -- purchase_member is re-summed from the member's days: writers of one member take
            -- turns, so each sums the days the previous one committed.
            PERFORM pg_advisory_xact_lock({lock});
            INSERT INTO purchase_day AS s (tenant_id, program_id, account_id, day, currency,
                                           purchases, amount)
            VALUES ({r}.tenant_id, {r}.program_id, {r}.account_id, {day},
                    COALESCE({r}.currency, ''), {sign}1, {sign}({r}.amount - {r}.returned_amount))
            ON CONFLICT (tenant_id, program_id, account_id, day, currency) DO UPDATE
            SET purchases = s.purchases + EXCLUDED.purchases, amount = s.amount + EXCLUDED.amount;
            DELETE FROM purchase_day WHERE tenant_id = {r}.tenant_id
               AND program_id = {r}.program_id AND account_id = {r}.account_id AND day = {day}
               AND currency = COALESCE({r}.currency, '') AND purchases = 0;
            {" ".join(_member_refresh(r, "true"))}
        END IF;
        INSERT INTO member_month AS s (tenant_id, program_id, account_id, month, events)
        VALUES ({r}.tenant_id, {r}.program_id, {r}.account_id, {month}, {sign}1)
        ON CONFLICT (tenant_id, program_id, account_id, month) DO UPDATE
        SET events = s.events + EXCLUDED.events;
        DELETE FROM member_month WHERE tenant_id = {r}.tenant_id AND program_id = {r}.program_id
           AND account_id = {r}.account_id AND month = {month} AND events = 0;
    END IF;"""


_PG_EVENT = f"""
CREATE OR REPLACE FUNCTION analytics_event_track() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_p_event("OLD", "-")}
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        {_p_event("NEW", "")}
    END IF;
    RETURN NULL;
END
$fn$
"""


def _pg_statements() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _EVENT_COLUMNS)
    return [
        "ALTER TABLE liability_delta ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY",
        _PG_AGING,
        "CREATE TRIGGER liability_aging_track AFTER INSERT OR UPDATE OR DELETE ON ledger_aging "
        "FOR EACH ROW EXECUTE FUNCTION liability_aging_track()",
        _PG_TIER,
        "CREATE TRIGGER liability_tier_track AFTER INSERT OR UPDATE OF tier, account_id, "
        "program_id OR DELETE ON enrolment FOR EACH ROW EXECUTE FUNCTION liability_tier_track()",
        _PG_EVENT,
        "CREATE TRIGGER analytics_event_insert AFTER INSERT ON event FOR EACH ROW "
        f"WHEN ({_QUALIFIES.format(r='NEW')}) EXECUTE FUNCTION analytics_event_track()",
        "CREATE TRIGGER analytics_event_update AFTER UPDATE ON event FOR EACH ROW "
        f"WHEN ((({_QUALIFIES.format(r='OLD')}) OR ({_QUALIFIES.format(r='NEW')})) "
        f"AND ({changed})) EXECUTE FUNCTION analytics_event_track()",
        "CREATE TRIGGER analytics_event_delete AFTER DELETE ON event FOR EACH ROW "
        f"WHEN ({_QUALIFIES.format(r='OLD')}) EXECUTE FUNCTION analytics_event_track()",
    ]


def trigger_names(dialect: str) -> list[tuple[str, str]]:
    """(trigger, table) of every trigger this migration adds."""
    if dialect == "sqlite":
        return [(name, "") for name in _SQLITE_TRIGGER_NAMES]
    return [("liability_aging_track", "ledger_aging"), ("liability_tier_track", "enrolment"),
            ("analytics_event_insert", "event"), ("analytics_event_update", "event"),
            ("analytics_event_delete", "event")]


def backfill_sql(dialect: str) -> list[str]:
    """The summary tables from the rows already there (also used by ``bench``)."""
    day = (_S_DAY if dialect == "sqlite" else _P_DAY).format(c="e.occurred_at")
    month = (_S_MONTH if dialect == "sqlite" else _P_MONTH).format(c="e.occurred_at")
    qualifies = _QUALIFIES.format(r="e")
    return [
        f"INSERT INTO liability_holding ({_HOLDING_COLS}) "
        f"SELECT tenant_id, program_id, unit_id, tier, day, SUM(remaining), SUM(net) FROM ("
        f"SELECT a.tenant_id, a.program_id, a.unit_id, COALESCE(en.tier, '') AS tier, g.day, "
        "g.remaining, g.credits - g.debits AS net FROM ledger_aging g "
        "JOIN ledger_account a ON a.tenant_id = g.tenant_id AND a.id = g.account_id "
        "LEFT JOIN member_user u ON a.owner_type = 'user' AND u.tenant_id = a.tenant_id "
        "AND u.id = a.owner_id LEFT JOIN enrolment en ON en.tenant_id = a.tenant_id "
        "AND en.program_id = a.program_id AND en.account_id = CASE WHEN a.owner_type = "
        "'account' THEN a.owner_id ELSE u.account_id END) AS h "
        "GROUP BY tenant_id, program_id, unit_id, tier, day",
        "INSERT INTO purchase_day (tenant_id, program_id, account_id, day, currency, purchases, "
        f"amount) SELECT e.tenant_id, e.program_id, e.account_id, {day}, "
        "COALESCE(e.currency, ''), COUNT(*), SUM(e.amount - e.returned_amount) FROM event e "
        f"WHERE {qualifies} AND e.kind = 'purchase' GROUP BY 1, 2, 3, 4, 5",
        f"INSERT INTO purchase_member ({_MEMBER_COLS}) SELECT {_MEMBER_VALUES} "
        "FROM purchase_day d JOIN (SELECT tenant_id, program_id, account_id, MIN(day) AS day "
        "FROM purchase_day GROUP BY tenant_id, program_id, account_id) f "
        "ON f.tenant_id = d.tenant_id AND f.program_id = d.program_id "
        "AND f.account_id = d.account_id GROUP BY d.tenant_id, d.program_id, d.account_id",
        "INSERT INTO member_month (tenant_id, program_id, account_id, month, events) "
        f"SELECT e.tenant_id, e.program_id, e.account_id, {month}, COUNT(*) FROM event e "
        f"WHERE {qualifies} GROUP BY 1, 2, 3, 4",
    ]


def upgrade() -> None:
    amounts = (sa.Column('remaining', sa.BigInteger(), nullable=False),
               sa.Column('net', sa.BigInteger(), nullable=False))
    key = (sa.Column('tenant_id', sa.String(length=40), nullable=False),
           sa.Column('program_id', sa.String(length=40), nullable=False),
           sa.Column('unit_id', sa.String(length=40), nullable=False),
           sa.Column('tier', sa.String(length=64), nullable=False),
           sa.Column('day', sa.BigInteger(), nullable=False))
    op.create_table('liability_holding', *key, *amounts,
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', 'unit_id', 'tier', 'day',
                            name=op.f('pk_liability_holding')),
    sqlite_with_rowid=False
    )
    op.create_table('liability_delta',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    *(sa.Column(c.name, c.type, nullable=False) for c in key[1:]),
    *(sa.Column(c.name, c.type, nullable=False) for c in amounts),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_liability_delta'))
    )
    op.create_table('purchase_day',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('day', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('purchases', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', 'account_id', 'day', 'currency',
                            name=op.f('pk_purchase_day')),
    sqlite_with_rowid=False
    )
    op.create_table('purchase_member',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('first_day', sa.BigInteger(), nullable=False),
    sa.Column('last_day', sa.BigInteger(), nullable=False),
    sa.Column('days', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('first_amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', 'account_id',
                            name=op.f('pk_purchase_member')),
    sqlite_with_rowid=False
    )
    op.create_table('member_month',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('month', sa.BigInteger(), nullable=False),
    sa.Column('events', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', 'account_id', 'month',
                            name=op.f('pk_member_month')),
    sqlite_with_rowid=False
    )
    dialect = op.get_bind().dialect.name
    for statement in backfill_sql(dialect):
        op.execute(statement)
    for statement in (_sqlite_triggers() if dialect == "sqlite" else _pg_statements()):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table in trigger_names(dialect):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if table else ""))
    if dialect == "postgresql":
        for function in ("liability_aging_track", "liability_tier_track",
                         "analytics_event_track"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    for table in ("member_month", "purchase_member", "purchase_day", "liability_delta",
                  "liability_holding"):
        op.drop_table(table)
