"""Analytics: read-only models over the programs' history.

So far the CLV models (BG/NBD for repeat purchases, Gamma-Gamma for spend; see ``clv``) and a
small SVG chart writer (``charts``). ``python -m allegiance.analytics.cdnow`` reproduces the
published CDNOW fit and draws its tracking chart.
"""

from allegiance.analytics.charts import Marker, Series, line_chart
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

__all__ = [
    "BGNBD",
    "RFM",
    "GammaGamma",
    "Marker",
    "Series",
    "bgnbd_log_likelihood",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
    "line_chart",
    "predicted_clv",
    "rfm_summary",
    "transactions",
]
