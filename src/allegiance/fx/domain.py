"""Pure exchange-rate rules: conversion with its rounding, and parsing rate files.

Conversion: ``minor_in_base = amount_minor × rate × 10^(exp_base − exp_currency)``, rounded
half to even (banker's rounding) to a whole minor unit of the base currency. Each line of an
event is converted on its own; the event's amount is the sum of its converted lines (or its
converted amount when it has no lines), so lines always add up.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

from allegiance.kit.money import currency_exponent, is_currency_code

MAX_RATE = Decimal("1e12")
MAX_RATE_DECIMALS = 10  # the column's scale (Numeric(24, 10)) and the API's


@dataclass(frozen=True)
class RateRow:
    currency: str
    day: date
    rate: Decimal
    base_currency: str | None = None


class RateProblem(ValueError):
    def __init__(self, row: int, field: str, message: str) -> None:
        super().__init__(f"row {row}: {field}: {message}")
        self.row, self.field, self.message = row, field, message


def convert(amount_minor: int, currency: str, base_currency: str, rate: Decimal) -> int:
    """``amount_minor`` of ``currency`` in minor units of ``base_currency`` (half-even)."""
    if currency == base_currency:
        return amount_minor
    shift = currency_exponent(base_currency) - currency_exponent(currency)
    # Exact: enough digits for the amount, the rate (checked: at most 13 integer digits and
    # MAX_RATE_DECIMALS decimals) and the shift, so quantize never runs out of precision.
    digits = (len(str(abs(amount_minor))) + max(rate.adjusted(), 0) + len(rate.as_tuple().digits)
              + abs(shift) + 10)
    with localcontext() as context:
        context.prec = max(context.prec, digits)
        value = Decimal(amount_minor) * rate * (Decimal(10) ** shift)
        return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def check_rate(value: object) -> Decimal:
    try:
        rate = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError("rate must be a decimal number") from exc
    if not rate.is_finite() or rate <= 0 or rate > MAX_RATE:
        raise ValueError("rate must be a positive number")
    if rate != rate.quantize(Decimal(1).scaleb(-MAX_RATE_DECIMALS)):
        raise ValueError(f"rate has more than {MAX_RATE_DECIMALS} decimals")
    return rate


def check_currency(value: object) -> str:
    code = str(value).strip().upper()
    if not is_currency_code(code):
        raise ValueError("must be an ISO 4217 code")
    return code


def parse_rates_csv(text: str) -> list[RateRow]:
    """Rows of a CSV with the header ``currency,date,rate`` (optionally ``base_currency``)."""
    reader = csv.DictReader(io.StringIO(text))
    needed = {"currency", "date", "rate"}
    try:
        if reader.fieldnames is None or not needed <= {f.strip() for f in reader.fieldnames}:
            raise RateProblem(1, "header", "needs the columns currency, date, rate")
        return _rate_rows(reader)
    except csv.Error as exc:
        raise RateProblem(reader.line_num, "file", f"is not a readable CSV file: {exc}") from exc


def _rate_rows(reader: csv.DictReader[str]) -> list[RateRow]:
    rows: list[RateRow] = []
    for number, raw in enumerate(reader, start=2):
        if None in raw:  # more cells than the header has columns
            raise RateProblem(number, "row", "has more cells than the header has columns")
        record = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        try:
            currency = check_currency(record["currency"])
        except ValueError as exc:
            raise RateProblem(number, "currency", str(exc)) from exc
        try:
            day = date.fromisoformat(record["date"])
        except ValueError as exc:
            raise RateProblem(number, "date", "must be YYYY-MM-DD") from exc
        try:
            rate = check_rate(record["rate"])
        except ValueError as exc:
            raise RateProblem(number, "rate", str(exc)) from exc
        base = record.get("base_currency") or None
        if base is not None:
            try:
                base = check_currency(base)
            except ValueError as exc:
                raise RateProblem(number, "base_currency", str(exc)) from exc
        rows.append(RateRow(currency, day, rate, base))
    return rows
