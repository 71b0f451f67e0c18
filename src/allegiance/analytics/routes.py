"""HTTP routes of the reports: ``GET /v1/programs/{id}/reports/{kind}`` with the ``read``
scope, as JSON (default), CSV or an SVG chart (``format``). Reports never write."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field

from allegiance.analytics import render
from allegiance.analytics.reports import KINDS, Options, run
from allegiance.kit.schemas import Output
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["analytics"])


class ReportRead(Output):
    kind: str = Field(description="one of " + ", ".join(KINDS))
    program_id: str
    title: str
    parameters: dict[str, Any]
    columns: list[str]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]


@router.get(
    "/programs/{program_id}/reports/{kind}", response_model=ReportRead,
    summary="A report of the program (kpis, liability, breakage, forecast, retention, "
            "purchase-gaps, clv, nps, uplift, penetration, targets, roi)",
    responses={200: {"content": {"text/csv": {}, "image/svg+xml": {}}}},
)
def get_report(
    program_id: str,
    kind: str,
    start: str | None = Query(None, alias="from", max_length=32,
                              pattern=r"^\d{4}-\d{2}-\d{2}$",
                              description="first day (default: 365 days before `to`)"),
    to: str | None = Query(None, max_length=32, pattern=r"^\d{4}-\d{2}-\d{2}$",
                           description="last day, inclusive (default: now)"),
    at: str | None = Query(None, max_length=32, pattern=r"^\d{4}-\d{2}-\d{2}$",
                           description="liability, breakage, forecast: as at the end of "
                                       "this day (default: now, every posting)"),
    calibration_end: str | None = Query(None, max_length=32, pattern=r"^\d{4}-\d{2}-\d{2}$",
                                        description="clv: last day of the calibration"),
    horizon_weeks: float = Query(52.0, ge=0, le=520, description="clv: horizon in weeks"),
    monthly_discount: float = Query(0.0, gt=-1, le=1, description="clv: discount a month"),
    limit: int = Query(100, ge=1, le=10_000, description="clv: members listed"),
    survey_type: str = Query("nps", max_length=64, description="nps: the activity type"),
    launch: str | None = Query(None, max_length=32, pattern=r"^\d{4}-\d{2}-\d{2}$",
                               description="uplift, penetration, roi: the launch day "
                                           "(default: the middle of the period)"),
    bands: int = Query(4, ge=1, le=20, description="uplift, roi: size bands"),
    margin: float | None = Query(None, ge=0, le=1, description="roi: gross margin rate"),
    fixed_cost: str | None = Query(None, max_length=40, description="roi: fixed cost"),
    months: int = Query(12, ge=1, le=60, description="forecast: months ahead"),
    format: str = Query("json", pattern="^(json|csv|svg)$"),
    ctx: Ctx = Depends(need("read")),
) -> Any:
    ctx.check_program(program_id)
    options = Options(start=start, end=to, at=at, calibration_end=calibration_end,
                      horizon_weeks=horizon_weeks, monthly_discount=monthly_discount,
                      limit=limit, survey_type=survey_type, launch=launch, bands=bands,
                      margin=margin, fixed_cost=fixed_cost, months=months)
    with ctx.read() as session:
        report = run(session, ctx.tenant_id, program_id, kind, options)
    if format == "csv":
        return Response(render.to_csv(report), media_type="text/csv")
    if format == "svg":
        return Response(render.svg(render.chart_of(report)), media_type="image/svg+xml")
    return report.to_dict()
