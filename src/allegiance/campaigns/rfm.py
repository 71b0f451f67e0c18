"""RFM scores of a program's members, set-based: recency (the local day of the last purchase),
frequency (purchases) and monetary value (spend net of returns) over the program's window,
read from the daily engagement tallies the earning path keeps, each ranked into quintiles
among the window's buyers by one SQL statement (window functions, SQLite and PostgreSQL).

Between refreshes an account that buys or returns is scored alone against the breakpoints of
the last refresh (the lowest raw value of each score), so ``member.rfm.*`` follow its own
changes at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import column, delete, func, select, table, text
from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.campaigns import domain
from allegiance.campaigns.errors import InvalidSegment
from allegiance.campaigns.models import RfmModel, RfmScore
from allegiance.kit import clock

# The daily tallies of engagement (read by name: engagement is an earning-path feature).
TALLY = table("engagement_tally", column("tenant_id"), column("program_id"), column("day"),
              column("account_id"), column("purchases"), column("sales"))
DEFAULT_WINDOW_DAYS = 365
MAX_WINDOW_DAYS = 3660

_SCORE_SQL = """
INSERT INTO rfm_score (tenant_id, program_id, account_id, recency, frequency, monetary,
                       last_day, purchases, spend)
SELECT :tenant, :program, account_id,
       (5 * RANK() OVER (ORDER BY last_day) + buyers - 1) / buyers,
       (5 * RANK() OVER (ORDER BY purchases) + buyers - 1) / buyers,
       (5 * RANK() OVER (ORDER BY spend) + buyers - 1) / buyers,
       last_day, purchases, spend
FROM (SELECT account_id, MAX(day) AS last_day, SUM(purchases) AS purchases,
             SUM(sales) AS spend, COUNT(*) OVER () AS buyers
      FROM engagement_tally
      WHERE tenant_id = :tenant AND program_id = :program AND day >= :first AND day <= :last
            AND purchases > 0
      GROUP BY account_id) AS buyer
"""


def today(program: tenants.Program, at: datetime) -> int:
    """The local day ordinal of ``at`` in the program's time zone."""
    return at.astimezone(ZoneInfo(program.time_zone)).date().toordinal()


def get_model(session: Session, tenant_id: str, program_id: str) -> RfmModel | None:
    return session.get(RfmModel, (tenant_id, program_id))


def set_model(session: Session, tenant_id: str, program_id: str,
              window_days: int = DEFAULT_WINDOW_DAYS) -> RfmModel:
    """Create or change a program's RFM window (scores follow at the next refresh)."""
    tenants.get_program(session, tenant_id, program_id)
    if isinstance(window_days, bool) or not isinstance(window_days, int) \
            or not 0 < window_days <= MAX_WINDOW_DAYS:
        raise InvalidSegment(f"window_days must be 1 to {MAX_WINDOW_DAYS}", field="window_days")
    now = clock.now()
    row = get_model(session, tenant_id, program_id)
    if row is None:
        row = RfmModel(tenant_id=tenant_id, program_id=program_id, window_days=window_days,
                       breakpoints={}, scored=0, computed_at=None, created_at=now,
                       updated_at=now)
        session.add(row)
    elif row.window_days != window_days:
        row.window_days = window_days
        row.updated_at = now
    session.flush()
    return row


def ensure_model(session: Session, tenant_id: str, program_id: str) -> RfmModel:
    return get_model(session, tenant_id, program_id) or set_model(session, tenant_id, program_id)


def refresh(session: Session, tenant_id: str, program_id: str) -> RfmModel:
    """Score every buyer of the window at once and keep the breakpoints."""
    program = tenants.get_program(session, tenant_id, program_id)
    model = ensure_model(session, tenant_id, program_id)
    now = clock.now()
    last = today(program, now)
    session.execute(delete(RfmScore).where(RfmScore.tenant_id == tenant_id,
                                           RfmScore.program_id == program_id))
    session.execute(text(_SCORE_SQL), {"tenant": tenant_id, "program": program_id,
                                       "first": last - model.window_days + 1, "last": last})
    points: dict[str, Any] = {}
    for dimension, raw in (("recency", RfmScore.last_day), ("frequency", RfmScore.purchases),
                           ("monetary", RfmScore.spend)):
        score = getattr(RfmScore, dimension)
        lows: dict[int, int] = dict(session.execute(select(score, func.min(raw)).where(
            RfmScore.tenant_id == tenant_id, RfmScore.program_id == program_id
        ).group_by(score)).all())
        # the lowest raw value scoring at least 2, 3, 4, 5 (scores grow with the raw value)
        points[dimension] = [min((int(v) for s, v in lows.items() if s >= level), default=None)
                             for level in range(2, domain.QUINTILES + 1)]
    model.breakpoints = {**points, "first_day": last - model.window_days + 1, "last_day": last}
    model.scored = int(session.scalar(select(func.count()).select_from(RfmScore).where(
        RfmScore.tenant_id == tenant_id, RfmScore.program_id == program_id)) or 0)
    model.computed_at = model.updated_at = now
    session.flush()
    return model


def refresh_account(session: Session, tenant_id: str, program: tenants.Program,
                    account_id: str) -> RfmScore | None:
    """Score one account against the last refresh's breakpoints (after its own purchase or
    return); None when the program has no RFM model or the account bought nothing in the
    window. Does nothing before the first refresh."""
    model = get_model(session, tenant_id, program.id)
    if model is None or model.computed_at is None:
        return None
    last = today(program, clock.now())
    first = last - model.window_days + 1
    last_day, purchases, spend = session.execute(select(
        func.max(TALLY.c.day), func.sum(TALLY.c.purchases), func.sum(TALLY.c.sales)).where(
        TALLY.c.tenant_id == tenant_id, TALLY.c.program_id == program.id,
        TALLY.c.account_id == account_id, TALLY.c.day >= first, TALLY.c.day <= last,
        TALLY.c.purchases > 0)).one()
    session.execute(delete(RfmScore).where(
        RfmScore.tenant_id == tenant_id, RfmScore.program_id == program.id,
        RfmScore.account_id == account_id))
    if last_day is None:
        session.flush()
        return None
    points = model.breakpoints
    row = RfmScore(tenant_id=tenant_id, program_id=program.id, account_id=account_id,
                   recency=domain.score(int(last_day), points.get("recency", [])),
                   frequency=domain.score(int(purchases), points.get("frequency", [])),
                   monetary=domain.score(int(spend), points.get("monetary", [])),
                   last_day=int(last_day), purchases=int(purchases), spend=int(spend))
    session.add(row)
    session.flush()
    return row


def score_of(session: Session, tenant_id: str, program_id: str,
             account_id: str) -> RfmScore | None:
    return session.get(RfmScore, (tenant_id, program_id, account_id))


def distribution(session: Session, tenant_id: str, program_id: str) -> dict[str, dict[int, int]]:
    """Per dimension, how many scored accounts hold each score."""
    out: dict[str, dict[int, int]] = {}
    for dimension in domain.RFM_DIMENSIONS:
        score = getattr(RfmScore, dimension)
        out[dimension] = {int(s): int(n) for s, n in session.execute(select(
            score, func.count()).where(RfmScore.tenant_id == tenant_id,
                                       RfmScore.program_id == program_id).group_by(score))}
    return out
