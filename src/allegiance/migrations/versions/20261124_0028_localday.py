"""localday: the purchase and activity summaries keyed by the program's local day and month

* ``zone_offset`` (reference data, no tenant): per IANA zone, intervals of UTC instants
  ``[starts_at, ends_at)`` with one UTC offset, generated from ``zoneinfo`` by
  ``allegiance.kit.zones`` for 1970–2100 (SQLite has no tz database). Filled here for the
  zones programs use (and UTC); ``tenants`` stores a zone's intervals before a program uses it.
* ``purchase_day.day``, ``purchase_member``'s days and ``member_month.month`` are now the
  program's local day / month: the triggers on ``event`` look up the program's zone and the
  interval holding ``occurred_at`` (one index probe of ``zone_offset``'s key) and key the row
  by the date of ``occurred_at + offset``. UTC programs: offset 0, rows unchanged.
* A trigger on ``program`` rebuilds the program's three summaries from its events when its
  ``time_zone`` changes, in the same transaction.

Downgrade restores 0027: the UTC triggers of 0026, the summaries rebuilt per UTC day, no
``zone_offset``.

Revision ID: 0028_localday
Revises: 0027_segments
Create Date: 2026-11-24 16:30:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

from allegiance.kit import zones
from allegiance.kit.db import UTCDateTime

revision: str = '0028_localday'
down_revision: str | None = '0027_segments'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _v0026() -> Any:
    path = Path(__file__).resolve().parent / "20261124_0026_analytics.py"
    spec = importlib.util.spec_from_file_location("analytics_0026_for_0028", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_QUALIFIES = ("{r}.status = 'processed' AND {r}.account_id IS NOT NULL "
              "AND {r}.kind IN ('purchase', 'activity')")
_MEMBER_COLS = ("tenant_id, program_id, account_id, first_day, last_day, days, amount, "
                "first_amount, currency")
_MEMBER_VALUES = (
    "d.tenant_id, d.program_id, d.account_id, MIN(d.day), MAX(d.day), COUNT(DISTINCT d.day), "
    "SUM(d.amount), SUM(CASE WHEN d.day = f.day THEN d.amount ELSE 0 END), "
    "CASE WHEN MIN(d.currency) = MAX(d.currency) THEN MIN(d.currency) ELSE '*' END")
_EVENT_COLUMNS = ("status", "account_id", "kind", "occurred_at", "amount", "returned_amount",
                  "currency", "program_id", "tenant_id")


def _member_refresh(r: str, guard: str) -> list[str]:
    """``purchase_member``'s row of event ``r``'s member, again from ``purchase_day``."""
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


# --- SQLite: the local date as text, date(occurred_at, '<offset> seconds') -------------------


def s_offset(at: str, zone: str) -> str:
    """The offset (seconds) of ``zone`` (an SQL expression) at timestamp ``at``."""
    return (f"(SELECT z.offset_seconds FROM zone_offset z WHERE z.zone = {zone} "
            f"AND z.starts_at <= {at} ORDER BY z.starts_at DESC LIMIT 1)")


def s_local_date(at: str, zone: str) -> str:
    return f"date({at}, {s_offset(at, zone)} || ' seconds')"


def s_day(local_date: str) -> str:
    return f"CAST(julianday({local_date}) - 2440587.5 AS INTEGER)"


def s_month(local_date: str) -> str:
    return (f"(CAST(substr({local_date}, 1, 4) AS INTEGER) * 12 "
            f"+ CAST(substr({local_date}, 6, 2) AS INTEGER))")


def _zone_of(r: str) -> str:
    return (f"(SELECT p.time_zone FROM program p WHERE p.tenant_id = {r}.tenant_id "
            f"AND p.id = {r}.program_id)")


def _s_event_add(r: str) -> list[str]:
    q = _QUALIFIES.format(r=r)
    local = s_local_date(f"{r}.occurred_at", _zone_of(r))
    return [
        "INSERT INTO purchase_day (tenant_id, program_id, account_id, day, currency, purchases, "
        f"amount) SELECT {r}.tenant_id, {r}.program_id, {r}.account_id, {s_day(local)}, "
        f"COALESCE({r}.currency, ''), 1, {r}.amount - {r}.returned_amount "
        f"WHERE {q} AND {r}.kind = 'purchase' "
        "ON CONFLICT (tenant_id, program_id, account_id, day, currency) DO UPDATE SET "
        "purchases = purchases + 1, amount = amount + excluded.amount;",
        *_member_refresh(r, f"{q} AND {r}.kind = 'purchase'"),
        "INSERT INTO member_month (tenant_id, program_id, account_id, month, events) "
        f"SELECT {r}.tenant_id, {r}.program_id, {r}.account_id, {s_month(local)}, 1 WHERE {q} "
        "ON CONFLICT (tenant_id, program_id, account_id, month) DO UPDATE SET "
        "events = events + 1;",
    ]


def _s_event_remove(r: str) -> list[str]:
    q = _QUALIFIES.format(r=r)
    local = s_local_date(f"{r}.occurred_at", _zone_of(r))
    member = (f"tenant_id = {r}.tenant_id AND program_id = {r}.program_id "
              f"AND account_id = {r}.account_id")
    return [
        f"UPDATE purchase_day SET purchases = purchases - 1, amount = amount - "
        f"({r}.amount - {r}.returned_amount) WHERE {member} AND day = {s_day(local)} "
        f"AND currency = COALESCE({r}.currency, '') AND {q} AND {r}.kind = 'purchase';",
        # the member's emptied day (a few rows by key; no second zone lookup)
        f"DELETE FROM purchase_day WHERE {member} AND purchases = 0;",
        *_member_refresh(r, f"{q} AND {r}.kind = 'purchase'"),
        f"UPDATE member_month SET events = events - 1 WHERE {member} "
        f"AND month = {s_month(local)} AND {q};",
        f"DELETE FROM member_month WHERE {member} AND events = 0;",
    ]


_SQLITE_EVENT_TRIGGERS = ("analytics_event_insert", "analytics_event_update",
                          "analytics_event_delete")


def _sqlite_triggers() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _EVENT_COLUMNS)
    either = f"({_QUALIFIES.format(r='OLD')}) OR ({_QUALIFIES.format(r='NEW')})"
    return [
        f"CREATE TRIGGER analytics_event_insert AFTER INSERT ON event "
        f"WHEN {_QUALIFIES.format(r='NEW')} BEGIN " + " ".join(_s_event_add("NEW")) + " END",
        f"CREATE TRIGGER analytics_event_update AFTER UPDATE ON event "
        f"WHEN ({either}) AND ({changed}) BEGIN "
        + " ".join(_s_event_remove("OLD") + _s_event_add("NEW")) + " END",
        f"CREATE TRIGGER analytics_event_delete AFTER DELETE ON event "
        f"WHEN {_QUALIFIES.format(r='OLD')} BEGIN " + " ".join(_s_event_remove("OLD")) + " END",
        "CREATE TRIGGER analytics_program_zone AFTER UPDATE OF time_zone ON program "
        "WHEN OLD.time_zone IS NOT NEW.time_zone BEGIN "
        + " ".join(s + ";" for s in rebuild_sql("sqlite", "NEW.tenant_id", "NEW.id")) + " END",
    ]


# --- PostgreSQL: one lookup per event into a variable ---------------------------------------

_PG_LOCAL = """
CREATE OR REPLACE FUNCTION analytics_local_time(t text, p text, at timestamptz)
RETURNS timestamp LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    local timestamp;
BEGIN
    SELECT (at AT TIME ZONE 'UTC') + make_interval(secs => z.offset_seconds) INTO local
    FROM zone_offset z
    WHERE z.zone = (SELECT g.time_zone FROM program g WHERE g.tenant_id = t AND g.id = p)
      AND z.starts_at <= at ORDER BY z.starts_at DESC LIMIT 1;
    IF local IS NULL THEN
        RAISE EXCEPTION 'no UTC offsets stored for the time zone of program %', p;
    END IF;
    RETURN local;
