"""Batch job ``rebates``: accrue every running period, true up the periods that ended, claw
back returns; one committed transaction per schedule (re-runnable, nothing done twice)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from allegiance.cashback.models import RebateSchedule
from allegiance.cashback.service import run_schedule
from allegiance.kit.db import Database


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 100,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    with db.read() as session:
        schedules = session.execute(
            select(RebateSchedule.tenant_id, RebateSchedule.id)
            .where(RebateSchedule.active.is_(True))
            .order_by(RebateSchedule.tenant_id, RebateSchedule.id)).all()
    total = {"schedules": 0, "accrued": 0, "settled": 0, "clawed_back": 0}
    for tenant_id, schedule_id in schedules:
        with db.transaction() as session:
            report = run_schedule(session, tenant_id, schedule_id)
        total["schedules"] += 1
        for name, value in report.items():
            total[name] += value
        progress("schedules", 1)
    return total
