"""The transactional outbox: record now, deliver after commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from allegiance.kit import clock
from allegiance.kit.ids import new_id
from allegiance.kit.models import OutboxMessage
from allegiance.kit.rows import RowInsert

_outbox_table = cast(Table, OutboxMessage.__table__)
_insert_message = RowInsert(_outbox_table)


def emit(session: Session, tenant_id: str, event_type: str, payload: dict[str, Any],
         *, message_id: str | None = None) -> str:
    """Add a message to the outbox in the caller's transaction; returns its id. A caller that
    must send a message once gives its own ``message_id`` (a second insert then fails)."""
    at = clock.now()
    message_id = message_id or new_id("msg")
    # One INSERT through the driver now (no ORM unit of work, no Core execution: every write
    # of the API emits one or more).
    _insert_message(session, {
        "tenant_id": tenant_id, "id": message_id, "event_type": event_type, "payload": payload,
        "created_at": at, "available_at": at, "dispatched_at": None, "attempts": 0,
    })
    return message_id


def emit_many(session: Session, tenant_id: str, event_type: str,
              payloads: list[dict[str, Any]]) -> list[str]:
    """:func:`emit` of several messages in one statement (the driver's ``executemany``: one
    round trip on PostgreSQL instead of one per message); returns their ids in order."""
    at = clock.now()
    ids = [new_id("msg") for _ in payloads]
    _insert_message(session, [{
        "tenant_id": tenant_id, "id": message_id, "event_type": event_type, "payload": payload,
        "created_at": at, "available_at": at, "dispatched_at": None, "attempts": 0,
    } for message_id, payload in zip(ids, payloads, strict=True)])
    return ids


def pending(session: Session, limit: int = 100) -> list[OutboxMessage]:
    """Messages not yet dispatched and due, oldest first."""
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.dispatched_at.is_(None), OutboxMessage.available_at <= clock.now())
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def mark_dispatched(session: Session, tenant_id: str, message_id: str, at: datetime) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.tenant_id == tenant_id, OutboxMessage.id == message_id)
        .values(dispatched_at=at)
    )
