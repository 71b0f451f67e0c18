"""Admin: analytics pages (issue 8) over ``allegiance.analytics`` — KPIs, liability (by
unit, tier and age, pending apart), breakage with the liability forecast, retention cohorts,
CLV (BG/NBD + Gamma-Gamma parameters and the top members), uplift and NPS. Each page shows
the report the API and the CLI compute (``analytics.reports.run``) with its chart as SVG,
from its stored copy (``analytics.snapshots``): the time it was computed is on the page, a
copy older than ALLEGIANCE_REPORT_MAX_AGE_SECONDS is recomputed after the response, and
"Refresh now" recomputes it on the spot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from allegiance.analytics import snapshots
from allegiance.analytics.common import ReportInvalid
from allegiance.analytics.reports import Options
from allegiance.kit.errors import NotFound
from allegiance.kit.settings import get_settings
from allegiance.web import queries
from allegiance.web.analytics_view import View, view
from allegiance.web.security import Admin, admin, admin_form, reading
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


@router.get("/analytics")
def analytics_home(ctx: Admin = Depends(admin("view"))) -> Response:
    return RedirectResponse("/admin/analytics/kpis", status_code=303)


class PageQuery:
    """The parameters an analytics page's form sends (empty dates: the defaults)."""

    def __init__(
        self,
        start: str = Query("", alias="from", max_length=10, pattern=DAY),
        to: str = Query("", max_length=10, pattern=DAY),
        at: str = Query("", max_length=10, pattern=DAY),
        calibration_end: str = Query("", max_length=10, pattern=DAY),
        launch: str = Query("", max_length=10, pattern=DAY),
        horizon_weeks: float = Query(52.0, ge=0, le=520),
        months: int = Query(12, ge=1, le=60),
    ) -> None:
        self.values: dict[str, Any] = {
            "from": start, "to": to, "at": at, "calibration_end": calibration_end,
            "launch": launch, "horizon_weeks": horizon_weeks, "months": months}

    def options(self) -> Options:
        v = self.values
        return snapshots.page_options(
            start=v["from"] or None, end=v["to"] or None, at=v["at"] or None,
            calibration_end=v["calibration_end"] or None, launch=v["launch"] or None,
            horizon_weeks=v["horizon_weeks"], months=v["months"])

    def query_string(self) -> str:
        from urllib.parse import urlencode

        defaults = {"horizon_weeks": 52.0, "months": 12}
        return urlencode({k: v for k, v in self.values.items()
                          if v not in ("", None) and defaults.get(k) != v})


def _page_of(page: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    if page not in PAGES:
        raise NotFound(f"no analytics page {page!r}", field="page")
    return PAGES[page]


@router.get("/analytics/{page}")
def analytics_page(request: Request, page: str, background: BackgroundTasks,
                   query: PageQuery = Depends(), ctx: Admin = Depends(admin("view"))) -> Response:
    tab, kinds, fields = _page_of(page)
    program = ctx.need_program()
    options = query.options()
    max_age = get_settings().report_max_age_seconds
    views: list[View] = []
    problem = None
    shown: list[snapshots.Stored] = []
    try:
        for kind in kinds:
            stored, stale = snapshots.latest(ctx.db, ctx.tenant_id, program.id, kind, options,
                                             max_age)
            if stale:
                snapshots.refresh_later(ctx.db, ctx.tenant_id, program.id, kind, options,
                                        background.add_task)
            shown.append(stored)
    except ReportInvalid as exc:
        problem = exc.message
    for stored in shown:
        names = None
        if stored.report.kind == "clv":
            with reading(ctx.db) as s:
                names = queries.account_names(s, ctx.tenant_id,
                                              [str(r["member"]) for r in stored.report.rows])
        views.append(view(stored.report, names))
    computed = min((s.computed_at for s in shown), default=None)
    return render(request, "admin/analytics.html", {
        "ctx": ctx, "page": page, "tab": tab, "pages": PAGES, "views": views,
        "problem": problem, "fields": fields, "values": query.values,
        "computed_at": computed, "query": query.query_string(),
        "age_minutes": int(max(s.age() for s in shown) // 60) if shown else None})


@router.post("/analytics/{page}/refresh")
def refresh_page(page: str, query: PageQuery = Depends(),
                 ctx: Admin = Depends(admin_form("view"))) -> Response:
    """Recompute the page's reports now (for the parameters it shows)."""
    _tab, kinds, _fields = _page_of(page)
    program = ctx.need_program()
    options = query.options()
    back = f"/admin/analytics/{page}" + (f"?{query.query_string()}" if query.query_string()
                                         else "")
    try:
        seconds = sum(snapshots.compute(ctx.db, ctx.tenant_id, program.id, kind,
                                        options).seconds for kind in kinds)
    except ReportInvalid as exc:
        ctx.say("error", f"Cannot compute this report: {exc.message}")
        return RedirectResponse(back, status_code=303)
    ctx.say("ok", f"Recomputed in {seconds:.1f} s.")
    return RedirectResponse(back, status_code=303)
