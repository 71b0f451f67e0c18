"""Batch job ``webhooks``: fan out the outbox and make every due delivery attempt."""

from __future__ import annotations

from collections.abc import Callable

from allegiance.kit.db import Database
from allegiance.webhooks import dispatcher


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 100,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    """Dispatch until nothing is due (retries scheduled for later wait for a later run)."""
    return dispatcher.dispatch_until_idle(db, batch=batch, progress=progress).as_dict()
