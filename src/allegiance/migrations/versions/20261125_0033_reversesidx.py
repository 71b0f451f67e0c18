"""reversesidx: ``ix_journal_entry_reverses`` holds only reversals

Every journal entry paid for an entry in ``(tenant_id, reverses_entry_id)`` although almost
none is a reversal (the key is NULL). The one reader (``repository.reversed_so_far``: the
reversals of an entry, ``reverses_entry_id = :id``) can use a partial index ``WHERE
reverses_entry_id IS NOT NULL`` on both engines (an equality implies the column is not NULL),
so earnings no longer write into it.

Revision ID: 0033_reversesidx
Revises: 0032_refusals
Create Date: 2026-11-25 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0033_reversesidx'
down_revision: str | None = '0032_refusals'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REVERSALS = sa.text("reverses_entry_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index('ix_journal_entry_reverses', table_name='journal_entry')
    op.create_index('ix_journal_entry_reverses', 'journal_entry',
                    ['tenant_id', 'reverses_entry_id'], unique=False,
                    sqlite_where=_REVERSALS, postgresql_where=_REVERSALS)


def downgrade() -> None:
    op.drop_index('ix_journal_entry_reverses', table_name='journal_entry')
    op.create_index('ix_journal_entry_reverses', 'journal_entry',
                    ['tenant_id', 'reverses_entry_id'], unique=False)
