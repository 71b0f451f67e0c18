"""security: API key rotation, exchange rates and converted events, row-level security on
every tenant table (PostgreSQL)

Revision ID: 0009_security
Revises: 0013_ledger_post
Create Date: 2026-11-24 00:09:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import allegiance.kit.db
from allegiance.kit import tenancy

revision: str = '0009_security'
down_revision: str | None = '0013_ledger_post'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_secret_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_expires_at',
                                      allegiance.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('rotated_at', allegiance.kit.db.UTCDateTime(timezone=True),
                                      nullable=True))
    op.create_table('fx_rate',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('base_currency', sa.String(length=3), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('rate', sa.Numeric(precision=24, scale=10), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('created_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('rate > 0', name=op.f('ck_fx_rate_rate_positive')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_fx_rate_tenant_id_tenant')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_fx_rate')),
    sa.UniqueConstraint('tenant_id', 'base_currency', 'currency', 'day',
                        name=op.f('uq_fx_rate_tenant_id_base_currency_currency_day'))
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('original_currency', sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column('original_amount', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('fx_rate', sa.Numeric(precision=24, scale=10),
                                      nullable=True))
        batch_op.add_column(sa.Column('fx_date', sa.Date(), nullable=True))
    # PostgreSQL: enable and force row-level security with the tenant policy on every table
    # that has a tenant_id (kit.migrate.upgrade re-applies it after later migrations).
    tenancy.apply_row_level_security(op.get_bind())


def downgrade() -> None:
    tenancy.remove_row_level_security(op.get_bind())
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_column('fx_date')
        batch_op.drop_column('fx_rate')
        batch_op.drop_column('original_amount')
        batch_op.drop_column('original_currency')
    op.drop_table('fx_rate')
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_column('rotated_at')
        batch_op.drop_column('previous_secret_expires_at')
        batch_op.drop_column('previous_secret_hash')
