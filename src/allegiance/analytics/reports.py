"""One entry point for every report, shared by the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy.orm import Session

from allegiance.analytics.breakage import breakage, forecast
from allegiance.analytics.clv_report import clv
from allegiance.analytics.cohorts import purchase_gaps, retention
from allegiance.analytics.common import Report, ReportInvalid, instant, period, program_of
from allegiance.analytics.kpis import kpis
from allegiance.analytics.liability import liability
from allegiance.analytics.nps import SURVEY_TYPE, nps
from allegiance.analytics.uplift import (
    SIZE_BANDS,
    launch_of,
    penetration,
    roi,
    targets,
    uplift,
)
from allegiance.kit import clock

KINDS = ("kpis", "liability", "breakage", "forecast", "retention", "purchase-gaps", "clv",
         "nps", "uplift", "penetration", "targets", "roi")


@dataclass
class Options:
    """Parameters of the reports; each report reads the ones it needs (see docs/analytics.md).
    Dates are ISO strings or dates; ``start``/``end`` are inclusive days."""

    start: str | date | None = None
    end: str | date | None = None
    at: str | date | None = None
    calibration_end: str | date | None = None
    horizon_weeks: float = 52.0
    monthly_discount: float = 0.0
    limit: int | None = 100
    survey_type: str = SURVEY_TYPE
    launch: str | date | None = None
    bands: int = SIZE_BANDS
    margin: float | None = None
    fixed_cost: str | Decimal | None = None
    months: int = 12
    targets: dict[str, int] | None = field(default=None)


def _day(value: str | date | None, name: str) -> date | None:
    if isinstance(value, date):
        return value
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ReportInvalid(f"{name} must be an ISO date (YYYY-MM-DD)", field=name) from exc


def run(session: Session, tenant_id: str, program_id: str, kind: str,
        options: Options | None = None) -> Report:
    """Compute report ``kind`` of the program."""
    o = options or Options()
    if kind not in KINDS:
        raise ReportInvalid(f"unknown report {kind!r}; one of {', '.join(KINDS)}", field="kind")
    now = clock.now()
    # Dates are the program's own days: "October" is October where the program runs.
    zone = program_of(session, tenant_id, program_id).time_zone or "UTC"
    span = period(o.start, o.end, now, zone)
    at = instant(o.at, end_of_day=True, name="at", time_zone=zone)
    if kind == "kpis":
        return kpis(session, tenant_id, program_id, span)
    if kind == "liability":
        return liability(session, tenant_id, program_id, at)
    if kind == "breakage":
        return breakage(session, tenant_id, program_id, at)
    if kind == "forecast":
        if not 1 <= o.months <= 60:
            raise ReportInvalid("months must be between 1 and 60", field="months")
        return forecast(session, tenant_id, program_id, at, o.months)
    if kind == "retention":  # cohorts of the program's local months
        return retention(session, tenant_id, program_id, span)
    if kind == "purchase-gaps":
        return purchase_gaps(session, tenant_id, program_id, span)
    if kind == "nps":
        return nps(session, tenant_id, program_id, span, o.survey_type)
    if kind == "targets":
        return targets(session, tenant_id, program_id, span, o.targets)
    if kind == "clv":
        end = _day(o.calibration_end, "calibration_end") or (
            span.end - timedelta(microseconds=1)).date()
        if o.horizon_weeks < 0 or o.monthly_discount <= -1:
            raise ReportInvalid("horizon_weeks must be >= 0 and monthly_discount > -1",
                                field="horizon_weeks")
        return clv(session, tenant_id, program_id, calibration_end=end,
                   start=_day(o.start, "from"), horizon_weeks=o.horizon_weeks,
                   monthly_discount=o.monthly_discount, limit=o.limit)
    launch = launch_of(o.launch, span)
    if kind == "uplift":
        return uplift(session, tenant_id, program_id, launch, span.end, o.bands)
    if kind == "penetration":
        return penetration(session, tenant_id, program_id, launch, span.end)
    try:
        fixed = None if o.fixed_cost is None else Decimal(str(o.fixed_cost))
    except InvalidOperation as exc:
        raise ReportInvalid("fixed_cost must be a decimal number", field="fixed_cost") from exc
    return roi(session, tenant_id, program_id, launch, span.end, margin=o.margin,
               fixed_cost=fixed, bands=o.bands)