END
$fn$
"""


def _p_event(r: str, sign: str) -> str:
    q = _QUALIFIES.format(r=r)
    lock = (f"hashtextextended('purchase_member:' || {r}.tenant_id || ':' || {r}.program_id "
            f"|| ':' || {r}.account_id, 0)")
    return f"""IF {q} THEN
        v_local := analytics_local_time({r}.tenant_id, {r}.program_id, {r}.occurred_at);
        IF {r}.kind = 'purchase' THEN
            v_day := v_local::date - DATE '1970-01-01';
            PERFORM pg_advisory_xact_lock({lock});
            INSERT INTO purchase_day AS s (tenant_id, program_id, account_id, day, currency,
                                           purchases, amount)
            VALUES ({r}.tenant_id, {r}.program_id, {r}.account_id, v_day,
                    COALESCE({r}.currency, ''), {sign}1, {sign}({r}.amount - {r}.returned_amount))
            ON CONFLICT (tenant_id, program_id, account_id, day, currency) DO UPDATE
            SET purchases = s.purchases + EXCLUDED.purchases, amount = s.amount + EXCLUDED.amount;
            DELETE FROM purchase_day d WHERE d.tenant_id = {r}.tenant_id
               AND d.program_id = {r}.program_id AND d.account_id = {r}.account_id
               AND d.day = v_day
               AND d.currency = COALESCE({r}.currency, '') AND d.purchases = 0;
            {" ".join(_member_refresh(r, "true"))}
        END IF;
        v_month := EXTRACT(YEAR FROM v_local)::bigint * 12 + EXTRACT(MONTH FROM v_local)::bigint;
        INSERT INTO member_month AS s (tenant_id, program_id, account_id, month, events)
        VALUES ({r}.tenant_id, {r}.program_id, {r}.account_id, v_month, {sign}1)
        ON CONFLICT (tenant_id, program_id, account_id, month) DO UPDATE
        SET events = s.events + EXCLUDED.events;
        DELETE FROM member_month m WHERE m.tenant_id = {r}.tenant_id
           AND m.program_id = {r}.program_id AND m.account_id = {r}.account_id
           AND m.month = v_month AND m.events = 0;
    END IF;"""


_PG_EVENT = f"""
CREATE OR REPLACE FUNCTION analytics_event_track() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    v_local timestamp;
    v_day bigint;
    v_month bigint;
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


