"""Retention and churn by cohort of enrolment month; time between purchases.

A member of the cohort of month M is *retained* in month M + k when she has at least one
processed event (purchase or activity) in that month; retention_k = retained ÷ cohort size and
churn_k = 1 − retention_k. Time between purchases: the days between a member's consecutive
purchase days (several purchases on one day are one).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from allegiance.analytics.common import (
    Period,
    Report,
    enrolled_members,
    member_events,
    months_between,
    program_of,
    ratio,
)
from allegiance.analytics.kpis import ENROLLED_STATUSES

GAP_BUCKETS: tuple[tuple[int, str], ...] = (
    (7, "0-7"), (30, "8-30"), (90, "31-90"), (180, "91-180"), (365, "181-365"),
)
GAP_OLDEST = "over 365"


def _month_index(column: str) -> pl.Expr:
    return pl.col(column).dt.year().cast(pl.Int64) * 12 + pl.col(column).dt.month().cast(pl.Int64)


def retention(session: Session, tenant_id: str, program_id: str, span: Period) -> Report:
    """Cohorts of members enrolled in the period, followed up to its end."""
    program_of(session, tenant_id, program_id)
    people = enrolled_members(session, tenant_id, program_id).filter(
        pl.col("status").is_in(ENROLLED_STATUSES)
        & (pl.col("enrolled_at") >= span.start) & (pl.col("enrolled_at") < span.end)
    ).with_columns(_month_index("enrolled_at").alias("cohort_index"))
    acts = member_events(session, tenant_id, program_id, start=span.start, end=span.end)
    last = span.end - timedelta(microseconds=1)
    last_index = last.year * 12 + last.month
    horizon = months_between(span.start, last)
    sizes = people.group_by("cohort_index").agg(pl.len().alias("size"))
    seen = (
        acts.with_columns(_month_index("at").alias("month_index"))
        .select("member", "month_index").unique()
        .join(people.select("member", "cohort_index"), on="member", how="inner")
        .with_columns((pl.col("month_index") - pl.col("cohort_index")).alias("k"))
        .filter(pl.col("k") >= 0)
        .group_by("cohort_index", "k").agg(pl.len().alias("retained"))
    )
    retained = {(int(c), int(k)): int(n) for c, k, n in seen.iter_rows()}
    columns = ["cohort", "size"] + [f"m{k}" for k in range(horizon + 1)]
    rows: list[dict[str, Any]] = []
    for cohort_index, size in sizes.sort("cohort_index").iter_rows():
        year, month = divmod(int(cohort_index) - 1, 12)
        row: dict[str, Any] = {"cohort": f"{year:04d}-{month + 1:02d}", "size": int(size)}
        for k in range(horizon + 1):
            if cohort_index + k > last_index:
                row[f"m{k}"] = None
            else:
                row[f"m{k}"] = ratio(retained.get((int(cohort_index), k), 0), int(size))
        rows.append(row)
    churn = {
        f"m{k}": ratio(sum(int(r["size"]) - retained.get((_index(r["cohort"]), k), 0)
                           for r in rows if r[f"m{k}"] is not None),
                       sum(int(r["size"]) for r in rows if r[f"m{k}"] is not None))
        for k in range(horizon + 1)
    }
    return Report("retention", program_id, "Retention by enrolment month", columns, rows,
                  {"churn": churn, "members": int(people.height)},
                  {"from": span.start, "to": span.end})


def _index(cohort: str) -> int:
    year, month = cohort.split("-")
    return int(year) * 12 + int(month)


def purchase_gaps(session: Session, tenant_id: str, program_id: str, span: Period) -> Report:
    """The distribution of days between consecutive purchase days of the same member."""
    program_of(session, tenant_id, program_id)
    buys = member_events(session, tenant_id, program_id, kinds=("purchase",),
                         start=span.start, end=span.end)
    gaps = (
        buys.select("member", pl.col("at").dt.date().alias("day")).unique()
        .sort("member", "day")
        .with_columns((pl.col("day") - pl.col("day").shift(1).over("member"))
                      .dt.total_days().alias("gap"))
        .filter(pl.col("gap").is_not_null())
    )["gap"]
    labels = [label for _, label in GAP_BUCKETS] + [GAP_OLDEST]
    counts = dict.fromkeys(labels, 0)
    for gap in gaps.to_list():
        label = next((name for limit, name in GAP_BUCKETS if gap <= limit), GAP_OLDEST)
        counts[label] += 1
    total = len(gaps)
    rows = [{"days": label, "gaps": counts[label], "share": ratio(counts[label], total)}
            for label in labels]
    summary: dict[str, Any] = {"gaps": total, "members": buys["member"].n_unique()}
    if total:
        summary |= {"mean_days": float(gaps.mean()),  # type: ignore[arg-type]
                    "median_days": float(gaps.median()),  # type: ignore[arg-type]
                    "p25_days": float(gaps.quantile(0.25, "linear")),  # type: ignore[arg-type]
                    "p75_days": float(gaps.quantile(0.75, "linear"))}  # type: ignore[arg-type]
    return Report("purchase-gaps", program_id, "Time between purchases",
                  ["days", "gaps", "share"], rows, summary, {"from": span.start, "to": span.end})
