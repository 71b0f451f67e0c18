"""rfm: RFM scores and models of programs; challenge contributions per event and completions
undone by returns

Revision ID: 0015_rfm
Revises: 0014_engage
Create Date: 2026-11-24 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import allegiance.kit.db

revision: str = '0015_rfm'
down_revision: str | None = '0014_engage'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_TALLY = """CREATE TABLE {name} (
    tenant_id VARCHAR(40) NOT NULL,
    program_id VARCHAR(40) NOT NULL,
    day BIGINT NOT NULL,
    account_id VARCHAR(40) NOT NULL,
    points BIGINT NOT NULL,
    sales BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    activities BIGINT NOT NULL,
    challenges BIGINT NOT NULL,
    CONSTRAINT pk_engagement_tally PRIMARY KEY (tenant_id, program_id, day, account_id),
    CONSTRAINT fk_engagement_tally_tenant_id_program_id_program FOREIGN KEY(tenant_id,
        program_id) REFERENCES program (tenant_id, id)
){suffix}"""
_COLUMNS = "tenant_id, program_id, day, account_id, points, sales, purchases, activities, challenges"


def _rebuild_tally(without_rowid: bool) -> None:
    """SQLite only: cluster the daily tallies on their key (or back)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(_TALLY.format(name="engagement_tally_new",
                             suffix=" WITHOUT ROWID" if without_rowid else ""))
    op.execute(f"INSERT INTO engagement_tally_new ({_COLUMNS}) "
               f"SELECT {_COLUMNS} FROM engagement_tally")
    op.execute("DROP TABLE engagement_tally")
    op.execute("ALTER TABLE engagement_tally_new RENAME TO engagement_tally")


def upgrade() -> None:
    _rebuild_tally(without_rowid=True)
    op.create_table('rfm_model',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('window_days', sa.BigInteger(), nullable=False),
    sa.Column('breakpoints', sa.JSON(), nullable=False),
    sa.Column('scored', sa.BigInteger(), nullable=False),
    sa.Column('computed_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('window_days > 0', name=op.f('ck_rfm_model_window_days')),
    sa.ForeignKeyConstraint(['tenant_id', 'program_id'], ['program.tenant_id', 'program.id'], name=op.f('fk_rfm_model_tenant_id_program_id_program')),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', name=op.f('pk_rfm_model'))
    )
    op.create_table('rfm_score',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('recency', sa.BigInteger(), nullable=False),
    sa.Column('frequency', sa.BigInteger(), nullable=False),
    sa.Column('monetary', sa.BigInteger(), nullable=False),
    sa.Column('last_day', sa.BigInteger(), nullable=False),
    sa.Column('purchases', sa.BigInteger(), nullable=False),
    sa.Column('spend', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'program_id'], ['program.tenant_id', 'program.id'], name=op.f('fk_rfm_score_tenant_id_program_id_program')),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', 'account_id', name=op.f('pk_rfm_score'))
    )
    op.create_table('challenge_contribution',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('challenge_id', sa.String(length=40), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('period_index', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'challenge_id'], ['challenge.tenant_id', 'challenge.id'], name=op.f('fk_challenge_contribution_tenant_id_challenge_id_challenge')),
    sa.PrimaryKeyConstraint('tenant_id', 'challenge_id', 'event_id', name=op.f('pk_challenge_contribution'))
    )
    with op.batch_alter_table('challenge_contribution', schema=None) as batch_op:
        batch_op.create_index('ix_challenge_contribution_event', ['tenant_id', 'event_id'], unique=False)
    with op.batch_alter_table('challenge_completion', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tally_day', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('reversed_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reversal_entry_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('reversed_by_event_id', sa.String(length=40), nullable=True))


def downgrade() -> None:
    _rebuild_tally(without_rowid=False)
    with op.batch_alter_table('challenge_completion', schema=None) as batch_op:
        batch_op.drop_column('reversed_by_event_id')
        batch_op.drop_column('reversal_entry_id')
        batch_op.drop_column('reversed_at')
        batch_op.drop_column('tally_day')
    with op.batch_alter_table('challenge_contribution', schema=None) as batch_op:
        batch_op.drop_index('ix_challenge_contribution_event')
    op.drop_table('challenge_contribution')
    op.drop_table('rfm_score')
    op.drop_table('rfm_model')
