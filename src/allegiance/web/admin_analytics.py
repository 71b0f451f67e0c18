"""Admin: analytics pages (issue 8) over ``allegiance.analytics`` — KPIs, liability (by
unit, tier and age, pending apart), breakage with the liability forecast, retention cohorts,
CLV (BG/NBD + Gamma-Gamma parameters and the top members), uplift and NPS. Each page runs
the report the API and the CLI run (``analytics.reports.run``) and shows its chart as SVG."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from allegiance.analytics.common import ReportInvalid
from allegiance.analytics.reports import Options, run
from allegiance.kit.errors import NotFound
from allegiance.web import queries
from allegiance.web.analytics_view import View, view
from allegiance.web.security import Admin, admin, reading
from allegiance.web.templating import render

router = APIRouter()
DAY = r"^(\d{4}-\d{2}-\d{2})?$"
# Page → (tab label, the reports it shows, the parameters its form offers).
PAGES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "kpis": ("KPIs", ("kpis",), ("from", "to")),
    "liability": ("Liability", ("liability",), ("at",)),
    "breakage": ("Breakage and forecast", ("breakage", "forecast"), ("at", "months")),
    "retention": ("Retention", ("retention",), ("from", "to")),
    "clv": ("CLV", ("clv",), ("from", "calibration_end", "horizon_weeks")),
    "uplift": ("Uplift", ("uplift",), ("from", "to", "launch")),
    "nps": ("NPS", ("nps",), ("from", "to")),
}
CLV_MEMBERS = 25


@router.get("/analytics")
def analytics_home(ctx: Admin = Depends(admin("view"))) -> Response:
    return RedirectResponse("/admin/analytics/kpis", status_code=303)


@router.get("/analytics/{page}")
def analytics_page(
    request: Request, page: str,
    start: str = Query("", alias="from", max_length=10, pattern=DAY),
    to: str = Query("", max_length=10, pattern=DAY),
    at: str = Query("", max_length=10, pattern=DAY),
    calibration_end: str = Query("", max_length=10, pattern=DAY),
    launch: str = Query("", max_length=10, pattern=DAY),
    horizon_weeks: float = Query(52.0, ge=0, le=520),
    months: int = Query(12, ge=1, le=60),
    ctx: Admin = Depends(admin("view")),
) -> Response:
    if page not in PAGES:
        raise NotFound(f"no analytics page {page!r}", field="page")
    program = ctx.need_program()
    tab, kinds, fields = PAGES[page]
    options = Options(start=start or None, end=to or None, at=at or None,
                      calibration_end=calibration_end or None, launch=launch or None,
                      horizon_weeks=horizon_weeks, months=months, limit=CLV_MEMBERS)
    views: list[View] = []
    problem = None
    with reading(ctx.db) as s:
        try:
            for kind in kinds:
                report = run(s, ctx.tenant_id, program.id, kind, options)
                names = None
                if kind == "clv":
                    names = queries.account_names(s, ctx.tenant_id,
                                                  [str(r["member"]) for r in report.rows])
                views.append(view(report, names))
        except ReportInvalid as exc:
            problem = exc.message
    values: dict[str, Any] = {"from": start, "to": to, "at": at,
                              "calibration_end": calibration_end, "launch": launch,
                              "horizon_weeks": horizon_weeks, "months": months}
    return render(request, "admin/analytics.html", {
        "ctx": ctx, "page": page, "tab": tab, "pages": PAGES, "views": views,
        "problem": problem, "fields": fields, "values": values})
