"""Gapless, per-tenant sequences with a hash chain (journal numbers, audit numbers)."""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session


def reserve(session: Session, tenant_id: str, name: str, count: int = 1) -> tuple[int, str]:
    """Reserve ``count`` numbers; returns (first number, hash of the entry before it).

    The row stays locked until the transaction ends, so numbers are gapless: a rollback gives
    them back. Call it as late as possible in a transaction to keep the lock short.
    """
    row = session.execute(
        text(
            "UPDATE sequence SET last_value = last_value + :n "
            "WHERE tenant_id = :t AND name = :name RETURNING last_value, last_hash"
        ),
        {"n": count, "t": tenant_id, "name": name},
    ).one_or_none()
    if row is None:
        # First use: create the row; a concurrent creator wins quietly and we then wait on its
        # row lock like any other writer.
        session.execute(
            text(
                "INSERT INTO sequence (tenant_id, name, last_value, last_hash) "
                "VALUES (:t, :name, 0, '') ON CONFLICT DO NOTHING"
            ),
            {"t": tenant_id, "name": name},
        )
        return reserve(session, tenant_id, name, count)
    last_value, last_hash = int(row[0]), str(row[1])
    return last_value - count + 1, last_hash


def set_last_hash(session: Session, tenant_id: str, name: str, last_hash: str) -> None:
    session.execute(
        text("UPDATE sequence SET last_hash = :h WHERE tenant_id = :t AND name = :name"),
        {"h": last_hash, "t": tenant_id, "name": name},
    )


def chain(previous_hash: str, content: str) -> str:
    """The next link of a hash chain."""
    return hashlib.sha256((previous_hash + "\n" + content).encode()).hexdigest()
