"""Batch job: write the membership status changes that came due (trial ended, grace began,
lapsed, cancellation took effect), one committed batch at a time."""

from __future__ import annotations

from collections.abc import Callable

from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.memberships import service


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 1000,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    now = clock.now()
    changed = seen_batches = 0
    after: tuple[str, str] | None = None
    while True:
        with db.transaction() as session:
            done, after = service.refresh(session, limit=batch, after=after, now=now)
        changed += done
        seen_batches += 1
        progress("batches", 1)
        if after is None:
            return {"subscriptions_changed": changed, "batches": seen_batches}