def _pg_zone_function() -> str:
    body = "\n    ".join(s + ";" for s in rebuild_sql("postgresql", "NEW.tenant_id", "NEW.id"))
    return f"""
CREATE OR REPLACE FUNCTION analytics_program_zone() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    {body}
    RETURN NULL;
END
$fn$
"""


def _pg_statements() -> list[str]:
    return [
        _PG_LOCAL, _PG_EVENT, _pg_zone_function(),
        "CREATE TRIGGER analytics_program_zone AFTER UPDATE OF time_zone ON program "
        "FOR EACH ROW WHEN (OLD.time_zone IS DISTINCT FROM NEW.time_zone) "
        "EXECUTE FUNCTION analytics_program_zone()",
    ]


def trigger_names(dialect: str) -> list[tuple[str, str]]:
    """(trigger, table) of the triggers that keep the purchase / activity summaries."""
    if dialect == "sqlite":
        return [(name, "") for name in (*_SQLITE_EVENT_TRIGGERS, "analytics_program_zone")]
    return [("analytics_event_insert", "event"), ("analytics_event_update", "event"),
            ("analytics_event_delete", "event"), ("analytics_program_zone", "program")]


# --- the summaries from the events (this migration, a zone change, ``bench``) ----------------


def _events(dialect: str, where: str) -> str:
    """Qualifying events ``e`` with their local date / timestamp ``local``."""
    qualifies = _QUALIFIES.format(r="e")
    if dialect == "sqlite":
        return (f"SELECT e.*, {s_local_date('e.occurred_at', 'p.time_zone')} AS local "
                "FROM event e JOIN program p ON p.tenant_id = e.tenant_id AND p.id = e.program_id "
                f"WHERE {qualifies} AND {where}")
    return ("SELECT e.*, lt.local FROM event e JOIN program p ON p.tenant_id = e.tenant_id "
            "AND p.id = e.program_id LEFT JOIN LATERAL (SELECT (e.occurred_at AT TIME ZONE "
            "'UTC') + make_interval(secs => z.offset_seconds) AS local FROM zone_offset z "
            "WHERE z.zone = p.time_zone AND z.starts_at <= e.occurred_at "
            f"ORDER BY z.starts_at DESC LIMIT 1) lt ON true WHERE {qualifies} AND {where}")


