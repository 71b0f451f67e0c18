"""segments: segment memberships keyed and nothing else; RFM scores no longer stored per account

* ``segment_member`` is derived data the segments job rebuilds: its foreign keys (to the
  account and the segment; each inserted row took a key-share lock on both, ≈ 15 µs of the
  ≈ 25 µs a row cost on PostgreSQL) and its index by account go. An account's segments are
  read by a probe of the key per segment of its program. On SQLite the table is clustered on
  its key (``WITHOUT ROWID``: one b-tree instead of three). Nothing deletes accounts or
  segments (GDPR erasure pseudonymises the account and relies on no cascade); the refresh
  removes the memberships of accounts no longer actively enrolled.
* ``rfm_score`` goes: it held a second copy of the running RFM inputs with the scores the
  breakpoints give back (0.8 M rows written by the first refresh of a million members, read
  again by each later one). ``rfm_model.distribution`` keeps the last refresh's buyers per
  score. Downgrade recreates ``rfm_score`` empty: the next refresh of the older code fills it.

Revision ID: 0027_segments
Revises: 0026_analytics
Create Date: 2026-11-24 13:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from allegiance.kit import tenancy

revision: str = '0027_segments'
down_revision: str | None = '0026_analytics'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MEMBER = """CREATE TABLE segment_member_new (
    tenant_id VARCHAR(40) NOT NULL,
    segment_id VARCHAR(40) NOT NULL,
    account_id VARCHAR(40) NOT NULL,
    since DATETIME NOT NULL,
    CONSTRAINT pk_segment_member PRIMARY KEY (tenant_id, segment_id, account_id){fks}
){suffix}"""
# one line each: SQLAlchemy's reflection of SQLite reads the names from the table's SQL
_FKS = "".join(
    f",\n    CONSTRAINT fk_segment_member_tenant_id_{column}_{table} FOREIGN KEY(tenant_id, "
    f"{column}) REFERENCES {table} (tenant_id, id)"
    for table, column in (("account", "account_id"), ("segment", "segment_id")))
_FK_NAMES = {"fk_segment_member_tenant_id_account_id_account": ("account", "account_id"),
             "fk_segment_member_tenant_id_segment_id_segment": ("segment", "segment_id")}


def _rebuild_members(keyed_only: bool) -> None:
    """SQLite: the table again, clustered on its key without foreign keys (or back)."""
    op.execute(_MEMBER.format(fks="" if keyed_only else _FKS,
                              suffix=" WITHOUT ROWID" if keyed_only else ""))
    op.execute("INSERT INTO segment_member_new (tenant_id, segment_id, account_id, since) "
               "SELECT tenant_id, segment_id, account_id, since FROM segment_member")
    op.execute("DROP TABLE segment_member")
    op.execute("ALTER TABLE segment_member_new RENAME TO segment_member")
    if not keyed_only:
        op.execute("CREATE INDEX ix_segment_member_account ON segment_member "
                   "(tenant_id, account_id)")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        _rebuild_members(keyed_only=True)
    else:
        for name in _FK_NAMES:
            op.drop_constraint(name, "segment_member", type_="foreignkey")
        op.drop_index("ix_segment_member_account", table_name="segment_member")
    op.drop_table("rfm_score")
    with op.batch_alter_table("rfm_model", schema=None) as batch_op:
        batch_op.add_column(sa.Column("distribution", sa.JSON(), nullable=False,
                                      server_default="{}"))


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table("rfm_model", schema=None) as batch_op:
        batch_op.drop_column("distribution")
    op.create_table(
        "rfm_score",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("program_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("recency", sa.BigInteger(), nullable=False),
        sa.Column("frequency", sa.BigInteger(), nullable=False),
        sa.Column("monetary", sa.BigInteger(), nullable=False),
        sa.Column("last_day", sa.BigInteger(), nullable=False),
        sa.Column("purchases", sa.BigInteger(), nullable=False),
        sa.Column("spend", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"],
                                name=op.f("fk_rfm_score_tenant_id_program_id_program")),
        sa.PrimaryKeyConstraint("tenant_id", "program_id", "account_id",
                                name=op.f("pk_rfm_score")))
    if sqlite:
        _rebuild_members(keyed_only=False)
        return
    tenancy.apply_row_level_security(bind)  # the recreated rfm_score's policy
    for name, (table, column) in _FK_NAMES.items():
        # memberships of rows that no longer exist could not have been written under the keys
        op.execute(f"DELETE FROM segment_member m WHERE NOT EXISTS (SELECT 1 FROM {table} t "
                   f"WHERE t.tenant_id = m.tenant_id AND t.id = m.{column})")
        op.create_foreign_key(name, "segment_member", table, ["tenant_id", column],
                              ["tenant_id", "id"])
    op.create_index("ix_segment_member_account", "segment_member", ["tenant_id", "account_id"])
