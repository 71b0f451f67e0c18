"""Running totals the earning path keeps beside the daily tallies, in the event's transaction,
so that reads at scale touch one row per account instead of every tally row:

* **board totals** — per account and period kind (week, month, quarter, year, all), the
  totals of the account's latest period of that kind. The board of a period is a top-N over
  these rows as long as no account has moved on to a later period (always true of the current
  period); older periods are ranked from the daily tallies.
* **RFM inputs** — per buyer, over the daily tallies from the window's first day on whose
  purchases are positive: the last such day, the purchases and the spend. A refresh slides the
  window by taking off the days that left it (a range read of those days only), so a refresh
  reads one row per buyer. Returns change the same tallies, so they update the inputs too.

The exact definition (the RFM statement's ``day BETWEEN first AND last AND purchases > 0``
over the tallies) is kept: a change of a day's tally from (p0, s0) to (p1, s1) changes the
inputs by what that day counted before and after (nothing while its purchases are 0).
"""

from __future__ import annotations

import polars as pl
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from allegiance.engagement import domain
from allegiance.engagement.models import BoardTotal, RfmInput, RfmWindow
from allegiance.kit.frames import read_frame
from allegiance.kit.rows import DriverStatement, SqlDialect

BOARD_KINDS = ("week", "month", "quarter", "year", "all")
BOARD_METRICS = ("points", "sales", "purchases", "activities", "challenges", "claims")
_INPUT_SCHEMA = {"account_id": pl.Utf8, "last_day": pl.Int64, "purchases": pl.Int64,
                 "spend": pl.Int64}


def _board_sql(d: SqlDialect) -> str:
    table, mark = d.quote(BoardTotal.__tablename__), d.mark
    columns = ("tenant_id", "program_id", "kind", "account_id", "period_index", *BOARD_METRICS)
    row = "(" + ", ".join(mark for _ in columns) + ")"
    same = f"{table}.period_index = excluded.period_index"
    later = f"excluded.period_index > {table}.period_index"
    sets = [f"{m} = CASE WHEN {same} THEN {table}.{m} + excluded.{m} "
            f"WHEN {later} THEN excluded.{m} ELSE {table}.{m} END" for m in BOARD_METRICS]
    sets.append(f"period_index = CASE WHEN {later} THEN excluded.period_index "
                f"ELSE {table}.period_index END")
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            + ", ".join(row for _ in BOARD_KINDS)
            + " ON CONFLICT (tenant_id, program_id, kind, account_id) DO UPDATE SET "
            + ", ".join(sets))


_ADD_BOARD = DriverStatement(_board_sql)


def add_board(session: Session, tenant_id: str, program_id: str, account_id: str, day: int,
              deltas: dict[str, int]) -> None:
    """Add a tally change of local day ``day`` to the account's board totals (one statement
    for the five kinds; a row of an older period starts the new period afresh; a change to a
    period older than the row's is not the board's concern)."""
    metrics = [int(deltas.get(m, 0)) for m in BOARD_METRICS]
    _ADD_BOARD(session, [value for kind in BOARD_KINDS
                         for value in (tenant_id, program_id, kind, account_id,
                                       domain.period_of_day(kind, day), *metrics)])


_FIRST_DAY = DriverStatement(
    lambda d: "SELECT first_day FROM engagement_rfm_window WHERE tenant_id = {m} AND "
              "program_id = {m}{share}".format(m=d.mark, share=" FOR SHARE"
                                               if d.name == "postgresql" else ""))


def _first_day(session: Session, tenant_id: str, program_id: str) -> int | None:
    """The window's first day, the row held shared until commit on PostgreSQL (a refresh
    sliding the window waits for the events in flight, and they for it)."""
    found = _FIRST_DAY(session, (tenant_id, program_id), fetch=True)
    return None if found is None else int(found[0])


def _rfm_sql(d: SqlDialect) -> str:
    t = "engagement_rfm_input"
    return (f"INSERT INTO {t} (tenant_id, program_id, account_id, last_day, purchases, spend) "
            f"VALUES ({', '.join(d.mark for _ in range(6))}) "
            "ON CONFLICT (tenant_id, program_id, account_id) DO UPDATE SET "
            f"purchases = {t}.purchases + excluded.purchases, "
            f"spend = {t}.spend + excluded.spend, "
            f"last_day = CASE WHEN excluded.last_day > {t}.last_day THEN excluded.last_day "
            f"ELSE {t}.last_day END")


_ADD_RFM = DriverStatement(_rfm_sql)


def add_rfm(session: Session, tenant_id: str, program_id: str, account_id: str, day: int,
            after: tuple[int, int], delta: tuple[int, int]) -> None:
    """A day's tally went from ``after - delta`` to ``after`` (purchases, sales): update the
    account's running RFM inputs (nothing when the program keeps none or the day is before
    the window)."""
    first = _first_day(session, tenant_id, program_id)
    if first is None or day < first:
        return
    p1, s1 = after
    p0, s0 = p1 - delta[0], s1 - delta[1]
    c0 = (p0, s0) if p0 > 0 else (0, 0)
    c1 = (p1, s1) if p1 > 0 else (0, 0)
    change = (c1[0] - c0[0], c1[1] - c0[1])
    if change == (0, 0):
        return
    key = (RfmInput.tenant_id == tenant_id, RfmInput.program_id == program_id,
           RfmInput.account_id == account_id)
    if p1 > 0:
        _ADD_RFM(session, (tenant_id, program_id, account_id, day, change[0], change[1]))
        return
    # the day no longer counts (its purchases were all returned)
    row = session.execute(select(RfmInput.last_day, RfmInput.purchases).where(*key)
                          .with_for_update()).first()
    if row is None:  # pragma: no cover - a counted day always has its row
        return
    if int(row.purchases) + change[0] <= 0:
        session.execute(delete(RfmInput).where(*key))
        return
    last_day = int(row.last_day)
    if last_day == day:  # rare: the last purchase day was returned in full
        last_day = int(session.scalar(text(
            "SELECT MAX(day) FROM engagement_tally WHERE tenant_id = :t AND program_id = :p "
            "AND day >= :first AND day < :day AND account_id = :a AND purchases > 0"),
            {"t": tenant_id, "p": program_id, "first": first, "day": day, "a": account_id}))
    session.execute(RfmInput.__table__.update().where(*key).values(  # type: ignore[attr-defined]
        purchases=RfmInput.purchases + change[0], spend=RfmInput.spend + change[1],
        last_day=last_day))


