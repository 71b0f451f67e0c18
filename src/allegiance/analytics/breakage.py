"""Breakage by cohort of issue month, the cohorts' redemption curve, and a liability forecast.

Every debit of a member wallet is allocated to the wallet's credits first in, first out (as
lots are consumed), columnar in Polars: the credits and the debits of a wallet are two
sequences of intervals on one cumulative axis, and each piece between consecutive boundaries
belongs to one credit and at most one debit. A cohort is the month of the credits.

* historical breakage = expired ÷ issued;
* the redemption curve r_k = points of the cohorts redeemed at age k months ÷ points issued,
  over the cohorts old enough to have an age k;
* estimated breakage of a cohort = 1 − (ultimate redeemed + other uses) ÷ issued, where
  ultimate redeemed = redeemed so far + issued × Σ r_k over the ages it has yet to reach,
  at most what was not expired or used otherwise.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from allegiance import ledger
from allegiance.analytics.common import (
    Report,
    add_months,
    month_start,
    months_between,
    program_of,
    ratio,
    units,
    value_of,
    wallet_flows,
)
from allegiance.kit import clock

COLUMNS = ["unit", "cohort", "age", "issued", "redeemed", "expired", "other", "outstanding",
           "redeemed_rate", "historical_breakage", "estimated_breakage"]
FORECAST_COLUMNS = ["unit", "month", "issued", "redeemed", "expired", "outstanding", "value"]
FORECAST_MONTHS = 12
RUN_RATE_MONTHS = 3


def allocate(flows: pl.DataFrame) -> pl.DataFrame:
    """FIFO allocation of debits to credits: one row per (credit, debit) piece with the
    credit's time, the debit's time and category (null: not consumed yet), and the amount."""
    ordered = flows.sort("wallet", "at", "seq", "line_no")
    credits = (
        ordered.filter(pl.col("signed") > 0)
        .with_columns(pl.col("signed").cum_sum().over("wallet").alias("chi"))
        .with_columns((pl.col("chi") - pl.col("signed")).alias("clo"))
        .select("wallet", "unit_id", pl.col("at").alias("credit_at"), "clo", "chi")
    )
    debits = (
        ordered.filter(pl.col("signed") < 0)
        .with_columns((-pl.col("signed")).cum_sum().over("wallet").alias("dhi"))
        .with_columns((pl.col("dhi") + pl.col("signed")).alias("dlo"))
        .select("wallet", pl.col("at").alias("debit_at"), "category", "dlo", "dhi")
    )
    points = pl.concat([
        credits.select("wallet", pl.col("clo").alias("pos")),
        credits.select("wallet", pl.col("chi").alias("pos")),
        debits.select("wallet", pl.col("dlo").alias("pos")),
        debits.select("wallet", pl.col("dhi").alias("pos")),
    ]).unique().sort("wallet", "pos")
    pieces = (
        points.with_columns(pl.col("pos").shift(-1).over("wallet").alias("end"))
        .filter(pl.col("end").is_not_null())
        .sort("pos")
        .join_asof(credits.sort("clo"), left_on="pos", right_on="clo", by="wallet",
                   strategy="backward", check_sortedness=False)
        .filter(pl.col("chi").is_not_null() & (pl.col("pos") < pl.col("chi")))
        .sort("pos")
        .join_asof(debits.sort("dlo"), left_on="pos", right_on="dlo", by="wallet",
                   strategy="backward", check_sortedness=False)
    )
    consumed = pl.col("dhi").is_not_null() & (pl.col("pos") < pl.col("dhi"))
    return pieces.select(
        "wallet", "unit_id", "credit_at",
        pl.when(consumed).then(pl.col("debit_at")).alias("debit_at"),
        pl.when(consumed).then(pl.col("category")).alias("category"),
        (pl.col("end") - pl.col("pos")).alias("amount"),
    )


def cohorts(flows: pl.DataFrame, now: datetime) -> tuple[pl.DataFrame, dict[str, list[float]]]:
    """Per (unit, cohort): issued, redeemed, expired, other, outstanding and age; and per unit
    the redemption curve r_0..r_K (fraction of issued redeemed at each age)."""
    empty = pl.DataFrame(schema={"unit_id": pl.Utf8, "cohort": pl.Datetime("us", "UTC"),
                                 "issued": pl.Int64, "redeemed": pl.Int64, "expired": pl.Int64,
                                 "other": pl.Int64, "outstanding": pl.Int64, "age": pl.Int64})
    if flows.filter(pl.col("signed") > 0).height == 0:
        return empty, {}
    pieces = allocate(flows).with_columns(
        pl.col("credit_at").dt.truncate("1mo").alias("cohort"),
        pl.col("debit_at").dt.truncate("1mo").alias("debit_month"),
    )

    def total(condition: pl.Expr, name: str) -> pl.Expr:
        return pl.col("amount").filter(condition).sum().alias(name)

    table = (
        pieces.group_by("unit_id", "cohort").agg(
            pl.col("amount").sum().alias("issued"),
            total(pl.col("category") == "redeem", "redeemed"),
            total(pl.col("category") == "expire", "expired"),
            total(pl.col("category").is_in(["earn", "adjust", "other"]), "other"),
            total(pl.col("category").is_null(), "outstanding"),
        )
        .with_columns(pl.col("cohort").map_elements(
            lambda c: months_between(c, now), return_dtype=pl.Int64).alias("age"))
        .sort("unit_id", "cohort")
    )
    by_age = (
        pieces.filter(pl.col("category") == "redeem")
        .with_columns(((pl.col("debit_month").dt.year() - pl.col("cohort").dt.year()) * 12
                       + pl.col("debit_month").dt.month().cast(pl.Int64)
                       - pl.col("cohort").dt.month().cast(pl.Int64)).alias("k"))
        .group_by("unit_id", "cohort", "k").agg(pl.col("amount").sum())
    )
    curves: dict[str, list[float]] = {}
    for unit_id in table["unit_id"].unique().sort().to_list():
        mine = table.filter(pl.col("unit_id") == unit_id)
        oldest = int(mine["age"].max())  # type: ignore[arg-type]
        redeemed_at = {(c, int(k)): int(a) for _, c, k, a in
                       by_age.filter(pl.col("unit_id") == unit_id).iter_rows()}
        curve = []
        for k in range(oldest + 1):
            old_enough = mine.filter(pl.col("age") >= k)
            base = int(old_enough["issued"].sum())
            done = sum(redeemed_at.get((c, k), 0) for c in old_enough["cohort"].to_list())
            curve.append(ratio(done, base) or 0.0)
        curves[unit_id] = curve
    return table, curves


def ultimate_redeemed(issued: int, redeemed: int, expired: int, other: int, age: int,
                      curve: list[float]) -> float:
    """Redeemed so far plus issued × the curve's rates at the ages still ahead, capped."""
    ahead = sum(curve[age + 1:])
    return min(redeemed + issued * ahead, float(issued - expired - other))


