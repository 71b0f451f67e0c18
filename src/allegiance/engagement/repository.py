"""Storage helpers of engagement: counters that concurrent writers add to without losing an
update, and the tallies the leaderboards rank (with the running totals of ``running``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, text
from sqlalchemy.orm import Session

from allegiance.engagement import domain, running
from allegiance.engagement.models import ChallengeTotal, Tally
from allegiance.kit.rows import CounterAdd

TALLY_METRICS = ("points", "sales", "purchases", "activities", "challenges", "claims")


_ADD_TOTAL = CounterAdd(cast(Table, ChallengeTotal.__table__), ("tenant_id", "challenge_id", "account_id",
                                                   "period_index"), ("value",))
_ADD_TALLY = CounterAdd(cast(Table, Tally.__table__), ("tenant_id", "program_id", "day", "account_id"),
                        TALLY_METRICS, returning=("purchases", "sales"))


def bump(session: Session, keys: dict[str, Any], delta: int) -> None:
    """Add ``delta`` to a challenge's period total at ``keys`` (one atomic upsert: a missing
    row is inserted, a concurrent insert of the same row adds to it)."""
    _ADD_TOTAL(session, keys, {"value": delta})


def add_tally(session: Session, tenant_id: str, program_id: str, account_id: str,
              at: datetime, time_zone: str, **deltas: int) -> None:
    """Add to the leaderboard metrics (``points=…, sales=…``) of the account's local day."""
    deltas = {name: value for name, value in deltas.items() if value}
    unknown = set(deltas) - set(TALLY_METRICS)
    if unknown:
        raise ValueError(f"unknown tally metric {sorted(unknown)[0]}")
    if not deltas:
        return
    day = domain.period_index("day", at, time_zone)
    purchases, sales = _ADD_TALLY(session, {"tenant_id": tenant_id, "program_id": program_id,
                                            "day": day, "account_id": account_id}, deltas)
    # the running totals read at scale (board totals, RFM inputs), in the same transaction
    running.add_board(session, tenant_id, program_id, account_id, day, deltas)
    if deltas.get("purchases") or deltas.get("sales"):
        running.add_rfm(session, tenant_id, program_id, account_id, day,
                        (int(purchases), int(sales)),
                        (deltas.get("purchases", 0), deltas.get("sales", 0)))


def lock_ledger_account(session: Session, tenant_id: str, account_id: str) -> None:
    """Hold a ledger account's row until commit (PostgreSQL; SQLite serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT 1 FROM ledger_account WHERE tenant_id = :t AND id = :id FOR UPDATE"),
            {"t": tenant_id, "id": account_id},
        )