_GROUPED = """SELECT account_id, MAX(day) AS last_day, SUM(purchases) AS purchases,
       SUM(sales) AS spend
FROM engagement_tally
WHERE tenant_id = :t AND program_id = :p AND day >= :first AND day < :end AND purchases > 0
GROUP BY account_id"""


def _rebuild(session: Session, tenant_id: str, program_id: str, first_day: int) -> None:
    session.execute(delete(RfmInput).where(RfmInput.tenant_id == tenant_id,
                                           RfmInput.program_id == program_id))
    session.execute(text(
        "INSERT INTO engagement_rfm_input (tenant_id, program_id, account_id, last_day, "
        "purchases, spend) SELECT :t, :p, g.account_id, g.last_day, g.purchases, g.spend "
        f"FROM ({_GROUPED}) g"), {"t": tenant_id, "p": program_id, "first": first_day,
                                  "end": 2**62})


def _slide(session: Session, tenant_id: str, program_id: str, old: int, new: int) -> None:
    """Take the days [old, new) off the inputs; buyers whose last purchase left go."""
    params = {"t": tenant_id, "p": program_id, "first": old, "end": new}
    session.execute(text(
        "UPDATE engagement_rfm_input SET purchases = engagement_rfm_input.purchases - "
        "g.purchases, spend = engagement_rfm_input.spend - g.spend "
        f"FROM ({_GROUPED}) g WHERE engagement_rfm_input.tenant_id = :t "
        "AND engagement_rfm_input.program_id = :p "
        "AND engagement_rfm_input.account_id = g.account_id"), params)
    session.execute(delete(RfmInput).where(RfmInput.tenant_id == tenant_id,
                                           RfmInput.program_id == program_id,
                                           RfmInput.last_day < new))


def slide_window(session: Session, tenant_id: str, program_id: str, first_day: int) -> None:
    """Move the running inputs' window to start at ``first_day`` (built from the tallies the
    first time, or when the window grows). The window row stays locked until commit, and
    every event's transaction reads it shared (``add_rfm``): commit this on its own, before
    a long refresh, so that events wait for the slide only, never for the whole refresh."""
    window = session.get(RfmWindow, (tenant_id, program_id), with_for_update=True)
    if window is None:
        session.add(RfmWindow(tenant_id=tenant_id, program_id=program_id,
                              first_day=first_day))
        session.flush()
        _rebuild(session, tenant_id, program_id, first_day)
    elif window.first_day > first_day:
        _rebuild(session, tenant_id, program_id, first_day)
        window.first_day = first_day
    elif window.first_day < first_day:
        _slide(session, tenant_id, program_id, window.first_day, first_day)
        window.first_day = first_day
    session.flush()


def rfm_inputs(session: Session, tenant_id: str, program_id: str, first_day: int,
               last_day: int) -> pl.DataFrame:
    """Per buyer of the days [first_day, last_day] (tallies with purchases > 0): account_id,
    last_day, purchases, spend — read from the running inputs after sliding their window to
    ``first_day`` (built from the tallies the first time, or when the window grows)."""
    if window_of(session, tenant_id, program_id) != first_day:
        slide_window(session, tenant_id, program_id, first_day)
    frame = read_frame(session, "SELECT account_id, last_day, purchases, spend "
                                "FROM engagement_rfm_input WHERE tenant_id = :t "
                                "AND program_id = :p", {"t": tenant_id, "p": program_id},
                       _INPUT_SCHEMA)
    # days after last_day (events dated in the future) are in the inputs but not the window:
    # the few accounts with such days are read from their tallies
    # (no DISTINCT: with it SQLite walks the account index over every tally row instead of
    # the key's range of the days after last_day — seconds at a million members)
    later = f"""SELECT account_id FROM engagement_tally WHERE tenant_id = :t
                AND program_id = :p AND day > {int(last_day)} AND purchases > 0"""
    ahead = read_frame(session, later, {"t": tenant_id, "p": program_id},
                       {"account_id": pl.Utf8}).unique()
    if ahead.height:
        exact = read_frame(session, _GROUPED + f" HAVING account_id IN ({later})",
                           {"t": tenant_id, "p": program_id, "first": first_day,
                            "end": last_day + 1}, _INPUT_SCHEMA)
        frame = pl.concat([frame.join(ahead, on="account_id", how="anti"), exact])
    return frame


def input_of(session: Session, tenant_id: str, program_id: str,
             account_id: str) -> tuple[int, int, int] | None:
    """One account's running inputs (last_day, purchases, spend), None if it bought nothing
    from the window's first day on (or the program keeps no inputs)."""
    row = session.get(RfmInput, (tenant_id, program_id, account_id))
    return None if row is None else (row.last_day, row.purchases, row.spend)


def window_of(session: Session, tenant_id: str, program_id: str) -> int | None:
    row = session.get(RfmWindow, (tenant_id, program_id))
    return None if row is None else row.first_day
