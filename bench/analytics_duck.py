"""The limit of ``bench analytics``: DuckDB (in memory) doing the same reports over the same
generated rows, loaded through Parquet files (not timed).

* ``liability``: the FIFO aging computed from the wallets' postings (the report's definition:
  the balance is made of the newest credits), by tier and age bucket, plus one ``negative``
  row per wallet below zero;
* ``aggregates``: the RFM inputs per member (transactions per member and day, then first and
  last day, number of days, spend, spend of the first day);
* ``cohorts``: retention by enrolment month (distinct member-months of events per cohort).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from allegiance.analytics.clv import DAYS_PER_WEEK, RFM
from allegiance.analytics.liability import AGE_BUCKETS, NEGATIVE, OLDEST


def connect(frames: dict[str, pl.DataFrame], folder: Path) -> Any:
    import duckdb

    con = duckdb.connect()
    for name, frame in frames.items():
        path = folder / f"{name}.parquet"
        frame.write_parquet(path)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{path}')")
    return con


def _bucket(day: str, today: int) -> str:
    whens = " ".join(f"WHEN {day} >= {today - days} THEN '{label}'" for days, label in AGE_BUCKETS)
    return f"CASE {whens} ELSE '{OLDEST}' END"


def liability(con: Any, today: int) -> dict[tuple[str | None, str], int]:
    """(tier, age) → outstanding, from the postings of the wallets (table ``posting``:
    member, day, seq, credit, amount; ``member``: member, tier)."""
    rows = con.execute(f"""
    WITH w AS (
      SELECT member, day, credit, amount,
             SUM(CASE WHEN credit THEN amount ELSE -amount END)
                 OVER (PARTITION BY member) AS bal,
             SUM(CASE WHEN credit THEN amount ELSE 0 END)
                 OVER (PARTITION BY member ORDER BY day DESC, seq DESC
                       ROWS UNBOUNDED PRECEDING) AS newer
      FROM posting),
    parts AS (
      SELECT member, {_bucket("day", today)} AS age,
             LEAST(amount, bal - (newer - amount)) AS part
      FROM w WHERE credit AND bal >= 0 AND bal - (newer - amount) > 0
      UNION ALL
      SELECT member, '{NEGATIVE}' AS age, ANY_VALUE(bal) AS part
      FROM w WHERE bal < 0 GROUP BY member)
    SELECT m.tier, p.age, SUM(p.part) FROM parts p JOIN member m USING (member)
    GROUP BY m.tier, p.age""").fetchall()
    return {(tier, str(age)): int(total) for tier, age, total in rows if int(total) != 0}


def liability_from_aging(con: Any, today: int) -> None:
    """The same report from maintained per-day remainders (table ``aging``), for scale."""
    con.execute(f"""
    SELECT m.tier, {_bucket("a.day", today)} AS age, SUM(a.remaining)
    FROM aging a JOIN member m USING (member) WHERE a.remaining > 0
    GROUP BY m.tier, age""").fetchall()


def rfm(con: Any, last_day: int) -> RFM:
    """The RFM summary of the purchases (table ``event``: member, day, amount) up to
    ``last_day`` (days since 1970-01-01)."""
    frame = con.execute(f"""
    SELECT m, MIN(d) AS first, MAX(d) AS last, COUNT(*) AS days, SUM(v) AS total,
           SUM(CASE WHEN d = f THEN v ELSE 0 END) AS first_spend
    FROM (SELECT m, d, v, MIN(d) OVER (PARTITION BY m) AS f
          FROM (SELECT member AS m, day AS d, SUM(amount) AS v FROM event
                WHERE day <= {last_day} GROUP BY member, day))
    GROUP BY m ORDER BY m""").fetchnumpy()
    first = np.asarray(frame["first"], dtype=np.int64)
    x = (np.asarray(frame["days"]) - 1).astype(np.float64)
    total = np.asarray(frame["total"], dtype=np.float64)
    repeat = total - np.asarray(frame["first_spend"], dtype=np.float64)
    return RFM(customers=np.asarray(frame["m"]), first=first.astype("datetime64[D]"), x=x,
               t_x=(np.asarray(frame["last"]) - first) / DAYS_PER_WEEK,
               T=(last_day - first) / DAYS_PER_WEEK,
               m_x=np.divide(repeat, x, out=np.zeros(len(x)), where=x > 0), total=total)


def cohorts(con: Any, first_month: int, end_month: int) -> dict[tuple[int, int], int]:
    """(cohort month, k) → members active in month cohort + k (``enrolment``: member, month;
    ``event`` months as year × 12 + month)."""
    rows = con.execute(f"""
    SELECT c, k, COUNT(*) FROM (
      SELECT DISTINCT e.member, n.month AS c, e.month - n.month AS k
      FROM event e JOIN enrolment n USING (member)
      WHERE n.month >= {first_month} AND n.month < {end_month}
        AND e.month >= {first_month} AND e.month < {end_month})
    WHERE k >= 0 GROUP BY c, k""").fetchall()
    return {(int(c), int(k)): int(n) for c, k, n in rows}
