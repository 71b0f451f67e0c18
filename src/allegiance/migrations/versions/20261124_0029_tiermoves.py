"""tiermoves: on PostgreSQL, the liability-by-tier shift of enrolments whose tier changed runs
once per UPDATE statement, over all of its rows, instead of once per row

0026's ``liability_tier_track`` ran for each updated enrolment: a lock of the member's
wallets and an ``INSERT … SELECT`` of their aging, two planned statements per row. A tier
recalculation moves up to every member of a program in one ``UPDATE enrolment`` (≈ 35 µs a
row: half a minute at a million members). Now an ``AFTER UPDATE … FOR EACH STATEMENT``
trigger with the statement's old and new rows (transition tables) locks every moved member's
wallets in id order and writes the same ``liability_delta`` sums with one grouped statement.
The row trigger keeps ``INSERT`` and ``DELETE``. SQLite keeps its row triggers (it has no
statement triggers; each of its rows costs a few index probes, no planning).

Downgrade restores 0026's row trigger for ``UPDATE OF tier, account_id, program_id``.

Revision ID: 0029_tiermoves
Revises: 0028_localday
Create Date: 2026-11-24 23:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0029_tiermoves'
down_revision: str | None = '0028_localday'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each enrolment whose tier or member changed, as (tenant, program, member, from, to): a
# change of tier moves the member's holdings between the two tiers; a change of member or
# program takes them out of the old one's tier and into the new one's.
_SHIFTS = """
pairs AS (
    SELECT o.tenant_id AS ot, o.program_id AS op, o.account_id AS oa, o.tier AS otier,
           n.tenant_id AS nt, n.program_id AS np, n.account_id AS na, n.tier AS ntier
    FROM old_rows o JOIN new_rows n ON n.tenant_id = o.tenant_id AND n.id = o.id
), shifts AS (
    SELECT nt AS t, np AS p, na AS m, otier AS old, ntier AS new FROM pairs
    WHERE oa = na AND op = np AND COALESCE(otier, '') <> COALESCE(ntier, '')
    UNION ALL SELECT ot, op, oa, otier, NULL FROM pairs WHERE oa <> na OR op <> np
    UNION ALL SELECT nt, np, na, NULL, ntier FROM pairs WHERE oa <> na OR op <> np
), wallets AS (
    SELECT a.tenant_id, a.id, a.program_id, a.unit_id, s.old, s.new
    FROM shifts s JOIN ledger_account a ON a.tenant_id = s.t AND a.program_id = s.p
     AND a.purpose = 'wallet' AND a.owner_type = 'account' AND a.owner_id = s.m
    UNION ALL
    SELECT a.tenant_id, a.id, a.program_id, a.unit_id, s.old, s.new
    FROM shifts s JOIN member_user u ON u.tenant_id = s.t AND u.account_id = s.m
    JOIN ledger_account a ON a.tenant_id = s.t AND a.program_id = s.p
     AND a.purpose = 'wallet' AND a.owner_type = 'user' AND a.owner_id = u.id
)"""

_PG_MOVES = f"""
CREATE OR REPLACE FUNCTION liability_tier_moves() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    -- the moved members' wallets, locked in id order before their aging is read: a posting
    -- holds its wallet's row from its counter update to its commit, so the shift waits for
    -- postings in flight and later ones read the new tier (as 0026's row trigger did)
    PERFORM 1 FROM ledger_account a
    WHERE (a.tenant_id, a.id) IN (WITH {_SHIFTS} SELECT tenant_id, id FROM wallets)
    ORDER BY a.id FOR UPDATE;
    INSERT INTO liability_delta (tenant_id, program_id, unit_id, tier, day, remaining, net)
    WITH {_SHIFTS}
    SELECT w.tenant_id, w.program_id, w.unit_id, s.tier, g.day,
           s.sign * SUM(g.remaining), s.sign * SUM(g.credits - g.debits)
    FROM wallets w JOIN ledger_aging g ON g.tenant_id = w.tenant_id AND g.account_id = w.id
    CROSS JOIN LATERAL (VALUES (COALESCE(w.old, ''), -1), (COALESCE(w.new, ''), 1))
        AS s (tier, sign)
    GROUP BY w.tenant_id, w.program_id, w.unit_id, s.tier, g.day, s.sign;
    RETURN NULL;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER liability_tier_track ON enrolment")
    op.execute("CREATE TRIGGER liability_tier_track AFTER INSERT OR DELETE ON enrolment "
               "FOR EACH ROW EXECUTE FUNCTION liability_tier_track()")
    op.execute(_PG_MOVES)
    op.execute("CREATE TRIGGER liability_tier_moves AFTER UPDATE ON enrolment "
               "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION liability_tier_moves()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER liability_tier_moves ON enrolment")
    op.execute("DROP FUNCTION liability_tier_moves()")
    op.execute("DROP TRIGGER liability_tier_track ON enrolment")
    op.execute("CREATE TRIGGER liability_tier_track AFTER INSERT OR UPDATE OF tier, account_id, "
               "program_id OR DELETE ON enrolment FOR EACH ROW "
               "EXECUTE FUNCTION liability_tier_track()")
