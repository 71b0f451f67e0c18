"""RFM scores of a program's members, set-based: recency (the local day of the last purchase),
frequency (purchases) and monetary value (spend net of returns) over the program's window,
each ranked into quintiles among the window's buyers in Polars. The per-buyer inputs are the
running ones engagement's earning path keeps (one row per buyer, the window slid by taking off
only the days that left it), equal to a grouped read of the daily tallies (``_BUYERS_SQL``).

A refresh keeps the breakpoints (per dimension, the lowest raw value of each score) and the
distribution on the program's model, and hands the scores to the segments it refreshes; no
score is stored per account (migration ``0027_segments``: they were a second copy of the
running inputs, 0.8 M rows written at each first refresh of a million members). An account's
scores are its window's purchases scored against those breakpoints (:func:`score_of`): the
ranking's own scores for every buyer of the refresh, and between refreshes an account that
buys or returns follows its own changes at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import column, func, select, table
from sqlalchemy.orm import Session

from allegiance import engagement, tenants
from allegiance.campaigns import domain
from allegiance.campaigns.errors import InvalidSegment
from allegiance.campaigns.models import RfmModel
from allegiance.kit import clock

# The daily tallies of engagement (read by name: engagement is an earning-path feature).
TALLY = table("engagement_tally", column("tenant_id"), column("program_id"), column("day"),
              column("account_id"), column("purchases"), column("sales"))
DEFAULT_WINDOW_DAYS = 365
MAX_WINDOW_DAYS = 3660

# One grouped read of the window's tallies: per buyer, the last day with a purchase, the
# purchases and the spend (returns already taken off by the earning path).
_BUYERS_SQL = """
SELECT account_id, MAX(day) AS last_day, SUM(purchases) AS purchases, SUM(sales) AS spend
FROM engagement_tally
WHERE tenant_id = :tenant AND program_id = :program AND day >= :first AND day <= :last
      AND purchases > 0
GROUP BY account_id
"""
_RAW = {"recency": "last_day", "frequency": "purchases", "monetary": "spend"}


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
                       breakpoints={}, distribution={}, scored=0, computed_at=None,
                       created_at=now,
                       updated_at=now)
        session.add(row)
    elif row.window_days != window_days:
        row.window_days = window_days
        row.updated_at = now
    session.flush()
    return row


def ensure_model(session: Session, tenant_id: str, program_id: str) -> RfmModel:
    return get_model(session, tenant_id, program_id) or set_model(session, tenant_id, program_id)


def score_frame(buyers: pl.DataFrame) -> pl.DataFrame:
    """Add the scores to (account_id, last_day, purchases, spend): per dimension the rank
    among the buyers (ties share the lowest) turned into ``ceil(5 rank / buyers)``."""
    n = buyers.height
    return buyers.with_columns(
        ((domain.QUINTILES * pl.col(raw).rank("min").cast(pl.Int64) + n - 1) // n).alias(dim)
        for dim, raw in _RAW.items())


def breakpoints(scored: pl.DataFrame) -> dict[str, list[int | None]]:
    """Per dimension, the lowest raw value scoring at least 2, 3, 4 and 5."""
    out: dict[str, list[int | None]] = {}
    for dim, raw in _RAW.items():
        lows: list[int | None] = []
        for level in range(2, domain.QUINTILES + 1):
            value = scored.filter(pl.col(dim) >= level)[raw].min()
            lows.append(None if value is None else int(cast(int, value)))
        out[dim] = lows
    return out


@dataclass(frozen=True)
class Score:
    """One account's scores (1–5) and the raw values behind them: the local day of the last
    purchase, purchases and spend net of returns over the window."""

    account_id: str
    recency: int
    frequency: int
    monetary: int
    last_day: int
    purchases: int
    spend: int


def distribution_of(scored: pl.DataFrame) -> dict[str, dict[int, int]]:
    """Per dimension, how many of ``scored``'s accounts hold each score."""
    return {dim: {int(s): int(n) for s, n in scored.group_by(dim).len().iter_rows()}
            for dim in domain.RFM_DIMENSIONS}


def slide_window(session: Session, tenant_id: str, program_id: str) -> None:
    """Move the running RFM inputs to today's window (nothing without a model). A job commits
    this apart before :func:`refresh`, so events wait for the slide only (see
    ``engagement.slide_window``)."""
    model = get_model(session, tenant_id, program_id)
    if model is None:
        return
    program = tenants.get_program(session, tenant_id, program_id)
    last = today(program, clock.now())
    engagement.slide_window(session, tenant_id, program_id, last - model.window_days + 1)


def slide_if_moved(session: Session, tenant_id: str, program_id: str, model: RfmModel,
                   last: int) -> None:
    """Move the running inputs to the window ending on day ``last`` if it moved (its row is
    locked only then: events read it shared)."""
    first = last - model.window_days + 1
    if engagement.window_of(session, tenant_id, program_id) != first:
        engagement.slide_window(session, tenant_id, program_id, first)


