"""Shipping of a physical gift after fulfilment: the status moves on (shipped → in transit →
delivered, or returned / lost) and the carrier and tracking change, each update audited and
announced (``redemption.shipping_updated``). The redemption itself stays ``fulfilled``: the
points were spent at fulfilment and nothing here posts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.kit import clock, outbox
from allegiance.rewards import domain
from allegiance.rewards.errors import InvalidTransition
from allegiance.rewards.models import Redemption, Reward
from allegiance.rewards.service import lock_redemption


def update_shipping(session: Session, tenant_id: str, redemption_id: str, *, actor: str,
                    status: str, carrier: str | None = None, tracking: str | None = None,
                    note: str | None = None) -> Redemption:
    """Record a shipping update of a fulfilled physical gift. ``409 invalid_transition``: the
    redemption is not a fulfilled physical gift, or the status may not follow the current one
    (``domain.SHIPPING``: a returned gift stays returned, a delivered one may only be
    returned)."""
    row = lock_redemption(session, tenant_id, redemption_id)
    kind = session.scalar(select(Reward.kind).where(Reward.tenant_id == tenant_id,
                                                    Reward.id == row.reward_id))
    if kind != "physical":
        raise InvalidTransition(f"a {kind} reward is not shipped", field="redemption_id")
    if row.status != "fulfilled":
        raise InvalidTransition(f"a {row.status} redemption has not been shipped yet; "
                                "fulfil it first", field="redemption_id")
    before = dict(row.shipping or {})
    current = str(before.get("status") or "")
    if current not in domain.SHIPPING:
        current = "preparing"  # a free-text status given at fulfilment: any next step
    if not domain.may_ship(current, status):
        raise InvalidTransition(f"shipping cannot go from {current or 'none'} to {status}",
                                field="shipping_status")
    after: dict[str, Any] = {**before, "status": status, "updated_at": clock.now().isoformat()}
    for name, value in (("carrier", carrier), ("tracking", tracking), ("note", note)):
        if value is not None:
            after[name] = value
    row.shipping = after
    session.flush()
    # the tracking fields only: the address is personal data (redacted from the audit trail
    # as ``shipping``) and never changes here
    audit.record(session, tenant_id, actor=actor, action="redemption.shipping_updated",
                 object_type="redemption", object_id=row.id, before=_tracked(before),
                 after=_tracked(after))
    outbox.emit(session, tenant_id, "redemption.shipping_updated", {
        "redemption_id": row.id, "program_id": row.program_id, "reward_id": row.reward_id,
        "account_id": row.account_id, "status": row.status, **_tracked(after)})
    return row


def _tracked(shipping: dict[str, Any]) -> dict[str, Any]:
    return {f"shipping_{k}": shipping.get(k) for k in ("status", "carrier", "tracking", "note")}
