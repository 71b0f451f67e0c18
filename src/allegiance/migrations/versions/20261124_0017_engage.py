"""engage: running totals kept by the earning path — leaderboard totals per account and
period kind, and the running RFM inputs per buyer with their window's first day

Revision ID: 0017_engage
Revises: 0016_reports
Create Date: 2026-11-24 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = '0017_engage'
down_revision: str | None = '0016_reports'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONDAY = date(2001, 1, 1).toordinal()
_METRICS = ("points", "sales", "purchases", "activities", "challenges")


def _index(kind: str, day: int) -> int:
    local = date.fromordinal(day)
    return {"week": (day - _MONDAY) // 7, "month": local.year * 12 + local.month - 1,
            "quarter": local.year * 4 + (local.month - 1) // 3, "year": local.year,
            "all": 0}[kind]


def _backfill() -> None:
    """The board totals of every account's latest period of each kind, from the tallies."""
    bind = op.get_bind()
    latest: dict[tuple[str, str, str, str], list[int]] = {}
    rows = bind.execute(sa.text(
        "SELECT tenant_id, program_id, account_id, day, " + ", ".join(_METRICS)
        + " FROM engagement_tally ORDER BY tenant_id, program_id, account_id, day"))
    for tenant, program, account, day, *values in rows:
        for kind in ("week", "month", "quarter", "year", "all"):
            index = _index(kind, int(day))
            key = (tenant, program, kind, account)
            held = latest.get(key)
            if held is None or held[0] < index:
                latest[key] = [index, *(int(v) for v in values)]
            else:
                latest[key] = [index, *(a + int(b) for a, b in zip(held[1:], values,
                                                                   strict=True))]
    if latest:
        table = sa.table("engagement_board_total", *(sa.column(c) for c in (
            "tenant_id", "program_id", "kind", "account_id", "period_index", *_METRICS)))
        bind.execute(table.insert(), [
            {"tenant_id": t, "program_id": p, "kind": k, "account_id": a,
             "period_index": v[0], **dict(zip(_METRICS, v[1:], strict=True))}
            for (t, p, k, a), v in latest.items()])


def upgrade() -> None:
    op.create_table('engagement_board_total',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('period_index', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('sales', sa.BigInteger(), nullable=False),
    sa.Column('purchases', sa.BigInteger(), nullable=False),
    sa.Column('activities', sa.BigInteger(), nullable=False),
    sa.Column('challenges', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'program_id'], ['program.tenant_id', 'program.id'], name=op.f('fk_engagement_board_total_tenant_id_program_id_program')),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', 'kind', 'account_id', name=op.f('pk_engagement_board_total')),
    sqlite_with_rowid=False
    )
    op.create_table('engagement_rfm_window',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('first_day', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'program_id'], ['program.tenant_id', 'program.id'], name=op.f('fk_engagement_rfm_window_tenant_id_program_id_program')),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', name=op.f('pk_engagement_rfm_window'))
    )
    op.create_table('engagement_rfm_input',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('last_day', sa.BigInteger(), nullable=False),
    sa.Column('purchases', sa.BigInteger(), nullable=False),
    sa.Column('spend', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'program_id'], ['program.tenant_id', 'program.id'], name=op.f('fk_engagement_rfm_input_tenant_id_program_id_program')),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', 'account_id', name=op.f('pk_engagement_rfm_input')),
    sqlite_with_rowid=False
    )
    _backfill()
    # One account's RFM score is recomputed after each of its events (campaigns.rfm
    # .refresh_account): without this index that read scanned the program's whole window.
    op.create_index('ix_engagement_tally_account', 'engagement_tally',
                    ['tenant_id', 'program_id', 'account_id', 'day'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_engagement_tally_account', table_name='engagement_tally')
    op.drop_table('engagement_rfm_input')
    op.drop_table('engagement_rfm_window')
    op.drop_table('engagement_board_total')
