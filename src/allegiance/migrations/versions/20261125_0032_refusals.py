"""refusals: on PostgreSQL, a hot write can refuse inside the database, so its COMMIT can be
sent before its answer is read

A redemption's last statements (the stock update, the posting, the audit chain) lock rows
every redemption of the tenant queues on (the reward's stock, the program's ``redeemed``
account, the journal number, the audit number) until COMMIT. While their refusals (out of
stock, overdrawn …) came back as answers for Python to read, COMMIT could only go out once
Python had read them: the locks were held for a second round trip and for however long the
process took to get back to that request (other requests hold the interpreter).

* ``allegiance_refuse(reason, detail)`` raises SQLSTATE ``AL001`` with ``reason`` as the
  message and ``detail`` as its detail (``kit.placement.REFUSED`` maps it back to the
  feature's error). It is ``VOLATILE``, so ``coalesce(x, allegiance_refuse(…))`` calls it
  only when ``x`` is null.
* ``ledger_post_final`` posts one entry exactly as ``ledger_post_one`` (0013) does and raises
  every refusal instead of returning it: ``AL001`` with the status (``exists``, ``missing``,
  ``program``, ``unit``, ``overdrawn``) and its detail (for ``exists``, the entry's id). An entry
  that would need lots tracked (a member wallet whose unit expires — Python writes those
  after the answer) raises ``40001`` instead: the caller chose this function on a unit
  policy that changed since it read it, and the transaction is run again
  (``kit.db.retrying``), reading the new policy.

The transaction then aborts on any refusal, so the COMMIT sent behind it in the same
pipeline is never carried out.

Revision ID: 0032_refusals
Revises: 0031_erasedends
Create Date: 2026-11-25 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0032_refusals'
down_revision: str | None = '0031_erasedends'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ARGS = (
    "p_tenant text, p_entry_id text, p_program text, p_kind text, p_source_type text, "
    "p_source_id text, p_entry_key text, p_reverses text, p_hold text, p_memo text, "
    "p_meta json, p_actor text, p_effective_at timestamptz, p_stamp text, p_now timestamptz, "
    "p_accounts text[], p_units text[], p_sides text[], p_amounts bigint[], "
    "p_reverses_lines int[], p_unchecked text[], p_sequence text"
)
_TYPES = (
    "text, text, text, text, text, text, text, text, text, text, json, text, timestamptz, "
    "text, timestamptz, text[], text[], text[], bigint[], int[], text[], text"
)
_NAMES = (
    "p_tenant, p_entry_id, p_program, p_kind, p_source_type, p_source_id, p_entry_key, "
    "p_reverses, p_hold, p_memo, p_meta, p_actor, p_effective_at, p_stamp, p_now, "
    "p_accounts, p_units, p_sides, p_amounts, p_reverses_lines, p_unchecked, p_sequence"
)

REFUSE = r"""
CREATE OR REPLACE FUNCTION allegiance_refuse(p_reason text, p_detail text)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'AL001', MESSAGE = p_reason,
        DETAIL = coalesce(p_detail, '');
END
$fn$;
"""

POST_FINAL = f"""
CREATE OR REPLACE FUNCTION ledger_post_final(
    {_ARGS}, OUT entry_id text, OUT seq bigint
) LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM ledger_post_one({_NAMES});
    IF r.status <> 'ok' THEN
        PERFORM allegiance_refuse(r.status,
            CASE WHEN r.status = 'exists' THEN r.entry_id ELSE r.detail END);
    END IF;
    IF r.lots THEN
        RAISE EXCEPTION USING ERRCODE = '40001',
            MESSAGE = 'the entry keeps lots: post it with ledger_post_one';
    END IF;
    entry_id := r.entry_id;
    seq := r.seq;
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(REFUSE)
        op.execute(POST_FINAL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS ledger_post_final({_TYPES})")
        op.execute("DROP FUNCTION IF EXISTS allegiance_refuse(text, text)")
