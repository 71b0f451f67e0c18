"""Batch jobs. ``liability-fold``: move PostgreSQL's liability deltas into
``liability_holding`` (:func:`allegiance.analytics.summaries.run_fold`; run it every minute
or so — the report is exact at any moment, folding only keeps what it reads small).
``reports``: recompute the admin pages' default reports of every active program
and store them (``snapshots``), one program at a time; run it from cron to keep the pages'
figures recent (a page also refreshes a copy older than ALLEGIANCE_REPORT_MAX_AGE_SECONDS)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from allegiance import tenants
from allegiance.analytics.snapshots import refresh_program
from allegiance.analytics.summaries import run_fold
from allegiance.kit.db import Database

__all__ = ["run", "run_fold"]


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 1000,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    with db.read() as session:
        programs = list(session.execute(
            select(tenants.Program.tenant_id, tenants.Program.id)
            .where(tenants.Program.status == "active")
            .order_by(tenants.Program.tenant_id, tenants.Program.id)))
    totals = {"programs": 0, "reports": 0, "not_computable": 0}
    for tenant_id, program_id in programs:
        stored, invalid = refresh_program(db, tenant_id, program_id)
        totals["programs"] += 1
        totals["reports"] += stored
        totals["not_computable"] += invalid
        progress("programs", 1)
    return totals
