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

from allegiance.analytics import sql
from allegiance.analytics.common import (
    Period,
    Report,
    member_events,
    program_of,
    ratio,
)
from allegiance.analytics.kpis import ENROLLED_STATUSES

GAP_BUCKETS: tuple[tuple[int, str], ...] = (
    (7, "0-7"), (30, "8-30"), (90, "31-90"), (180, "91-180"), (365, "181-365"),
)
GAP_OLDEST = "over 365"


def retention(session: Session, tenant_id: str, program_id: str, span: Period) -> Report:
    """Cohorts of members enrolled in the period, followed up to its end (months of the
    program's time zone)."""
    zone = program_of(session, tenant_id, program_id).time_zone or "UTC"
    last = span.end - timedelta(microseconds=1)
    last_index = sql.month_number(last, zone)
    horizon = last_index - sql.month_number(span.start, zone)
    sizes, retained, members = _cohorts(session, tenant_id, program_id, span, zone)
    columns = ["cohort", "size"] + [f"m{k}" for k in range(horizon + 1)]
    rows: list[dict[str, Any]] = []
    for cohort_index, size in sorted(sizes.items()):
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
                  {"churn": churn, "members": members},
                  {"from": span.start, "to": span.end})


_ENROLLED = ", ".join(f"'{status}'" for status in ENROLLED_STATUSES)


def _cohorts(session: Session, tenant_id: str, program_id: str,
             span: Period, zone: str) -> tuple[dict[int, int], dict[tuple[int, int], int], int]:
    """(cohort → size, (cohort, k) → members with an event in month cohort + k, members),
    aggregated in the database: enrolments of the period by month, and the distinct
    (member, month) of their events."""
    name = sql.dialect(session)
    sql.roomy(session)
    start, end = sql.stamp(span.start, name), sql.stamp(span.end, name)
    enrolled = ("en.tenant_id = ? AND en.program_id = ? "
                f"AND en.status IN ({_ENROLLED}) AND en.created_at >= ? AND en.created_at < ?")
    cohort = sql.month_case("en.created_at", name, zone, span.start, span.end)
    counts = sql.frame(
        session, f"SELECT {cohort} AS c, COUNT(*) FROM enrolment en WHERE {enrolled} GROUP BY c",
        [tenant_id, program_id, start, end], {"c": pl.Int64, "n": pl.Int64})
    if sql.whole_local_months(zone, span.start, span.end):
        # The summary kept by the database: one row per member and month with an event.
        seen = sql.frame(session, f"""
            SELECT c, k, COUNT(*) FROM (
                SELECT {cohort} AS c, mm.month - {cohort} AS k
                FROM member_month mm JOIN enrolment en ON en.tenant_id = mm.tenant_id
                     AND en.program_id = mm.program_id AND en.account_id = mm.account_id
                WHERE mm.tenant_id = ? AND mm.program_id = ? AND mm.month >= ?
                  AND mm.month < ? AND {enrolled}) AS seen
            WHERE k >= 0 GROUP BY c, k""",
            [tenant_id, program_id, sql.month_number(span.start, zone),
             sql.month_number(span.end, zone),
             tenant_id, program_id, start, end],
            {"c": pl.Int64, "k": pl.Int64, "n": pl.Int64})
    else:
        seen = _seen_from_events(session, tenant_id, program_id, enrolled, cohort, start, end,
                                 sql.month_case("e.occurred_at", name, zone, span.start,
                                                span.end))
    sizes = {int(c): int(n) for c, n in counts.iter_rows()}
    retained = {(int(c), int(k)): int(n) for c, k, n in seen.iter_rows()}
    return sizes, retained, sum(sizes.values())


def _seen_from_events(session: Session, tenant_id: str, program_id: str, enrolled: str,
                      cohort: str, start: Any, end: Any, month: str) -> pl.DataFrame:
    """(cohort, k, members) from the event rows (a period not made of whole local months)."""
    return sql.frame(session, f"""
        SELECT c, k, COUNT(*) FROM (
            SELECT DISTINCT e.account_id, {cohort} AS c,
                   {month} - {cohort} AS k
            FROM event e JOIN enrolment en ON en.tenant_id = e.tenant_id
                 AND en.program_id = e.program_id AND en.account_id = e.account_id
            WHERE e.tenant_id = ? AND e.program_id = ? AND e.status = 'processed'
              AND e.kind IN ('purchase', 'activity') AND e.occurred_at >= ?
              AND e.occurred_at < ? AND {enrolled}) AS seen
        WHERE k >= 0 GROUP BY c, k""",
        [tenant_id, program_id, start, end, tenant_id, program_id, start, end],
        {"c": pl.Int64, "k": pl.Int64, "n": pl.Int64})


def _index(cohort: str) -> int:
    year, month = cohort.split("-")
    return int(year) * 12 + int(month)


def purchase_gaps(session: Session, tenant_id: str, program_id: str, span: Period) -> Report:
    """The distribution of days between consecutive purchase days (the program's local
    days) of the same member."""
    zone = program_of(session, tenant_id, program_id).time_zone or "UTC"
    buys = member_events(session, tenant_id, program_id, kinds=("purchase",),
                         start=span.start, end=span.end)
    gaps = (
        buys.select("member", pl.col("at").dt.convert_time_zone(zone).dt.date().alias("day"))
        .unique()
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
