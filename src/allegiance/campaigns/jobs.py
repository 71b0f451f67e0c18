"""Batch job: refresh every program's RFM scores and segments, one program per committed transaction."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from allegiance.campaigns import rfm, segments
from allegiance.campaigns.models import RfmModel, Segment
from allegiance.kit.db import Database


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 1000,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    with db.read() as session:
        programs = sorted({(t, p) for t, p in session.execute(
            select(Segment.tenant_id, Segment.program_id))} | {(t, p) for t, p in session.execute(
            select(RfmModel.tenant_id, RfmModel.program_id))})
    totals = {"programs": 0, "segments": 0, "entered": 0, "left": 0}
    for tenant_id, program_id in programs:
        # The window slide first, committed on its own: the program's events wait for it
        # (they read the window row shared), not for the whole refresh.
        with db.transaction() as session:
            rfm.slide_window(session, tenant_id, program_id)
        with db.transaction() as session:
            done = segments.refresh_program(session, tenant_id, program_id)
        totals["programs"] += 1
        for name in ("segments", "entered", "left"):
            totals[name] += done[name]
        progress("programs", 1)
    return totals
