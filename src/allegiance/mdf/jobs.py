"""Batch job ``mdf``: top up accrual funds from purchases, then expire funds past their claim
deadline; one committed transaction per fund."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from allegiance.kit.db import Database
from allegiance.mdf.models import MdfFund
from allegiance.mdf.service import accrue, expire_funds


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 100,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    with db.read() as session:
        accruing = session.execute(
            select(MdfFund.tenant_id, MdfFund.id)
            .where(MdfFund.status == "open", MdfFund.accrual_percent.is_not(None))
            .order_by(MdfFund.tenant_id, MdfFund.id)).all()
    allocated = 0
    for tenant_id, fund_id in accruing:
        with db.transaction() as session:
            allocated += accrue(session, tenant_id, fund_id, actor="job:mdf")
        progress("accrued funds", 1)
    expired = 0
    while True:
        with db.transaction() as session:
            done = expire_funds(session, limit=batch)
        expired += done
        progress("expired funds", done)
        if done < batch:
            break
    return {"funds_accrued": len(accruing), "allocated": allocated, "funds_expired": expired}
