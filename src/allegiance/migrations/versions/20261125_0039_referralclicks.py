"""referralclicks: per-click attribution and an incremental referral sync

* ``referral_plan.attribution`` (``signup`` | ``click``, default ``signup``): a click plan
  attributes a purchase to the latest click whose window covers it (Amazon Associates).
* ``referral.kind`` (``signup`` | ``click``) and ``referral.visitor_id``: a click is a
  referral row of kind ``click``, by an account or by an anonymous visitor matched later
  (``referred_account_id`` becomes nullable; one of the two is set). The unique
  ``(tenant_id, plan_id, referred_account_id)`` holds for sign-ups only (partial index
  ``uq_referral_signup``); a member may click any number of times.
* ``referral_attributed (tenant_id, plan_id, event_id, returned_amount, at)``: what the
  plan's ``sync`` has attributed and the refunded amount it reconciled; sync reads only the
  purchases without a row or refunded since, in bounded batches.
* ``referral_identity (tenant_id, plan_id, kind, key, referral_id)``: every identity key a
  sign-up was made with (account and supplied e-mail and tax id, device hashes), for the
  duplicate check; filled from the referrals' stored keys.

Revision ID: 0039_referralclicks
Revises: 0038_counterkeys
Create Date: 2026-11-25 08:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from allegiance.kit import tenancy
from allegiance.kit.db import UTCDateTime

revision: str = '0039_referralclicks'
down_revision: str | None = '0038_counterkeys'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNUP = sa.text("kind = 'signup'")


def upgrade() -> None:
    with op.batch_alter_table('referral_plan', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attribution', sa.String(length=8),
                                      server_default='signup', nullable=False))
        batch_op.create_check_constraint(op.f('ck_referral_plan_attribution'),
                                         "attribution IN ('signup', 'click')")
    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='signup',
                                      nullable=False))
        batch_op.add_column(sa.Column('visitor_id', sa.String(length=128), nullable=True))
        batch_op.alter_column('referred_account_id', existing_type=sa.String(length=40),
                              nullable=True)
        batch_op.drop_constraint('uq_referral_tenant_id_plan_id_referred_account_id',
                                 type_='unique')
        batch_op.create_check_constraint(op.f('ck_referral_kind'),
                                         "kind IN ('signup', 'click')")
        batch_op.create_check_constraint(
            op.f('ck_referral_who'), "referred_account_id IS NOT NULL OR visitor_id IS NOT NULL")
    op.create_index('uq_referral_signup', 'referral',
                    ['tenant_id', 'plan_id', 'referred_account_id'], unique=True,
                    sqlite_where=_SIGNUP, postgresql_where=_SIGNUP)
    op.create_index('ix_referral_referred', 'referral', ['tenant_id', 'referred_account_id'])
    op.create_index('ix_referral_visitor', 'referral', ['tenant_id', 'plan_id', 'visitor_id'])
    op.create_table(
        'referral_attributed',
        sa.Column('tenant_id', sa.String(length=40), nullable=False),
        sa.Column('plan_id', sa.String(length=40), nullable=False),
        sa.Column('event_id', sa.String(length=40), nullable=False),
        sa.Column('returned_amount', sa.BigInteger(), nullable=False),
        sa.Column('at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['tenant_id', 'plan_id'], ['referral_plan.tenant_id', 'referral_plan.id'],
            name=op.f('fk_referral_attributed_tenant_id_plan_id_referral_plan')),
        sa.PrimaryKeyConstraint('tenant_id', 'plan_id', 'event_id',
                                name=op.f('pk_referral_attributed')),
    )
    op.create_table(
        'referral_identity',
        sa.Column('tenant_id', sa.String(length=40), nullable=False),
        sa.Column('plan_id', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('key', sa.String(length=320), nullable=False),
        sa.Column('referral_id', sa.String(length=40), nullable=False),
        sa.CheckConstraint("kind IN ('email', 'tax', 'device')",
                           name=op.f('ck_referral_identity_kind')),
        sa.ForeignKeyConstraint(
            ['tenant_id', 'referral_id'], ['referral.tenant_id', 'referral.id'],
            name=op.f('fk_referral_identity_tenant_id_referral_id_referral')),
        sa.PrimaryKeyConstraint('tenant_id', 'plan_id', 'kind', 'key', 'referral_id',
                                name=op.f('pk_referral_identity')),
    )
    for kind, column in (("email", "email_key"), ("tax", "tax_key"), ("device", "device_hash")):
        op.execute(f"INSERT INTO referral_identity (tenant_id, plan_id, kind, key, referral_id) "
                   f"SELECT tenant_id, plan_id, '{kind}', {column}, id FROM referral "
                   f"WHERE {column} IS NOT NULL")
    tenancy.apply_row_level_security(op.get_bind())


def downgrade() -> None:
    op.drop_table('referral_identity')
    op.drop_table('referral_attributed')
    op.drop_index('ix_referral_visitor', table_name='referral')
    op.drop_index('ix_referral_referred', table_name='referral')
    op.drop_index('uq_referral_signup', table_name='referral')
    op.execute("DELETE FROM referral_reward WHERE referral_id IN "
               "(SELECT id FROM referral WHERE kind = 'click')")
    op.execute("DELETE FROM referral WHERE kind = 'click'")
    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_referral_who'), type_='check')
        batch_op.drop_constraint(op.f('ck_referral_kind'), type_='check')
        batch_op.create_unique_constraint(
            'uq_referral_tenant_id_plan_id_referred_account_id',
            ['tenant_id', 'plan_id', 'referred_account_id'])
        batch_op.alter_column('referred_account_id', existing_type=sa.String(length=40),
                              nullable=False)
        batch_op.drop_column('visitor_id')
        batch_op.drop_column('kind')
    with op.batch_alter_table('referral_plan', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_referral_plan_attribution'), type_='check')
        batch_op.drop_column('attribution')
