"""Kit-owned tables: tenants (the root of isolation), named sequences with a hash chain,
the transactional outbox and stored idempotent responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class Tenant(Base):
    """One operating company's workspace. Its ``id`` is every other row's ``tenant_id``."""

    __tablename__ = "tenant"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime]
    # Erasure and retention settings live with the tenant; keep them small and typed.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Sequence(Base):
    """Gapless per-tenant counters (journal numbers, audit numbers) with the chain's last hash."""

    __tablename__ = "sequence"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        CheckConstraint("last_value >= 0", name="non_negative"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_value: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="")


class OutboxMessage(Base):
    """Something that must leave the process (webhook, e-mail), written in the same transaction
    as the change it reports and delivered after commit by a dispatcher."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        Index("ix_outbox_message_pending", "dispatched_at", "available_at"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    available_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)


class IdempotencyRecord(Base):
    """The first response to a write with an ``Idempotency-Key``, replayed for later retries."""

    __tablename__ = "idempotency_record"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        Index("ix_idempotency_record_expires_at", "expires_at"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    status_code: Mapped[int]
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ZoneOffset(Base):
    """Reference data, not a tenant's (``kit.zones``): the UTC offset of an IANA time zone over
    ``[starts_at, ends_at)``; every zone a program uses has its intervals covering all time."""

    __tablename__ = "zone_offset"

    zone: Mapped[str] = mapped_column(String(64), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    ends_at: Mapped[datetime]
    offset_seconds: Mapped[int]
