"""posthot: ``ledger_post_one`` does less while it holds the journal number

Every single posting on PostgreSQL runs ``ledger_post_one`` (0013). From its counter update of
the program's account to COMMIT it holds rows every posting of the program or tenant queues
on (that account, the journal number), so its work after those locks is the tenant's serial
section. Two statements left it:

* **Whether lots are tracked** was a last ``SELECT EXISTS`` over ``ledger_account ⋈ unit``
  with ``id = ANY(accounts)``. Its plan (generic, cached by PL/pgSQL) could scan the tenant's
  wallets by ``(tenant_id, purpose)``: 0.4–0.6 ms with 1,000 wallets, seen in the redemption
  benchmark, and it grows with the tenant. The line checks already read each account by its
  key; they now read its owner and purpose too, and look up the unit's expiry policy (by key)
  for a member wallet's line, before any lock is taken.
* **The journal number and the hash** were two updates of the tenant's ``sequence`` row (the
  number, then the hash once the entry was hashed). The hash needs only the previous hash and
  the number, which the row holds, so one ``UPDATE … RETURNING`` now sets both.

* **A member wallet's aging** (``ledger_aging`` and, through its trigger, ``liability_delta``)
  was kept by the posting's row trigger, after the journal number was taken. The counters are
  now locked member accounts first, program accounts last (each group in id order; every
  writer takes the same order: ``ledger.writes.lock_order``), and the function applies a
  wallet's aging right after that wallet's counter update — under the wallet's lock, as the
  trigger did, but before the program accounts and the journal number are locked. The
  trigger's body is now ``ledger_aging_apply`` (one definition for both); the function pauses
  the trigger for its own posting rows (``allegiance.aging_paused``, 0024) and resumes it. A
  transaction that paused aging itself (a job that keeps ``ledger_aging`` set-based) keeps it
  paused.

The rows written are exactly those of 0013 (same hash text), as ``ledger/service.py`` writes
them.

Revision ID: 0034_posthot
Revises: 0033_reversesidx
Create Date: 2026-11-25 05:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import op

revision: str = '0034_posthot'
down_revision: str | None = '0033_reversesidx'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MINE = "g.tenant_id = p_tenant AND g.account_id = p_account"

AGING_APPLY = f"""
CREATE OR REPLACE FUNCTION ledger_aging_apply(
    p_tenant text, p_account text, p_day bigint, p_side text, p_amount bigint
) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    adds_only boolean;
BEGIN
    adds_only := p_side = 'C'
        AND NOT EXISTS (SELECT 1 FROM ledger_aging g WHERE {_MINE} AND g.day > p_day)
        AND (SELECT COALESCE(SUM(g.credits - g.debits), 0) FROM ledger_aging g
             WHERE {_MINE}) >= 0;
    INSERT INTO ledger_aging AS g (tenant_id, account_id, day, credits, debits, remaining)
    VALUES (p_tenant, p_account, p_day,
            CASE WHEN p_side = 'C' THEN p_amount ELSE 0 END,
            CASE WHEN p_side = 'D' THEN p_amount ELSE 0 END,
            CASE WHEN adds_only THEN p_amount ELSE 0 END)
    ON CONFLICT (tenant_id, account_id, day) DO UPDATE
    SET credits = g.credits + EXCLUDED.credits, debits = g.debits + EXCLUDED.debits,
        remaining = g.remaining + EXCLUDED.remaining;
    IF adds_only THEN
        RETURN;
    END IF;
    UPDATE ledger_aging g SET remaining = r.part
    FROM (SELECT day, GREATEST(0, LEAST(credits, bal - (newer - credits))) AS part FROM (
            SELECT day, credits, SUM(credits - debits) OVER () AS bal,
                   SUM(credits) OVER (ORDER BY day DESC ROWS UNBOUNDED PRECEDING) AS newer
            FROM ledger_aging g WHERE {_MINE}
         ) w) r
    WHERE {_MINE} AND g.day = r.day AND g.remaining <> r.part;
