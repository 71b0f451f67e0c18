"""Use cases of webhooks: endpoints (CRUD, secret rotation), the fan-out of committed outbox
messages into one delivery per matching endpoint, claiming and recording attempts, the list of
deliveries, and manual replay. Services flush; the caller commits."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from allegiance.kit import clock, outbox
from allegiance.kit.errors import Conflict, NotFound, ValidationFailed
from allegiance.kit.ids import new_id
from allegiance.kit.models import OutboxMessage
from allegiance.webhooks import domain, ssrf
from allegiance.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

ROTATION_OVERLAP = timedelta(hours=24)
_EVENT_TYPE = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")
MAX_ERROR = 500


# ---------------------------------------------------------------------------------------------
# Endpoints


def _clean_event_types(event_types: list[str]) -> list[str]:
    if not event_types:
        raise ValidationFailed("list at least one event type (or '*')", field="event_types")
    cleaned: list[str] = []
    for item in event_types:
        if not isinstance(item, str) or len(item) > 80 or not _EVENT_TYPE.match(item):
            raise ValidationFailed(f"{item!r} is not an event type pattern", field="event_types")
        if item not in cleaned:
            cleaned.append(item)
    return cleaned


def matches(patterns: list[Any], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if isinstance(pattern, str) and pattern.endswith(".*") and \
                event_type.startswith(pattern[:-1]):
            return True
    return False


def create_endpoint(session: Session, tenant_id: str, *, url: str, event_types: list[str],
                    description: str = "") -> WebhookEndpoint:
    ssrf.check_url(url)
    now = clock.now()
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id, id=new_id("whe"), url=url, description=description,
        event_types=_clean_event_types(event_types), secret=domain.generate_secret(),
        previous_secret=None, previous_secret_expires_at=None, status="enabled",
        disabled_reason=None, created_at=now, updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = session.get(WebhookEndpoint, (tenant_id, endpoint_id))
    if row is None or row.status == "deleted":
        raise NotFound("webhook endpoint not found", field="endpoint_id")
    return row


def list_endpoints(session: Session, tenant_id: str, *, limit: int,
                   after: str | None = None) -> list[WebhookEndpoint]:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id,
                                         WebhookEndpoint.status != "deleted")
    if after:
        stmt = stmt.where(WebhookEndpoint.id > after)
    return list(session.scalars(stmt.order_by(WebhookEndpoint.id).limit(limit + 1)))


def update_endpoint(session: Session, tenant_id: str, endpoint_id: str, *,
                    url: str | None = None, event_types: list[str] | None = None,
                    description: str | None = None, status: str | None = None
                    ) -> WebhookEndpoint:
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    if url is not None:
        ssrf.check_url(url)
        endpoint.url = url
    if event_types is not None:
        endpoint.event_types = _clean_event_types(event_types)
    if description is not None:
        endpoint.description = description
    if status is not None:
        if status not in ("enabled", "disabled"):
            raise ValidationFailed("status is 'enabled' or 'disabled'", field="status")
        if status != endpoint.status:
            endpoint.status = status
            endpoint.disabled_reason = None if status == "enabled" else "disabled by an admin"
    endpoint.updated_at = clock.now()
    session.flush()
    return endpoint


def delete_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> None:
    """Soft delete: the endpoint stops receiving; its delivery log stays."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    endpoint.status = "deleted"
    endpoint.updated_at = clock.now()
    session.flush()


