"""Analytics: read-only reports over the programs' history (see ``docs/analytics.md``).

KPIs, liability, breakage, retention cohorts, CLV (BG/NBD + Gamma-Gamma, see ``clv``), NPS,
uplift, category penetration, target attainment and ROI; charts as SVG (``charts``).
``python -m allegiance.analytics.cdnow`` reproduces the published CDNOW fit.
"""

from allegiance.analytics.breakage import breakage, forecast
from allegiance.analytics.charts import Marker, Series, bar_chart, line_chart
from allegiance.analytics.clv import (
    BGNBD,
    RFM,
    GammaGamma,
    bgnbd_log_likelihood,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    predicted_clv,
    rfm_summary,
    transactions,
)
from allegiance.analytics.clv_report import clv
from allegiance.analytics.cohorts import purchase_gaps, retention
from allegiance.analytics.common import Period, Report, ReportInvalid, instant, period
from allegiance.analytics.kpis import kpis
from allegiance.analytics.liability import liability
from allegiance.analytics.nps import nps
from allegiance.analytics.uplift import launch_of, penetration, roi, targets, uplift

__all__ = [
    "BGNBD",
    "RFM",
    "GammaGamma",
    "Marker",
    "Period",
    "Report",
    "ReportInvalid",
    "Series",
    "bar_chart",
    "bgnbd_log_likelihood",
    "breakage",
    "clv",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "forecast",
    "gamma_gamma_log_likelihood",
    "instant",
    "kpis",
    "launch_of",
    "liability",
    "line_chart",
    "nps",
    "penetration",
    "period",
    "predicted_clv",
    "purchase_gaps",
    "retention",
    "rfm_summary",
    "roi",
    "targets",
    "transactions",
    "uplift",
]
