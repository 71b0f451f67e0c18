"""RFM scoring: the set-based Polars ranking equals the definition (rank among buyers, ties
sharing the lowest, ceil(5 rank / buyers)), and scoring one value against the breakpoints
gives back the score of every value the refresh saw."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from allegiance.campaigns import domain, rfm

values = st.lists(st.tuples(st.integers(0, 30), st.integers(1, 6), st.integers(0, 10**6)),
                  min_size=0, max_size=60)


@settings(max_examples=200, deadline=None)
@given(rows=values)
def test_scores_follow_the_definition(rows: list[tuple[int, int, int]]) -> None:
    frame = pl.DataFrame({"account_id": [f"a{i}" for i in range(len(rows))],
                          "last_day": [r[0] for r in rows], "purchases": [r[1] for r in rows],
                          "spend": [r[2] for r in rows]},
                         schema={"account_id": pl.Utf8, "last_day": pl.Int64,
                                 "purchases": pl.Int64, "spend": pl.Int64})
    scored = rfm.score_frame(frame)
    points = rfm.breakpoints(scored)
    n = len(rows)
    for k, dim in enumerate(("recency", "frequency", "monetary")):
        for i, row in enumerate(rows):
            rank = 1 + sum(1 for other in rows if other[k] < row[k])
            expected = domain.quintile(rank, n)
            assert scored[dim][i] == expected
            assert domain.score(row[k], points[dim]) == expected
    days = [r[0] for r in rows]
    if n and days.count(max(days)) == 1:
        assert max(scored["recency"]) == 5  # a single most recent buyer always scores 5
