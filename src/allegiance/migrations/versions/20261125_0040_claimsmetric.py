"""claimsmetric: the leaderboards' ``claims`` metric — a count of approved partner sales
claims per account and local day (``engagement_tally.claims``) and in the running board
totals (``engagement_board_total.claims``). Existing rows start at 0 (claims approved before
this revision are not counted back).

Revision ID: 0040_claimsmetric
Revises: 0039_referralclicks
Create Date: 2026-11-25 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0040_claimsmetric'
down_revision: str | None = '0039_referralclicks'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("engagement_tally", "engagement_board_total")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("claims", sa.BigInteger(), nullable=False,
                                       server_default="0"))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("claims")
