"""reports: stored copies of computed reports (the admin pages read them with their "as at")

Revision ID: 0016_reports
Revises: 0015_rfm
Create Date: 2026-11-24 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import allegiance.kit.db

revision: str = '0016_reports'
down_revision: str | None = '0015_rfm'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('report_snapshot',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('options_key', sa.String(length=64), nullable=False),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('seconds', sa.Double(), nullable=False),
    sa.Column('computed_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'program_id'], ['program.tenant_id', 'program.id'], name=op.f('fk_report_snapshot_tenant_id_program_id_program')),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', 'kind', 'options_key', name=op.f('pk_report_snapshot'))
    )


def downgrade() -> None:
    op.drop_table('report_snapshot')
