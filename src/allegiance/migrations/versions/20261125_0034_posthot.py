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

from alembic import op

revision: str = '0034_posthot'
down_revision: str | None = '0033_reversesidx'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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

    -- Counters: one conditional update per account, in id order (no deadlocks, no overdraw).
    FOR d IN
        SELECT l.account_id,
               sum(CASE WHEN l.side = 'D' THEN l.amount ELSE 0 END) AS dp,
               sum(CASE WHEN l.side = 'C' THEN l.amount ELSE 0 END) AS cp
        FROM unnest(p_accounts, p_sides, p_amounts) AS l(account_id, side, amount)
        GROUP BY l.account_id
        ORDER BY l.account_id COLLATE "C"
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
    INSERT INTO posting (tenant_id, entry_id, line_no, account_id, unit_id, side, amount,
        reverses_line_no)
    SELECT p_tenant, p_entry_id, l.ord::int, l.account_id, l.unit_id, l.side, l.amount,
        l.reverses_line_no
    FROM unnest(p_accounts, p_units, p_sides, p_amounts, p_reverses_lines)
        WITH ORDINALITY AS l(account_id, unit_id, side, amount, reverses_line_no, ord);
    entry_id := p_entry_id;
    status := 'ok';
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    """Back to 0013's function (its own text, read from that migration)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    path = Path(__file__).with_name("20261124_0013_ledger_post_function.py")
    spec = importlib.util.spec_from_file_location("ledger_post_0013", path)
    assert spec is not None and spec.loader is not None
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute(previous.FUNCTION)
