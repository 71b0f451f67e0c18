"""Webhook endpoints (per tenant), one delivery per (endpoint, outbox message), and the log of
every attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class WebhookEndpoint(Base):
    """A receiver URL with its event types (``["*"]``: all) and signing secret. During a
    rotation the previous secret keeps signing until ``previous_secret_expires_at``."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        CheckConstraint("status IN ('enabled', 'disabled', 'deleted')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[Any]]
    secret: Mapped[str] = mapped_column(String(200))
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One outbox message for one endpoint. ``message_id`` is the ``webhook-id`` of every
    attempt, so a receiver can drop duplicates. ``status``: pending (due at
    ``next_attempt_at``), succeeded, or failed (retries exhausted, or 410)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "endpoint_id"],
                             ["webhook_endpoint.tenant_id", "webhook_endpoint.id"]),
        ForeignKeyConstraint(["tenant_id", "message_id"],
                             ["outbox_message.tenant_id", "outbox_message.id"]),
        UniqueConstraint("tenant_id", "endpoint_id", "message_id"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_endpoint", "tenant_id", "endpoint_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ID)
    message_id: Mapped[str] = mapped_column(ID)
    event_type: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery (status code, or the error when no response came)."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "delivery_id"],
                             ["webhook_delivery.tenant_id", "webhook_delivery.id"]),
        Index("ix_webhook_attempt_delivery", "tenant_id", "delivery_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ID)
    number: Mapped[int]
    at: Mapped[datetime]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int]