END
$fn$;
"""

# 0025's trigger, its body moved into ledger_aging_apply.
AGING_TRACK = """
CREATE OR REPLACE FUNCTION ledger_aging_track() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    credit_day bigint;
BEGIN
    IF current_setting('allegiance.aging_paused', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ledger_account a WHERE a.tenant_id = NEW.tenant_id
                   AND a.id = NEW.account_id AND a.purpose = 'wallet'
                   AND a.owner_type IN ('account', 'user')) THEN
        RETURN NULL;
    END IF;
    SELECT ((e.effective_at AT TIME ZONE 'UTC')::date) - DATE '1970-01-01' INTO credit_day
    FROM journal_entry e WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.entry_id;
    PERFORM ledger_aging_apply(NEW.tenant_id, NEW.account_id, credit_day, NEW.side, NEW.amount);
    RETURN NULL;
END
$fn$;
"""

FUNCTION = r"""
CREATE OR REPLACE FUNCTION ledger_post_one(
    p_tenant text, p_entry_id text, p_program text, p_kind text,
    p_source_type text, p_source_id text, p_entry_key text, p_reverses text, p_hold text,
    p_memo text, p_meta json, p_actor text, p_effective_at timestamptz, p_stamp text,
    p_now timestamptz, p_accounts text[], p_units text[], p_sides text[], p_amounts bigint[],
    p_reverses_lines int[], p_unchecked text[], p_sequence text,
    OUT status text, OUT entry_id text, OUT seq bigint, OUT detail text, OUT lots boolean
) LANGUAGE plpgsql AS $fn$
DECLARE
    n int := array_length(p_accounts, 1);
    i int;
    acc record;
    d record;
    programs text[] := '{}';
    wallets text[] := '{}';
    ages boolean;
    credit_day bigint := ((p_effective_at AT TIME ZONE 'UTC')::date) - DATE '1970-01-01';
    parts text := '';
    tail text;
    h text;