def breakage(session: Session, tenant_id: str, program_id: str,
             now: datetime | None = None) -> Report:
    """Cohorts as of ``now`` (postings effective before it; every posting when None)."""
    program_of(session, tenant_id, program_id)
    flows = wallet_flows(session, tenant_id, program_id, until=now)
    now = now or clock.now()
    by_unit = units(session, tenant_id, program_id)
    table, curves = cohorts(flows, now)
    rows: list[dict[str, Any]] = []
    totals: dict[str, dict[str, float]] = {}
    for unit_id, cohort, issued, redeemed, expired, other, outstanding, age in table.iter_rows():
        ultimate = ultimate_redeemed(issued, redeemed, expired, other, age, curves[unit_id])
        estimated = ratio(issued - ultimate - other, issued)
        rows.append({
            "unit": by_unit[unit_id].code, "cohort": cohort.strftime("%Y-%m"), "age": age,
            "issued": issued, "redeemed": redeemed, "expired": expired, "other": other,
            "outstanding": outstanding, "redeemed_rate": ratio(redeemed, issued),
            "historical_breakage": ratio(expired, issued), "estimated_breakage": estimated,
        })
        sums = totals.setdefault(by_unit[unit_id].code, {"issued": 0, "expired": 0,
                                                         "unredeemed": 0.0})
        sums["issued"] += issued
        sums["expired"] += expired
        sums["unredeemed"] += issued - ultimate - other
    summary = {
        "units": [{"unit": code, "historical_breakage": ratio(s["expired"], s["issued"]),
                   "estimated_breakage": ratio(s["unredeemed"], s["issued"])}
                  for code, s in totals.items()],
        "redemption_curves": {by_unit[u].code: c for u, c in curves.items()},
    }
    return Report("breakage", program_id, "Breakage by issue-month cohort", COLUMNS, rows,
                  summary, {"at": now})


