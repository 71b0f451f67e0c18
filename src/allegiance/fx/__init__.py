"""Exchange rates by currency and day, and the conversion of foreign-currency events."""

from allegiance.fx.domain import RateRow, convert, parse_rates_csv
from allegiance.fx.errors import FxRateMissing, InvalidRate
from allegiance.fx.models import FxRate
from allegiance.fx.service import (
    Conversion,
    conversion,
    import_csv,
    list_rates,
    rate_on,
    set_rates,
)

__all__ = ["Conversion", "FxRate", "FxRateMissing", "InvalidRate", "RateRow", "conversion",
           "convert", "import_csv", "list_rates", "parse_rates_csv", "rate_on", "set_rates"]