def refresh(session: Session, tenant_id: str, program_id: str) -> RfmModel:
    """Score every buyer of the window at once — one row per buyer read from the running
    inputs the earning path keeps (engagement), ranks in Polars — and keep the breakpoints
    and the distribution (no score is stored: see :func:`score_of`)."""
    return refresh_scores(session, tenant_id, program_id)[0]


def current_scores(session: Session, tenant_id: str, program_id: str,
                   model: RfmModel) -> pl.DataFrame:
    """The buyers of today's window ranked now (account_id, last_day, purchases, spend,
    recency, frequency, monetary): what a refresh computes, nothing written but the running
    inputs' slide."""
    program = tenants.get_program(session, tenant_id, program_id)
    last = today(program, clock.now())
    first = last - model.window_days + 1
    return score_frame(engagement.rfm_inputs(session, tenant_id, program_id, first, last))


def refresh_scores(session: Session, tenant_id: str,
                   program_id: str) -> tuple[RfmModel, pl.DataFrame]:
    """:func:`refresh`, also returning the scores (account_id, recency, frequency,
    monetary, …) it computed."""
    model, buyers, last = read_inputs(session, tenant_id, program_id)
    scored = rank_inputs(model, buyers, last, clock.now())
    session.flush()
    return model, scored


def read_inputs(session: Session, tenant_id: str,
                program_id: str) -> tuple[RfmModel, pl.DataFrame, int]:
    """The database half of :func:`refresh_scores`: the model (created if missing), the
    running inputs of today's window and today's day ordinal."""
    program = tenants.get_program(session, tenant_id, program_id)
    model = ensure_model(session, tenant_id, program_id)
    last = today(program, clock.now())
    first = last - model.window_days + 1
    return model, engagement.rfm_inputs(session, tenant_id, program_id, first, last), last


def rank_inputs(model: RfmModel, buyers: pl.DataFrame, last: int,
                now: datetime) -> pl.DataFrame:
    """The Polars half of :func:`refresh_scores`: the buyers ranked, the breakpoints and the
    distribution kept on ``model`` (written at the session's next flush)."""
    ranked = rank(buyers, last, model.window_days)
    keep(model, ranked, now)
    return ranked.scored


@dataclass(frozen=True)
class Ranked:
    """The buyers of a window ranked (:func:`score_frame`), their breakpoints and how many
    hold each score."""

    scored: pl.DataFrame
    points: dict[str, object]
    counts: dict[str, dict[str, int]]


def rank(buyers: pl.DataFrame, last: int, window_days: int) -> Ranked:
    """Rank the buyers (Polars only, no session: it may run on a thread of its own while the
    session reads)."""
    scored = score_frame(buyers)
    points: dict[str, object] = {**breakpoints(scored), "first_day": last - window_days + 1,
                                 "last_day": last}
    counts = {dim: {str(k): v for k, v in sorted(one.items())}
              for dim, one in distribution_of(scored).items()}
    return Ranked(scored, points, counts)


def keep(model: RfmModel, ranked: Ranked, now: datetime) -> None:
    """Keep a ranking's breakpoints and distribution on the model (changed values only)."""
    if model.breakpoints != ranked.points:
        model.breakpoints = ranked.points
    if model.distribution != ranked.counts:
        model.distribution = ranked.counts
    if model.scored != ranked.scored.height:
        model.scored = ranked.scored.height
    model.computed_at = model.updated_at = now


def score_of(session: Session, tenant_id: str, program_id: str,
             account_id: str) -> Score | None:
    """One account's scores now: its purchases over today's window (read from its daily
    tallies) scored against the breakpoints of the last refresh — the same scores the
    refresh's ranking gave every buyer (a score is monotone in the raw value, so the lowest
    raw value of each score reproduces it), and after the account's own purchases or returns
    its new standing at once. None before the first refresh, without an RFM model, or when
    the account bought nothing in the window."""
    model = get_model(session, tenant_id, program_id)
    if model is None or model.computed_at is None:
        return None
    program = tenants.get_program(session, tenant_id, program_id)
    last = today(program, clock.now())
    first = last - model.window_days + 1
    last_day, purchases, spend = session.execute(select(
        func.max(TALLY.c.day), func.sum(TALLY.c.purchases), func.sum(TALLY.c.sales)).where(
        TALLY.c.tenant_id == tenant_id, TALLY.c.program_id == program_id,
        TALLY.c.account_id == account_id, TALLY.c.day >= first, TALLY.c.day <= last,
        TALLY.c.purchases > 0)).one()
    if last_day is None:
        return None
    points = model.breakpoints
    return Score(account_id=account_id,
                 recency=domain.score(int(last_day), points.get("recency", [])),
                 frequency=domain.score(int(purchases), points.get("frequency", [])),
                 monetary=domain.score(int(spend), points.get("monetary", [])),
                 last_day=int(last_day), purchases=int(purchases), spend=int(spend))


def distribution(session: Session, tenant_id: str, program_id: str) -> dict[str, dict[int, int]]:
    """Per dimension, how many buyers held each score at the last refresh."""
    model = get_model(session, tenant_id, program_id)
    if model is None or not model.distribution:
        return {}
    return {dim: {int(k): int(v) for k, v in one.items()}
            for dim, one in model.distribution.items()}