def rotate_secret(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """A new secret; the old one keeps signing for 24 hours (both signatures are sent)."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    now = clock.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret = domain.generate_secret()
    endpoint.updated_at = now
    session.flush()
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


# ---------------------------------------------------------------------------------------------
# Fan-out and delivery


def fan_out(session: Session, limit: int = 100) -> int:
    """Turn up to ``limit`` committed, undispatched outbox messages into deliveries (one per
    enabled endpoint whose event types match) and mark them dispatched. Returns the number of
    messages handled."""
    # The outbox's pending query, locking the rows taken (PostgreSQL: SKIP LOCKED, so that
    # concurrent dispatchers share the work; SQLite serialises writers anyway).
    messages = list(session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.dispatched_at.is_(None), OutboxMessage.available_at <= clock.now())
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)))
    endpoints: dict[str, list[WebhookEndpoint]] = {}
    now = clock.now()
    for message in messages:
        if message.tenant_id not in endpoints:
            endpoints[message.tenant_id] = list(session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == message.tenant_id,
                                              WebhookEndpoint.status == "enabled")
                .order_by(WebhookEndpoint.id)))
        for endpoint in endpoints[message.tenant_id]:
            if not matches(endpoint.event_types, message.event_type):
                continue
            session.add(WebhookDelivery(
                tenant_id=message.tenant_id, id=new_id("whd"), endpoint_id=endpoint.id,
                message_id=message.id, event_type=message.event_type, status="pending",
                attempts=0, next_attempt_at=now, last_status_code=None, last_error=None,
                created_at=now, updated_at=now, delivered_at=None,
            ))
        outbox.mark_dispatched(session, message.tenant_id, message.id, now)
    session.flush()
    return len(messages)


def due_deliveries(session: Session, limit: int = 100) -> list[tuple[str, str]]:
    """(tenant_id, delivery_id) of pending deliveries that are due, to enabled endpoints."""
    stmt = (
        select(WebhookDelivery.tenant_id, WebhookDelivery.id)
        .join(WebhookEndpoint, (WebhookEndpoint.tenant_id == WebhookDelivery.tenant_id)
              & (WebhookEndpoint.id == WebhookDelivery.endpoint_id))
        .where(WebhookDelivery.status == "pending",
               WebhookDelivery.next_attempt_at <= clock.now(),
               WebhookEndpoint.status == "enabled")
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return [(t, d) for t, d in session.execute(stmt)]


@dataclass(frozen=True)
class Send:
    """One HTTP request to make: the delivery, its attempt number, URL, headers and body."""

    tenant_id: str
    delivery_id: str
    number: int
    url: str
    headers: dict[str, str]
    body: bytes


def body_of(message: OutboxMessage) -> bytes:
    """The JSON body (Standard Webhooks shape: type, timestamp, data); identical on every
    attempt of a message."""
    document = {"type": message.event_type, "timestamp": message.created_at.isoformat(),
                "data": message.payload}
    return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str).encode()


def claim(session: Session, tenant_id: str, delivery_id: str, lease: timedelta) -> Send | None:
    """Take a due delivery for one attempt: its next attempt moves ``lease`` ahead, so a
    dispatcher that dies before recording the result leaves it due again after the lease
    (at least once). None when another dispatcher took it first or it is no longer due."""
    now = clock.now()
    taken = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id == delivery_id,
               WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .values(next_attempt_at=now + lease, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    delivery = session.get(WebhookDelivery, (tenant_id, delivery_id), populate_existing=True)
    assert delivery is not None
    endpoint = session.get(WebhookEndpoint, (tenant_id, delivery.endpoint_id))
    message = session.get(OutboxMessage, (tenant_id, delivery.message_id))
    if endpoint is None or message is None or endpoint.status != "enabled":
        return None
    body = body_of(message)
    number = delivery.attempts + 1
    signed = domain.headers(signing_secrets(endpoint, now), message.id, int(now.timestamp()),
                            body)
    headers = {"content-type": "application/json", "user-agent": "Allegiance-Webhooks/1",
               **signed}
    return Send(tenant_id, delivery_id, number, endpoint.url, headers, body)


def record_attempt(session: Session, send: Send, *, status_code: int | None,
                   error: str | None, retry_after: str | None, duration_ms: int) -> str:
    """Log the attempt and move the delivery on: succeeded, retry later, failed; a 410
    disables the endpoint. Returns the delivery's status."""
    now = clock.now()
    delivery = session.get(WebhookDelivery, (send.tenant_id, send.delivery_id))
    if delivery is None:
        raise NotFound("webhook delivery not found", field="delivery_id")
    count = session.scalar(select(func.count()).select_from(WebhookAttempt).where(
        WebhookAttempt.tenant_id == send.tenant_id,
        WebhookAttempt.delivery_id == send.delivery_id)) or 0
    session.add(WebhookAttempt(
        tenant_id=send.tenant_id, id=new_id("wha"), delivery_id=send.delivery_id,
        number=count + 1, at=now, status_code=status_code,
        error=error[:MAX_ERROR] if error else None, duration_ms=duration_ms,
    ))
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error[:MAX_ERROR] if error else None
    delivery.updated_at = now
    result = domain.outcome(delivery.attempts, status_code, retry_after)
    if result.succeeded:
        delivery.status = "succeeded"
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif result.retry_in is not None:
        delivery.next_attempt_at = now + timedelta(seconds=result.retry_in)
    else:
        delivery.status = "failed"
        delivery.next_attempt_at = None
    if result.disable_endpoint:
        endpoint = session.get(WebhookEndpoint, (send.tenant_id, delivery.endpoint_id))
        if endpoint is not None and endpoint.status == "enabled":
            endpoint.status = "disabled"
            endpoint.disabled_reason = "the receiver answered 410 Gone"
            endpoint.updated_at = now
    session.flush()
    return delivery.status


# ---------------------------------------------------------------------------------------------
# Deliveries: list, attempts, replay


def get_delivery(session: Session, tenant_id: str, delivery_id: str) -> WebhookDelivery:
    row = session.get(WebhookDelivery, (tenant_id, delivery_id))
    if row is None:
        raise NotFound("webhook delivery not found", field="delivery_id")
    return row


def list_deliveries(session: Session, tenant_id: str, endpoint_id: str, *,
                    status: str | None, limit: int,
                    after: str | None = None) -> list[WebhookDelivery]:
    get_endpoint(session, tenant_id, endpoint_id)
    if status is not None and status not in ("pending", "succeeded", "failed"):
        raise ValidationFailed("status is pending, succeeded or failed", field="status")
    stmt = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id,
                                         WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if after:
        stmt = stmt.where(WebhookDelivery.id < after)
    return list(session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit + 1)))


def attempts_of(session: Session, tenant_id: str, delivery_id: str) -> list[WebhookAttempt]:
    return list(session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.tenant_id == tenant_id,
                                     WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.number)))


def replay(session: Session, tenant_id: str, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again now, with a fresh retry schedule and the same ``webhook-id``."""
    delivery = get_delivery(session, tenant_id, delivery_id)
    endpoint = session.get(WebhookEndpoint, (tenant_id, delivery.endpoint_id))
    if endpoint is None or endpoint.status == "deleted":
        raise NotFound("webhook delivery not found", field="delivery_id")
    if endpoint.status != "enabled":
        raise Conflict("the endpoint is disabled; enable it before replaying", field="delivery_id")
    now = clock.now()
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = now
    delivery.delivered_at = None
    delivery.updated_at = now
    session.flush()
    return delivery
