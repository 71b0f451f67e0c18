"""RFM scores of a program's members, set-based: recency (the local day of the last purchase),
frequency (purchases) and monetary value (spend net of returns) over the program's window,
read from the daily engagement tallies the earning path keeps by one grouped query, each
ranked into quintiles among the window's buyers in Polars, and the scores that changed written.
The per-buyer inputs are the running ones engagement's earning path keeps (one row per buyer,
the window slid by taking off only the days that left it), equal to the grouped read of the
tallies below (``_BUYERS_SQL``, still used for one account between refreshes).

Between refreshes an account that buys or returns is scored alone against the breakpoints of
the last refresh (the lowest raw value of each score), so ``member.rfm.*`` follow its own
changes at once."""

from __future__ import annotations

from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Table, column, delete, func, select, table, text
from sqlalchemy.orm import Session

from allegiance import engagement, tenants
from allegiance.campaigns import domain
from allegiance.campaigns.errors import InvalidSegment
from allegiance.campaigns.models import RfmModel, RfmScore
from allegiance.kit import clock
from allegiance.kit.frames import insert_rows, read_frame

# The daily tallies of engagement (read by name: engagement is an earning-path feature).
TALLY = table("engagement_tally", column("tenant_id"), column("program_id"), column("day"),
              column("account_id"), column("purchases"), column("sales"))
SCORE_TABLE: Table = RfmScore.__table__  # type: ignore[assignment]
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
WRITE_ROWS = 50_000


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


_SCORE_SCHEMA = {"account_id": pl.Utf8, "recency": pl.Int64, "frequency": pl.Int64,
                 "monetary": pl.Int64, "last_day": pl.Int64, "purchases": pl.Int64,
                 "spend": pl.Int64}
_COLUMNS = list(_SCORE_SCHEMA)


def _insert_scores(session: Session, tenant_id: str, program_id: str,
                   rows: pl.DataFrame) -> None:
    """Bulk inserts (kit.frames.insert_rows)."""
    insert_rows(session, "rfm_score", ("tenant_id", "program_id", *_COLUMNS),
                [(tenant_id, program_id, *row) for row in rows.select(_COLUMNS).iter_rows()],
                ("text", "text", "text", *("bigint" for _ in _COLUMNS[1:])))


def _delete_scores(session: Session, tenant_id: str, program_id: str,
                   accounts: list[str]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        for start in range(0, len(accounts), WRITE_ROWS):
            session.execute(text(
                "DELETE FROM rfm_score WHERE tenant_id = :tenant AND program_id = :program "
                "AND account_id = ANY(CAST(:accounts AS text[]))"),
                {"tenant": tenant_id, "program": program_id,
                 "accounts": accounts[start:start + WRITE_ROWS]})
        return
    if accounts:
        raw = session.connection().connection.driver_connection
        cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany("DELETE FROM rfm_score WHERE tenant_id = ? AND program_id = ? "
                               "AND account_id = ?",
                               [(tenant_id, program_id, a) for a in accounts])
        finally:
            cursor.close()


def _write(session: Session, tenant_id: str, program_id: str, scored: pl.DataFrame) -> int:
    """Make the stored scores equal ``scored``, writing only the rows that differ; returns
    how many rows were written or deleted."""
    stored = read_frame(session, f"SELECT {', '.join(_COLUMNS)} FROM rfm_score "
                                 "WHERE tenant_id = :t AND program_id = :p",
                        {"t": tenant_id, "p": program_id}, _SCORE_SCHEMA)
    scored = scored.select(_COLUMNS)
    gone: list[str] = []
    if not stored.height:
        changed = scored
    else:
        changed = scored.join(stored, on=_COLUMNS, how="anti")
        gone = stored.join(scored, on="account_id", how="anti")["account_id"].to_list()
        _delete_scores(session, tenant_id, program_id,
                       gone + changed.join(stored, on="account_id", how="semi")[
                           "account_id"].to_list())
    _insert_scores(session, tenant_id, program_id, changed)
    return changed.height + len(gone)


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


def refresh(session: Session, tenant_id: str, program_id: str) -> RfmModel:
    """Score every buyer of the window at once — one row per buyer read from the running
    inputs the earning path keeps (engagement), ranks in Polars — and write the scores that
    changed; keep the breakpoints."""
    return refresh_scores(session, tenant_id, program_id)[0]


def refresh_scores(session: Session, tenant_id: str,
                   program_id: str) -> tuple[RfmModel, pl.DataFrame]:
    """:func:`refresh`, also returning the scores (account_id, recency, frequency,
    monetary, …) as now stored."""
    program = tenants.get_program(session, tenant_id, program_id)
    model = ensure_model(session, tenant_id, program_id)
    now = clock.now()
    last = today(program, now)
    first = last - model.window_days + 1
    buyers = engagement.rfm_inputs(session, tenant_id, program_id, first, last)
    scored = score_frame(buyers)
    _write(session, tenant_id, program_id, scored)
    points = {**breakpoints(scored), "first_day": first, "last_day": last}
    if model.breakpoints != points:
        model.breakpoints = points
    if model.scored != scored.height:
        model.scored = scored.height
    model.computed_at = model.updated_at = now
    session.flush()
    return model, scored


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
