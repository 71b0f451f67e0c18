"""imports: saved column mappings and import jobs

Revision ID: 0012_imports
Revises: 0009_security
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import allegiance.kit.db

revision: str = '0012_imports'
down_revision: str | None = '0009_security'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('import_mapping',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('created_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'program_id'], ['program.tenant_id', 'program.id'], name=op.f('fk_import_mapping_tenant_id_program_id_program')),
    sa.PrimaryKeyConstraint('tenant_id', 'program_id', 'source', 'kind', name=op.f('pk_import_mapping'))
    )
    op.create_table('import_job',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('program_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('path', sa.String(length=1000), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('batch', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.BigInteger(), nullable=False),
    sa.Column('rows_total', sa.BigInteger(), nullable=True),
    sa.Column('rows_done', sa.BigInteger(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('replayed', sa.BigInteger(), nullable=False),
    sa.Column('unmatched', sa.BigInteger(), nullable=False),
    sa.Column('rejected_events', sa.BigInteger(), nullable=False),
    sa.Column('rejected_rows', sa.BigInteger(), nullable=False),
    sa.Column('errors_path', sa.String(length=1000), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', allegiance.kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_import_job_status')),
    sa.ForeignKeyConstraint(['tenant_id', 'program_id'], ['program.tenant_id', 'program.id'], name=op.f('fk_import_job_tenant_id_program_id_program')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_import_job'))
    )
    op.create_index('ix_import_job_program', 'import_job', ['tenant_id', 'program_id', 'created_at'], unique=False)
    op.create_index('ix_import_job_status', 'import_job', ['status', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_import_job_status', table_name='import_job')
    op.drop_index('ix_import_job_program', table_name='import_job')
    op.drop_table('import_job')
    op.drop_table('import_mapping')
