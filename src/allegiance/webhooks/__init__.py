"""Webhooks: per-tenant endpoints, delivery of outbox messages signed per Standard Webhooks,
retries, replay, and the SSRF guard on receiver URLs."""

from allegiance.webhooks.dispatcher import dispatch_once, dispatch_until_idle
from allegiance.webhooks.service import (
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    list_deliveries,
    replay,
    rotate_secret,
    update_endpoint,
)

__all__ = [
    "create_endpoint", "delete_endpoint", "dispatch_once", "dispatch_until_idle", "get_endpoint",
    "list_deliveries", "replay", "rotate_secret", "update_endpoint",
]