BEGIN
    lots := false;
    IF p_entry_key IS NOT NULL THEN
        SELECT e.id, e.seq INTO entry_id, seq FROM journal_entry e
        WHERE e.tenant_id = p_tenant AND e.entry_key = p_entry_key;
        IF FOUND THEN
            status := 'exists';
            RETURN;
        END IF;
    END IF;

    FOR i IN 1..n LOOP
        SELECT a.program_id, a.unit_id, a.owner_type, a.purpose INTO acc FROM ledger_account a
        WHERE a.tenant_id = p_tenant AND a.id = p_accounts[i];
        IF NOT FOUND THEN
            status := 'missing'; detail := (i - 1)::text; RETURN;
        END IF;
        IF acc.program_id <> p_program THEN
            status := 'program'; detail := (i - 1)::text; RETURN;
        END IF;
        IF acc.unit_id <> p_units[i] THEN
            status := 'unit'; detail := (i - 1)::text || ':' || acc.unit_id; RETURN;
        END IF;
        IF acc.owner_type = 'program' THEN
            programs := programs || p_accounts[i];
        ELSIF acc.purpose = 'wallet' AND acc.owner_type IN ('account', 'user') THEN
            wallets := wallets || p_accounts[i];
        END IF;
        IF NOT lots AND acc.owner_type <> 'program' AND acc.purpose = 'wallet' THEN
            SELECT coalesce(u.expiry_policy ->> 'kind', 'never') <> 'never' INTO lots
            FROM unit u WHERE u.tenant_id = p_tenant AND u.id = acc.unit_id;
            lots := coalesce(lots, false);
        END IF;
        parts := parts || CASE WHEN i > 1 THEN ';' ELSE '' END
            || i::text || ':' || p_accounts[i] || ':' || p_units[i] || ':' || p_sides[i]
            || ':' || p_amounts[i]::text;
    END LOOP;
    -- What the hash covers after the journal number (see 0013: seq|id|program|…|parts).
    tail := '|' || p_entry_id || '|' || p_program || '|' || p_kind || '|'
        || p_stamp || '|' || coalesce(p_entry_key, '') || '|' || coalesce(p_reverses, '')
        || '|' || parts;

    ages := cardinality(wallets) > 0
        AND coalesce(current_setting('allegiance.aging_paused', true), '') <> 'on';

    -- Counters: one conditional update per account, member accounts first, then program
    -- accounts, each in id order (every writer's lock order: no deadlocks; no overdraw).
    -- A wallet's aging follows its own update: under its lock, before the program accounts'.
    FOR d IN
        SELECT l.account_id,
               sum(CASE WHEN l.side = 'D' THEN l.amount ELSE 0 END) AS dp,
               sum(CASE WHEN l.side = 'C' THEN l.amount ELSE 0 END) AS cp
        FROM unnest(p_accounts, p_sides, p_amounts) AS l(account_id, side, amount)
        GROUP BY l.account_id
        ORDER BY l.account_id = ANY(programs), l.account_id COLLATE "C"
    LOOP
        UPDATE ledger_account a SET
            debits_posted = a.debits_posted + d.dp,
            credits_posted = a.credits_posted + d.cp,
            last_activity_at = CASE
                WHEN p_kind <> 'expiry' AND a.owner_type <> 'program' AND a.purpose = 'wallet'
                THEN p_now ELSE a.last_activity_at END
        WHERE a.tenant_id = p_tenant AND a.id = d.account_id AND (
            NOT a.no_overdraw
            OR d.account_id = ANY(p_unchecked)
            OR (CASE WHEN a.normal = 'credit' THEN d.dp <= d.cp ELSE d.cp <= d.dp END)
            OR (CASE WHEN a.normal = 'credit'
                     THEN (a.credits_posted + d.cp) - (a.debits_posted + d.dp) - a.debits_pending
                     ELSE (a.debits_posted + d.dp) - (a.credits_posted + d.cp) - a.credits_pending
                END) >= a.floor);
        IF NOT FOUND THEN
            status := 'overdrawn'; detail := d.account_id; RETURN;
        END IF;
        IF ages AND d.account_id = ANY(wallets) THEN
            FOR i IN 1..n LOOP
                IF p_accounts[i] = d.account_id THEN
                    PERFORM ledger_aging_apply(p_tenant, d.account_id, credit_day,
                                               p_sides[i], p_amounts[i]);
                END IF;
            END LOOP;
        END IF;
    END LOOP;

    -- The journal number and the chain's hash in one update (gapless: the row stays locked
    -- until the transaction ends).
    UPDATE sequence s SET last_value = s.last_value + 1,
        last_hash = encode(sha256(convert_to(
            s.last_hash || E'\n' || (s.last_value + 1)::text || tail, 'UTF8')), 'hex')
    WHERE s.tenant_id = p_tenant AND s.name = p_sequence
    RETURNING s.last_value, s.last_hash INTO seq, h;
    IF NOT FOUND THEN
        INSERT INTO sequence (tenant_id, name, last_value, last_hash)
        VALUES (p_tenant, p_sequence, 0, '') ON CONFLICT DO NOTHING;
        UPDATE sequence s SET last_value = s.last_value + 1,
            last_hash = encode(sha256(convert_to(
                s.last_hash || E'\n' || (s.last_value + 1)::text || tail, 'UTF8')), 'hex')
        WHERE s.tenant_id = p_tenant AND s.name = p_sequence
        RETURNING s.last_value, s.last_hash INTO seq, h;
    END IF;

    INSERT INTO journal_entry (tenant_id, id, seq, program_id, kind, source_type, source_id,
        entry_key, reverses_entry_id, hold_id, memo, meta, actor, effective_at, created_at, hash)
    VALUES (p_tenant, p_entry_id, seq, p_program, p_kind, p_source_type, p_source_id,
        p_entry_key, p_reverses, p_hold, p_memo, p_meta, p_actor, p_effective_at, p_now, h);
    IF ages THEN  -- the wallets' aging is kept above: the trigger skips these rows
        PERFORM set_config('allegiance.aging_paused', 'on', true);
    END IF;
    INSERT INTO posting (tenant_id, entry_id, line_no, account_id, unit_id, side, amount,
        reverses_line_no)
    SELECT p_tenant, p_entry_id, l.ord::int, l.account_id, l.unit_id, l.side, l.amount,
        l.reverses_line_no
    FROM unnest(p_accounts, p_units, p_sides, p_amounts, p_reverses_lines)
        WITH ORDINALITY AS l(account_id, unit_id, side, amount, reverses_line_no, ord);
    IF ages THEN
        PERFORM set_config('allegiance.aging_paused', 'off', true);
    END IF;
    entry_id := p_entry_id;
    status := 'ok';
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AGING_APPLY)
        op.execute(AGING_TRACK)
        op.execute(FUNCTION)


def _migration(name: str) -> Any:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    """Back to 0013's function and 0025's trigger (their own texts, read from them)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_migration("20261124_0013_ledger_post_function.py").FUNCTION)
    op.execute(_migration("20261124_0025_agingfast.py")._PG_FUNCTION)
    op.execute("DROP FUNCTION IF EXISTS ledger_aging_apply(text, text, bigint, text, bigint)")
