"""Storage helpers of engagement: counters that concurrent writers add to without losing an
update, and the tallies the leaderboards rank (with the running totals of ``running``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance.engagement import domain, running
from allegiance.engagement.models import ChallengeTotal, Tally
from allegiance.kit.db import is_unique_violation

TALLY_METRICS = ("points", "sales", "purchases", "activities", "challenges")


def bump(session: Session, keys: dict[str, Any], delta: int) -> None:
    """Add ``delta`` to a challenge's period total at ``keys`` (an atomic update; a missing
    row is inserted, and a concurrent insert of the same row turns into the update)."""
    _add(session, ChallengeTotal, keys, {"value": delta})


def _add(session: Session, model: type[ChallengeTotal] | type[Tally], keys: dict[str, Any],
         deltas: dict[str, int]) -> tuple[int, int]:
    """Returns the row's purchases and sales after the change (tallies; (0, 0) otherwise)."""
    where = and_(*(getattr(model, name) == value for name, value in keys.items()))
    values = {name: getattr(model, name) + delta for name, delta in deltas.items()}
    is_tally = model is Tally
    for _ in range(3):
        stmt = update(model).where(where).values(**values)
        if is_tally:
            row = session.execute(stmt.returning(Tally.purchases, Tally.sales)
                                  .execution_options(synchronize_session=False)).first()
            if row is not None:
                return int(row[0]), int(row[1])
        else:
            done = session.execute(stmt.execution_options(synchronize_session=False))
            if getattr(done, "rowcount", 0):
                return 0, 0
        try:
            with session.begin_nested():
                session.add(model(**keys, **deltas))
                session.flush()
            return deltas.get("purchases", 0), deltas.get("sales", 0)
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
    raise RuntimeError("could not add to a counter")  # pragma: no cover


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
    after = _add(session, Tally, {"tenant_id": tenant_id, "program_id": program_id, "day": day,
                                  "account_id": account_id}, deltas)
    # the running totals read at scale (board totals, RFM inputs), in the same transaction
    running.add_board(session, tenant_id, program_id, account_id, day, deltas)
    if deltas.get("purchases") or deltas.get("sales"):
        running.add_rfm(session, tenant_id, program_id, account_id, day, after,
                        (deltas.get("purchases", 0), deltas.get("sales", 0)))


def lock_ledger_account(session: Session, tenant_id: str, account_id: str) -> None:
    """Hold a ledger account's row until commit (PostgreSQL; SQLite serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT 1 FROM ledger_account WHERE tenant_id = :t AND id = :id FOR UPDATE"),
            {"t": tenant_id, "id": account_id},
        )
