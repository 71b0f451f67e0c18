"""Batch job ``referrals``: attribute commissions on the referred members' purchases and give
back the commission of refunds; one committed transaction per plan."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from allegiance.kit.db import Database
from allegiance.referrals.models import ReferralPlan
from allegiance.referrals.service import sync


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 100,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    with db.read() as session:
        plans = session.execute(select(ReferralPlan.tenant_id, ReferralPlan.id)
                                .order_by(ReferralPlan.tenant_id, ReferralPlan.id)).all()
    purchases = 0
    for tenant_id, plan_id in plans:
        with db.transaction() as session:
            purchases += sync(session, tenant_id, plan_id)
        progress("plans", 1)
    return {"plans": len(plans), "purchases": purchases}
