"""Batch job ``referrals``: attribute commissions on the referred members' purchases and give
back the commission of refunds; one committed transaction per batch of purchases not yet
looked at (or refunded since), so a killed run loses at most one batch and resumes."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from allegiance.kit.db import Database
from allegiance.referrals.models import ReferralPlan
from allegiance.referrals.service import sync_batch


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 100,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    with db.read() as session:
        plans = session.execute(select(ReferralPlan.tenant_id, ReferralPlan.id)
                                .order_by(ReferralPlan.tenant_id, ReferralPlan.id)).all()
    purchases = 0
    for tenant_id, plan_id in plans:
        while True:  # one committed transaction per batch: a killed run resumes from there
            with db.transaction() as session:
                count = sync_batch(session, tenant_id, plan_id, batch=batch)
            purchases += count
            if count < batch:
                break
        progress("plans", 1)
    return {"plans": len(plans), "purchases": purchases}