def expiring_lots(session: Session, tenant_id: str, program_id: str,
                  now: datetime) -> dict[tuple[str, datetime], int]:
    """Per (unit, month): what open lots of member wallets hold that expires that month."""
    lot, account = ledger.Lot, ledger.LedgerAccount
    rows = session.execute(
        select(account.unit_id, lot.expires_at, func.sum(lot.remaining))
        .join(account, and_(account.tenant_id == lot.tenant_id, account.id == lot.account_id))
        .where(lot.tenant_id == tenant_id, account.program_id == program_id,
               lot.remaining > 0, lot.expires_at.is_not(None), lot.expires_at >= now)
        .group_by(account.unit_id, lot.expires_at)
    ).all()
    out: dict[tuple[str, datetime], int] = {}
    for unit_id, expires_at, remaining in rows:
        if expires_at is None:
            continue
        key = (unit_id, month_start(expires_at))
        out[key] = out.get(key, 0) + int(remaining)
    return out


def forecast(session: Session, tenant_id: str, program_id: str,
             now: datetime | None = None, months: int = FORECAST_MONTHS) -> Report:
    """Outstanding points month by month for ``months`` months: issuance at the run rate of
    the last three full months, redemptions from the redemption curve (cohorts to date and
    the forecast issuance), expiries from the lots' dates."""
    program_of(session, tenant_id, program_id)
    flows = wallet_flows(session, tenant_id, program_id, until=now)
    now = now or clock.now()
    by_unit = units(session, tenant_id, program_id)
    table, curves = cohorts(flows, now)
    expiring = expiring_lots(session, tenant_id, program_id, now)
    this_month = month_start(now)
    window_start = add_months(this_month, -RUN_RATE_MONTHS)
    rows: list[dict[str, Any]] = []
    for unit_id, unit in sorted(by_unit.items(), key=lambda item: item[1].code):
        curve = curves.get(unit_id, [])
        recent = flows.filter((pl.col("unit_id") == unit_id) & (pl.col("category") == "earn")
                              & (pl.col("at") >= window_start) & (pl.col("at") < this_month))
        run_rate = int(recent["signed"].sum()) // RUN_RATE_MONTHS
        mine = table.filter(pl.col("unit_id") == unit_id)
        outstanding = int(flows.filter(pl.col("unit_id") == unit_id)["signed"].sum())
        remaining = {row[1]: float(row[6]) for row in mine.iter_rows()}
        for t in range(1, months + 1):
            month = add_months(this_month, t)
            redeemed = 0.0
            for _, cohort, issued, *_, age in mine.iter_rows():
                k = age + t
                take = min(issued * (curve[k] if k < len(curve) else 0.0), remaining[cohort])
                remaining[cohort] -= take
                redeemed += take
            redeemed += sum(run_rate * (curve[k] if k < len(curve) else 0.0)
                            for k in range(t))
            expired = expiring.get((unit_id, month), 0)
            issued_next = run_rate
            outstanding = max(0, outstanding + issued_next - round(redeemed) - expired)
            rows.append({"unit": unit.code, "month": month.strftime("%Y-%m"),
                         "issued": issued_next, "redeemed": round(redeemed),
                         "expired": expired, "outstanding": outstanding,
                         "value": value_of(outstanding, unit)})
    summary = {"run_rate_months": RUN_RATE_MONTHS,
               "final_value": sum((r["value"] for r in rows if r["month"] == rows[-1]["month"]),
                                  Decimal(0)) if rows else Decimal(0)}
    return Report("forecast", program_id, "Liability forecast", FORECAST_COLUMNS, rows,
                  summary, {"at": now, "months": months})
