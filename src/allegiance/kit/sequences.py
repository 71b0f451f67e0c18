"""Gapless, per-tenant sequences with a hash chain (journal numbers, audit numbers).

Both statements run on every posting, so they go to the driver directly (see
:func:`kit.db.driver_connection`), in the session's transaction.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from allegiance.kit.db import driver_connection

_SQL = {
    "reserve": "UPDATE sequence SET last_value = last_value + {n} "
               "WHERE tenant_id = {t} AND name = {name} RETURNING last_value, last_hash",
    "create": "INSERT INTO sequence (tenant_id, name, last_value, last_hash) "
              "VALUES ({t}, {name}, 0, '') ON CONFLICT DO NOTHING",
    "set_hash": "UPDATE sequence SET last_hash = {h} WHERE tenant_id = {t} AND name = {name}",
    # An upsert, so the lock is taken even before the sequence's first use (a plain UPDATE of
    # a missing row locks nothing, and first writers of a tenant could then deadlock).
    "lock": "INSERT INTO sequence (tenant_id, name, last_value, last_hash) "
            "VALUES ({t}, {name}, 0, '') "
            "ON CONFLICT (tenant_id, name) DO UPDATE SET last_value = sequence.last_value",
}
_MARKS = {
    "sqlite": {k: v.format(n="?", t="?", name="?", h="?") for k, v in _SQL.items()},
    "postgresql": {k: v.format(n="%s", t="%s", name="%s", h="%s") for k, v in _SQL.items()},
}


def _statements(session: Session) -> dict[str, str]:
    return _MARKS[session.get_bind().dialect.name]


def reserve(session: Session, tenant_id: str, name: str, count: int = 1) -> tuple[int, str]:
    """Reserve ``count`` numbers; returns (first number, hash of the entry before it).

    The row stays locked until the transaction ends, so numbers are gapless: a rollback gives
    them back. Call it as late as possible in a transaction to keep the lock short.
    """
    sql = _statements(session)
    with driver_connection(session) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(sql["reserve"], (count, tenant_id, name))
            row = cursor.fetchone()
            if row is None:
                # First use: create the row; a concurrent creator wins quietly and we then wait
                # on its row lock like any other writer.
                cursor.execute(sql["create"], (tenant_id, name))
                cursor.execute(sql["reserve"], (count, tenant_id, name))
                row = cursor.fetchone()
        finally:
            cursor.close()
    assert row is not None
    last_value, last_hash = int(row[0]), str(row[1])
    return last_value - count + 1, last_hash


AUDIT = "audit"


def lock(session: Session, tenant_id: str, name: str) -> None:
    """Take the sequence's row lock now (a no-op update), for a transaction that must hold it
    before any other lock. The row is created if it does not exist yet (a tenant's first
    writes lock like every later one). API writes no longer do this with the audit chain:
    they chain their audit rows at their end (``audit.write_pending``), so the chain's lock is
    the last one they take."""
    sql = _statements(session)
    with driver_connection(session) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(sql["lock"], (tenant_id, name))
        finally:
            cursor.close()


def set_last_hash(session: Session, tenant_id: str, name: str, last_hash: str) -> None:
    sql = _statements(session)
    with driver_connection(session) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(sql["set_hash"], (last_hash, tenant_id, name))
        finally:
            cursor.close()


def chain(previous_hash: str, content: str) -> str:
    """The next link of a hash chain."""
    return hashlib.sha256((previous_hash + "\n" + content).encode()).hexdigest()
