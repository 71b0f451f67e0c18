"""``kit.sequences.lock`` takes the sequence's row lock even before its first use.

Every API write locks its tenant's audit sequence first so that writes never take their other
locks in opposite orders. A tenant's first writes used to find no row to lock (a plain UPDATE of
a missing row locks nothing) and could deadlock on PostgreSQL (seen in T6's cross-process run).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from allegiance import tenants
from allegiance.kit import sequences
from allegiance.kit.db import Database
from allegiance.kit.models import Sequence


def _new_tenant(db: Database) -> str:
    with db.transaction() as s:
        return tenants.create_tenant(s, "Sequences").id


def test_lock_creates_the_row_and_reserve_starts_at_one(db: Database) -> None:
    tenant_id = _new_tenant(db)
    with db.transaction(tenant_id) as s:
        sequences.lock(s, tenant_id, "probe")
        assert sequences.reserve(s, tenant_id, "probe") == (1, "")
        sequences.lock(s, tenant_id, "probe")  # again: the row stays as it is
    with db.read(tenant_id) as s:
        row = s.scalars(select(Sequence).where(Sequence.tenant_id == tenant_id,
                                               Sequence.name == "probe")).one()
        assert row.last_value == 1


def test_lock_of_a_new_sequence_blocks_a_second_locker(pg_db: Database) -> None:
    tenant_id = _new_tenant(pg_db)
    with pg_db.transaction(tenant_id) as first:
        sequences.lock(first, tenant_id, sequences.AUDIT)
        with (pytest.raises(OperationalError, match="lock timeout"),
              pg_db.transaction(tenant_id) as second):
            second.execute(text("SET LOCAL lock_timeout = '300ms'"))
            sequences.lock(second, tenant_id, sequences.AUDIT)