def rebuild_sql(dialect: str, tenant: str | None = None, program: str | None = None) -> list[str]:
    """Delete and rebuild ``purchase_day``, ``purchase_member`` and ``member_month`` (of one
    program when ``tenant`` and ``program`` are SQL expressions, else of all)."""
    mine = "true" if tenant is None else f"tenant_id = {tenant} AND program_id = {program}"
    e_mine = "true" if tenant is None else f"e.tenant_id = {tenant} AND e.program_id = {program}"
    if dialect == "sqlite":
        day, month = s_day("x.local"), s_month("x.local")
    else:
        day = "(x.local::date - DATE '1970-01-01')"
        month = "(EXTRACT(YEAR FROM x.local)::bigint * 12 + EXTRACT(MONTH FROM x.local)::bigint)"
    return [
        f"DELETE FROM purchase_day WHERE {mine}",
        f"DELETE FROM purchase_member WHERE {mine}",
        f"DELETE FROM member_month WHERE {mine}",
        "INSERT INTO purchase_day (tenant_id, program_id, account_id, day, currency, purchases, "
        f"amount) SELECT x.tenant_id, x.program_id, x.account_id, {day}, "
        "COALESCE(x.currency, ''), COUNT(*), SUM(x.amount - x.returned_amount) "
        f"FROM ({_events(dialect, e_mine)} AND e.kind = 'purchase') x "
        f"GROUP BY x.tenant_id, x.program_id, x.account_id, {day}, COALESCE(x.currency, '')",
        f"INSERT INTO purchase_member ({_MEMBER_COLS}) SELECT {_MEMBER_VALUES} "
        "FROM purchase_day d JOIN (SELECT tenant_id, program_id, account_id, MIN(day) AS day "
        f"FROM purchase_day WHERE {mine} GROUP BY tenant_id, program_id, account_id) f "
        "ON f.tenant_id = d.tenant_id AND f.program_id = d.program_id "
        "AND f.account_id = d.account_id GROUP BY d.tenant_id, d.program_id, d.account_id",
        "INSERT INTO member_month (tenant_id, program_id, account_id, month, events) "
        f"SELECT x.tenant_id, x.program_id, x.account_id, {month}, COUNT(*) "
        f"FROM ({_events(dialect, e_mine)}) x "
        f"GROUP BY x.tenant_id, x.program_id, x.account_id, {month}",
    ]


def backfill_sql(dialect: str) -> list[str]:
    """Every summary from the rows there: 0026's liability holdings, then the local-day ones."""
    holdings: list[str] = _v0026().backfill_sql(dialect)[:1]
    return holdings + rebuild_sql(dialect)[3:]


def _zone_table() -> sa.TableClause:
    return sa.table("zone_offset", sa.column("zone", sa.String()),
                    sa.column("starts_at", UTCDateTime()), sa.column("ends_at", UTCDateTime()),
                    sa.column("offset_seconds", sa.BigInteger()))


def upgrade() -> None:
    op.create_table('zone_offset',
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('starts_at', UTCDateTime(), nullable=False),
    sa.Column('ends_at', UTCDateTime(), nullable=False),
    sa.Column('offset_seconds', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('zone', 'starts_at', name=op.f('pk_zone_offset')),
    sqlite_with_rowid=False
    )
    bind = op.get_bind()
    used = {z for (z,) in bind.execute(sa.text("SELECT DISTINCT time_zone FROM program"))}
    for zone in sorted(used | {"UTC"}):
        op.bulk_insert(_zone_table(), zones.rows(zone))
    dialect = bind.dialect.name
    if dialect == "sqlite":
        for name in _SQLITE_EVENT_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        statements = _sqlite_triggers()
    else:
        statements = _pg_statements()
    for statement in statements:
        op.execute(statement)
    for statement in rebuild_sql(dialect):
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    old = _v0026()
    if dialect == "sqlite":
        for name, _ in trigger_names(dialect):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in old._sqlite_triggers():
            if statement.startswith("CREATE TRIGGER analytics_event_"):
                op.execute(statement)
    else:
        op.execute("DROP TRIGGER IF EXISTS analytics_program_zone ON program")
        op.execute("DROP FUNCTION IF EXISTS analytics_program_zone()")
        op.execute(old._PG_EVENT)
        op.execute("DROP FUNCTION IF EXISTS analytics_local_time(text, text, timestamptz)")
    for table in ("purchase_day", "purchase_member", "member_month"):
        op.execute(f"DELETE FROM {table}")
    for statement in old.backfill_sql(dialect)[1:]:
        op.execute(statement)
    op.drop_table('zone_offset')
