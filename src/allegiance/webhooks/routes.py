"""HTTP routes of webhook endpoints and deliveries (scope ``admin``; writes are audited).
Another tenant's ids read as not found."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need
from allegiance.webhooks import service
from allegiance.webhooks.models import WebhookDelivery
from allegiance.webhooks.schemas import (
    WebhookAttemptRead,
    WebhookDeliveryPage,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointPage,
    WebhookEndpointRead,
    WebhookEndpointSecretRead,
    WebhookEndpointUpdate,
)

router = APIRouter(tags=["webhooks"])

LimitQuery = Query(50, ge=1, le=MAX_LIMIT, description="page size")
CursorQuery = Query(None, max_length=200, description="next_cursor of the previous page")


def _record(session: Session, ctx: Ctx, action: str, object_id: str,
            after: dict[str, Any] | None) -> None:
    audit.record(session, ctx.tenant_id, actor=ctx.actor, action=action,
                 object_type="webhook_endpoint", object_id=object_id, before=None, after=after)


def _delivery(session: Session, row: WebhookDelivery) -> WebhookDeliveryRead:
    out = WebhookDeliveryRead.model_validate(row)
    out.attempt_log = [WebhookAttemptRead.model_validate(a)
                       for a in service.attempts_of(session, row.tenant_id, row.id)]
    return out


@router.post("/webhook-endpoints", status_code=201, response_model=WebhookEndpointSecretRead,
             summary="Create a webhook endpoint (the response carries its secret)")
def create_endpoint(body: WebhookEndpointCreate, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> WebhookEndpointSecretRead:
        row = service.create_endpoint(session, ctx.tenant_id, url=body.url,
                                      event_types=body.event_types,
                                      description=body.description)
        _record(session, ctx, "webhook_endpoint.create", row.id,
                WebhookEndpointRead.model_validate(row).model_dump(mode="json"))
        return WebhookEndpointSecretRead.model_validate(row)

    return ctx.write(body, run, 201)


@router.get("/webhook-endpoints", response_model=WebhookEndpointPage,
            summary="List webhook endpoints")
def list_endpoints(limit: int = LimitQuery, cursor: str | None = CursorQuery,
                   ctx: Ctx = Depends(need("admin"))) -> WebhookEndpointPage:
    with ctx.read() as session:
        rows = service.list_endpoints(session, ctx.tenant_id, limit=limit,
                                      after=decode_cursor(cursor))
        items = [WebhookEndpointRead.model_validate(r) for r in rows[:limit]]
    return WebhookEndpointPage(
        items=items,
        next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointRead,
            summary="Read a webhook endpoint")
def get_endpoint(endpoint_id: str, ctx: Ctx = Depends(need("admin"))) -> WebhookEndpointRead:
    with ctx.read() as session:
        return WebhookEndpointRead.model_validate(
            service.get_endpoint(session, ctx.tenant_id, endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointRead,
              summary="Change a webhook endpoint (URL, event types, enable or disable)")
def update_endpoint(endpoint_id: str, body: WebhookEndpointUpdate,
                    ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> WebhookEndpointRead:
        row = service.update_endpoint(session, ctx.tenant_id, endpoint_id, url=body.url,
                                      event_types=body.event_types,
                                      description=body.description, status=body.status)
        out = WebhookEndpointRead.model_validate(row)
        _record(session, ctx, "webhook_endpoint.update", row.id, out.model_dump(mode="json"))
        return out

    return ctx.write(body, run)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204,
               summary="Delete a webhook endpoint (its delivery log is kept)")
def delete_endpoint(endpoint_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> None:
        service.delete_endpoint(session, ctx.tenant_id, endpoint_id)
        _record(session, ctx, "webhook_endpoint.delete", endpoint_id, None)

    return ctx.write(None, run, 204)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret",
             response_model=WebhookEndpointSecretRead,
             summary="Rotate the signing secret (the old one stays valid for 24 hours)")
def rotate_secret(endpoint_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> WebhookEndpointSecretRead:
        row = service.rotate_secret(session, ctx.tenant_id, endpoint_id)
        _record(session, ctx, "webhook_endpoint.rotate_secret", row.id, None)
        return WebhookEndpointSecretRead.model_validate(row)

    return ctx.write(None, run)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", response_model=WebhookDeliveryPage,
            summary="List an endpoint's deliveries, newest first (filter: status=failed)")
def list_deliveries(endpoint_id: str,
                    status: Literal["pending", "succeeded", "failed"] | None = None,
                    limit: int = LimitQuery, cursor: str | None = CursorQuery,
                    ctx: Ctx = Depends(need("admin"))) -> WebhookDeliveryPage:
    with ctx.read() as session:
        rows = service.list_deliveries(session, ctx.tenant_id, endpoint_id, status=status,
                                       limit=limit, after=decode_cursor(cursor))
        items = [_delivery(session, r) for r in rows[:limit]]
    return WebhookDeliveryPage(
        items=items,
        next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.post("/webhook-deliveries/{delivery_id}/replay", response_model=WebhookDeliveryRead,
             summary="Send a delivery again (same webhook-id, fresh retry schedule)")
def replay_delivery(delivery_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> WebhookDeliveryRead:
        row = service.replay(session, ctx.tenant_id, delivery_id)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="webhook_delivery.replay",
                     object_type="webhook_delivery", object_id=row.id, before=None, after=None)
        return _delivery(session, row)

    return ctx.write(None, run)
