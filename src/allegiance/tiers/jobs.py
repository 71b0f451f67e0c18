"""Batch job: recalculate the tiers of every program of every tenant, one program per
transaction (set-based inside), settling the month before ``at`` once per ladder."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.tiers import service
from allegiance.tiers.models import TierLadder


def _no_progress(_step: str, _count: int) -> None:
    return None


def recalculate_all(db: Database, at: datetime | None = None, *, period_end: bool = True,
                    progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    """Recalculate every program that has ladders. With ``period_end`` (the default, for a
    scheduled run) the month before ``at`` is settled; running it again settles nothing twice."""
    at = at or clock.now()
    with db.read() as session:
        programs = sorted({(row.tenant_id, row.program_id) for row in session.execute(
            select(TierLadder.tenant_id, TierLadder.program_id)
        )})
    totals = {"programs": 0, "evaluated": 0, "upgraded": 0, "downgraded": 0}
    for tenant_id, program_id in programs:
        with db.transaction() as session:
            result = service.recalculate(session, tenant_id, program_id, at=at,
                                         period_end=period_end)
        totals["programs"] += 1
        totals["evaluated"] += result.evaluated
        totals["upgraded"] += result.upgraded
        totals["downgraded"] += result.downgraded
        progress("programs", 1)
    return totals
