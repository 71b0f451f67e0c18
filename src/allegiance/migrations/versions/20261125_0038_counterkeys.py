"""counterkeys: the values a ``distinct`` counter already counted, per member

``member_counter_key (tenant_id, program_id, account_id, name, key)``: one row per value a
member's ``distinct`` counter counted (the Lenovo set bonus counts each mandatory course once,
however often it is completed). The primary key makes the count safe under concurrency: the
earning path inserts with ``ON CONFLICT DO NOTHING`` and adds 1 to ``member_counter`` only
when its row was inserted — two events of the same course count once, of different courses
twice.

Revision ID: 0038_counterkeys
Revises: 0037_claimkeys
Create Date: 2026-11-25 08:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from allegiance.kit import tenancy

revision: str = '0038_counterkeys'
down_revision: str | None = '0037_claimkeys'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_counter_key",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("program_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"],
                                name=op.f("fk_member_counter_key_tenant_id_program_id_program")),
        sa.PrimaryKeyConstraint("tenant_id", "program_id", "account_id", "name", "key",
                                name=op.f("pk_member_counter_key")))
    tenancy.apply_row_level_security(op.get_bind())


def downgrade() -> None:
    op.drop_table("member_counter_key")
