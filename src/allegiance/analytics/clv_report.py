"""CLV per program: BG/NBD and Gamma-Gamma (``clv``) fitted on the program's purchase events.

Purchases are the processed purchase events with a member, net of returns, in the base
currency's major units (minor units ÷ 10^exponent), one transaction per member and day in the
program's time zone. The models are fitted on the purchases up to the calibration end; each
member then gets P(alive), the expected purchases and the expected value over the horizon.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy.orm import Session

from allegiance.analytics import sql
from allegiance.analytics.clv import (
    BGNBD,
    DAYS_PER_WEEK,
    RFM,
    GammaGamma,
    fit_bgnbd,
    fit_gamma_gamma,
    predicted_clv,
)
from allegiance.analytics.common import Report, ReportInvalid, program_of
from allegiance.kit import zones

COLUMNS = ["member", "x", "t_x", "T", "m_x", "historical", "p_alive", "expected_purchases",
           "expected_value"]
WEEKS_PER_MONTH = 52 / 12


_RFM_SCHEMA = {"member": pl.Utf8, "first": pl.Int64, "last": pl.Int64, "days": pl.Int64,
               "total": pl.Float64, "first_spend": pl.Float64}


def rfm_of(session: Session, tenant_id: str, program_id: str, *, start: datetime | None,
           end: datetime, calibration_end: date) -> RFM:
    """The RFM summary of the purchases in [start, end) up to ``calibration_end`` — what
    :func:`purchases` then :func:`~allegiance.analytics.clv.rfm_summary` give, aggregated
    in the database (transactions per member and day, then one row per member) so only one
    row per buyer is read."""
    program = program_of(session, tenant_id, program_id)
    name = sql.dialect(session)
    zone = program.time_zone or "UTC"
    sql.roomy(session)
    last_day = int(np.datetime64(calibration_end, "D").astype(np.int64))
    if sql.whole_local_days(zone, start, end):
        first_day = None if start is None else sql.day_number(start, zone)
        query, params = _from_summaries(tenant_id, program_id, program.base_currency, first_day,
                                        min(last_day, sql.day_number(end, zone) - 1))
    else:
        day = sql.local_day_of("occurred_at", name, zone)
        value = sql.major_units("amount - returned_amount", "currency", program.base_currency)
        params = [tenant_id, program_id]
        where = ("tenant_id = ? AND program_id = ? AND status = 'processed' "
                 "AND account_id IS NOT NULL AND kind = 'purchase'")
        if start is not None:
            where += " AND occurred_at >= ?"
            params.append(sql.stamp(start, name))
        where += " AND occurred_at < ?"
        params.append(sql.stamp(end, name))
        query = _per_member(f"SELECT account_id AS m, {day} AS d, SUM({value}) AS v FROM event "
                            f"WHERE {where} GROUP BY account_id, d", last_day)
    rows = sql.frame(session, query, params, _RFM_SCHEMA).sort("member")
    first = rows["first"].to_numpy()
    x = (rows["days"].to_numpy() - 1).astype(np.float64)
    total = rows["total"].to_numpy().astype(np.float64)
    repeat_spend = total - rows["first_spend"].to_numpy()
    return RFM(
        customers=rows["member"].to_numpy(),
        first=first.astype("datetime64[D]"),
        x=x,
        t_x=(rows["last"].to_numpy() - first) / DAYS_PER_WEEK,
        T=(last_day - first) / DAYS_PER_WEEK,
        m_x=np.divide(repeat_spend, x, out=np.zeros(len(x)), where=x > 0),
        total=total,
    )


def _per_member(tx: str, last_day: int) -> str:
    """One RFM row per member from ``tx`` (member ``m``, day ``d``, value ``v`` per day)."""
    return ("SELECT m, MIN(d), MAX(d), COUNT(*), SUM(v), "
            "SUM(CASE WHEN d = f THEN v ELSE 0 END) FROM ("
            f"SELECT m, d, v, MIN(d) OVER (PARTITION BY m) AS f FROM ({tx}) AS tx "
            f"WHERE d <= {last_day}) AS w GROUP BY m")


def _from_summaries(tenant_id: str, program_id: str, base_currency: str,
                    start: int | None, cutoff: int) -> tuple[str, list[Any]]:
    """The RFM rows from the summaries the database keeps (the program's local days, ``start``
    the first and ``cutoff`` the last day
    counted). Without a start, a member whose purchases all fall by the cutoff in one
    currency is her ``purchase_member`` row as it stands; the others (purchases after the
    cutoff, several currencies) are summed from their ``purchase_day`` rows — one statement,
    one snapshot. With a start, every member is summed from ``purchase_day``."""
    value = sql.major_units("d.amount", "NULLIF(d.currency, '')", base_currency)
    if start is not None:
        tx = (f"SELECT d.account_id AS m, d.day AS d, SUM({value}) AS v FROM purchase_day d "
              "WHERE d.tenant_id = ? AND d.program_id = ? AND d.day >= ? AND d.day <= ? "
              "GROUP BY d.account_id, d.day")
        return _per_member(tx, cutoff), [tenant_id, program_id, start, cutoff]
    whole = ("pm.tenant_id = ? AND pm.program_id = ? AND pm.first_day <= ? "
             "AND pm.last_day <= ? AND pm.currency <> '*'")
    spend = sql.major_units("pm.amount", "NULLIF(pm.currency, '')", base_currency)
    first = sql.major_units("pm.first_amount", "NULLIF(pm.currency, '')", base_currency)
    # CROSS JOIN: SQLite takes the few members to redo first, then their days by key.
    tx = (f"SELECT d.account_id AS m, d.day AS d, SUM({value}) AS v FROM purchase_member pm "
          "CROSS JOIN purchase_day d WHERE pm.tenant_id = ? AND pm.program_id = ? "
          "AND pm.first_day <= ? AND (pm.last_day > ? OR pm.currency = '*') "
          "AND d.tenant_id = pm.tenant_id AND d.program_id = pm.program_id "
          "AND d.account_id = pm.account_id AND d.day <= ? GROUP BY d.account_id, d.day")
    query = (f"SELECT pm.account_id, pm.first_day, pm.last_day, pm.days, {spend}, {first} "
             f"FROM purchase_member pm WHERE {whole} UNION ALL {_per_member(tx, cutoff)}")
    return query, [tenant_id, program_id, cutoff, cutoff,
                   tenant_id, program_id, cutoff, cutoff, cutoff]


def fit_rfm(rfm: RFM) -> tuple[BGNBD, GammaGamma]:
    if len(rfm) == 0:
        raise ReportInvalid("the program has no purchases to fit", field="program_id")
    if int(rfm.repeaters.sum()) < 2:
        raise ReportInvalid("CLV needs at least two members with repeat purchases",
                            field="calibration_end")
    return fit_bgnbd(rfm.x, rfm.t_x, rfm.T), fit_gamma_gamma(rfm.x, rfm.m_x)


def clv(session: Session, tenant_id: str, program_id: str, *, calibration_end: date,
        start: date | None = None, horizon_weeks: float = 52.0, monthly_discount: float = 0.0,
        limit: int | None = 100) -> Report:
    """Fit on purchases from ``start`` through ``calibration_end`` (inclusive days); rows are
    the members with the highest expected value (``limit`` of them, all when None)."""
    if calibration_end is None:
        raise ReportInvalid("calibration_end is required", field="calibration_end")
    # the program's days: from the local midnight of ``start`` to that after calibration_end
    zone = program_of(session, tenant_id, program_id).time_zone or "UTC"
    end = zones.day_start(zone, calibration_end + timedelta(days=1))
    begin = None if start is None else zones.day_start(zone, start)
    rfm = rfm_of(session, tenant_id, program_id, start=begin, end=end,
                 calibration_end=calibration_end)
    bgnbd, gg = fit_rfm(rfm)
    alive = bgnbd.p_alive(rfm.x, rfm.t_x, rfm.T)
    expected = bgnbd.expected_purchases(horizon_weeks, rfm.x, rfm.t_x, rfm.T)
    value = predicted_clv(bgnbd, gg, rfm, horizon=horizon_weeks,
                          discount=monthly_discount, step=WEEKS_PER_MONTH)
    order = np.argsort(-value, kind="stable")
    if limit is not None:
        order = order[:limit]
    rows: list[dict[str, Any]] = [
        {"member": str(rfm.customers[i]), "x": int(rfm.x[i]), "t_x": float(rfm.t_x[i]),
         "T": float(rfm.T[i]), "m_x": float(rfm.m_x[i]), "historical": float(rfm.total[i]),
         "p_alive": float(alive[i]), "expected_purchases": _finite(float(expected[i])),
         "expected_value": _finite(float(value[i]))}
        for i in order
    ]
    warnings = []
    if not np.isfinite(expected).all():
        warnings.append("the BG/NBD fit gives no finite expected purchases for some members; "
                        "fit on more members")
    if not gg.q > 1:
        warnings.append("Gamma-Gamma q <= 1: the mean spend is not finite; more repeat buyers "
                        "are needed")
    summary = {
        "warnings": warnings,
        "members": len(rfm), "repeat_buyers": int(rfm.repeaters.sum()),
        "repeat_transactions": int(rfm.x.sum()),
        "bgnbd": {"r": bgnbd.r, "alpha": bgnbd.alpha, "a": bgnbd.a, "b": bgnbd.b,
                  "log_likelihood": bgnbd.log_likelihood},
        "gamma_gamma": {"p": gg.p, "q": gg.q, "gamma": gg.gamma,
                        "log_likelihood": gg.log_likelihood},
        "historical_value": float(rfm.total.sum()),
        "expected_purchases": _finite(float(expected.sum())),
        "expected_value": _finite(float(value.sum())),
        "mean_p_alive": float(alive.mean()),
    }
    return Report("clv", program_id, "Customer lifetime value (BG/NBD + Gamma-Gamma)", COLUMNS,
                  rows, summary, {"calibration_end": calibration_end, "from": start,
                                  "horizon_weeks": horizon_weeks,
                                  "monthly_discount": monthly_discount, "limit": limit})


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
