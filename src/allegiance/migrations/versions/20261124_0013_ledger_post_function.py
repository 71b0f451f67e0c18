"""ledger_post_one: one journal entry in one round trip on PostgreSQL

The Python service (``ledger/service.py``) and this function write exactly the same rows; the
service calls the function for a single entry on PostgreSQL (``ledger/single.py``), so that a
posting costs one round trip instead of eight. SQLite needs no function (it runs in-process).

Revision ID: 0013_ledger_post
Revises: 0006_rewards
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0013_ledger_post'
down_revision: str | None = '0006_rewards'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Returns (status, entry_id, seq, detail, lots):
#   ok        the entry was written; lots: some member wallet's unit keeps lots (expires)
#   exists    an entry with this key exists: entry_id and seq are that entry's
#   missing   detail = index of the line whose account does not exist
#   program   detail = index of the line whose account is in another program
#   unit      detail = index || ':' || the account's unit
#   overdrawn detail = the account that would go below its floor (the caller rolls back)
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
    prev text;
    parts text := '';
    content text;
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
        SELECT a.program_id, a.unit_id INTO acc FROM ledger_account a
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
    END LOOP;

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

    -- The journal number (gapless: the row stays locked until the transaction ends).
    UPDATE sequence s SET last_value = s.last_value + 1
    WHERE s.tenant_id = p_tenant AND s.name = p_sequence
    RETURNING s.last_value, s.last_hash INTO seq, prev;
    IF NOT FOUND THEN
        INSERT INTO sequence (tenant_id, name, last_value, last_hash)
        VALUES (p_tenant, p_sequence, 0, '') ON CONFLICT DO NOTHING;
        UPDATE sequence s SET last_value = s.last_value + 1
        WHERE s.tenant_id = p_tenant AND s.name = p_sequence
        RETURNING s.last_value, s.last_hash INTO seq, prev;
    END IF;

    FOR i IN 1..n LOOP
        parts := parts || CASE WHEN i > 1 THEN ';' ELSE '' END
            || i::text || ':' || p_accounts[i] || ':' || p_units[i] || ':' || p_sides[i]
            || ':' || p_amounts[i]::text;
    END LOOP;
    content := seq::text || '|' || p_entry_id || '|' || p_program || '|' || p_kind || '|'
        || p_stamp || '|' || coalesce(p_entry_key, '') || '|' || coalesce(p_reverses, '')
        || '|' || parts;
    h := encode(sha256(convert_to(prev || E'\n' || content, 'UTF8')), 'hex');

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
    UPDATE sequence s SET last_hash = h WHERE s.tenant_id = p_tenant AND s.name = p_sequence;

    SELECT EXISTS (
        SELECT 1 FROM ledger_account a JOIN unit u ON u.tenant_id = a.tenant_id AND u.id = a.unit_id
        WHERE a.tenant_id = p_tenant AND a.id = ANY(p_accounts)
          AND a.owner_type <> 'program' AND a.purpose = 'wallet'
          AND coalesce(u.expiry_policy ->> 'kind', 'never') <> 'never'
    ) INTO lots;
    entry_id := p_entry_id;
    status := 'ok';
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS ledger_post_one(text, text, text, text, text, text, text, "
            "text, text, text, json, text, timestamptz, text, timestamptz, text[], text[], "
            "text[], bigint[], int[], text[], text)"
        )
