"""tiers: room for the recalculation's writes — tier history clustered by its key on SQLite,
enrolments stored half-full on PostgreSQL so that the primary ladder's level copied into
``enrolment.tier`` is a heap-only update

Revision ID: 0023_tiers
Revises: 0018_aging
Create Date: 2026-11-24 08:20:00

* SQLite: ``tier_change`` becomes ``WITHOUT ROWID`` (one B-tree keyed by (tenant, ladder,
  account, seq) instead of a rowid table plus an index of the key): a recalculation that moves
  a million members writes its history rows once, not twice.
* PostgreSQL: ``enrolment`` gets ``fillfactor = 50``. A recalculation updates ``tier`` (not
  indexed) of every enrolment whose level changed; without free space on the page each update
  writes a new tuple elsewhere plus an entry in each of the table's three indexes (≈ 40 µs per
  row measured at 200,000 members), with it the new tuple stays on its page and no index is
  touched (≈ 10× cheaper). The setting applies to pages written from now on (a ``VACUUM FULL``
  rewrites existing ones at a time of the operator's choosing).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0023_tiers'
down_revision: str | None = '0018_aging'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("tier_change", recreate="always",
                                  table_kwargs={"sqlite_with_rowid": False}):
            pass
    else:
        op.execute("ALTER TABLE enrolment SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("tier_change", recreate="always",
                                  table_kwargs={"sqlite_with_rowid": True}):
            pass
    else:
        op.execute("ALTER TABLE enrolment RESET (fillfactor)")
