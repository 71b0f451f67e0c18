"""Exchange rates: upsert (API or file), look up the rate of a day. Services flush; the
caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance.fx.domain import RateProblem, RateRow, check_currency, convert, parse_rates_csv
from allegiance.fx.errors import FxRateMissing, InvalidRate
from allegiance.fx.models import FxRate
from allegiance.kit import clock
from allegiance.kit.ids import new_id


def set_rates(session: Session, tenant_id: str, base_currency: str, rows: Sequence[RateRow],
              *, source: str) -> list[FxRate]:
    """Create or replace the rate of each (currency, day) against ``base_currency`` (a row's
    own ``base_currency`` wins)."""
    now = clock.now()
    out: list[FxRate] = []
    for index, row in enumerate(rows):
        base = row.base_currency or check_currency(base_currency)
        if row.currency == base:
            raise InvalidRate("a currency has no rate against itself",
                              field=f"rates[{index}].currency")
        existing = session.scalars(select(FxRate).where(
            FxRate.tenant_id == tenant_id, FxRate.base_currency == base,
            FxRate.currency == row.currency, FxRate.day == row.day)).one_or_none()
        if existing is None:
            existing = FxRate(tenant_id=tenant_id, id=new_id("fxr"), base_currency=base,
                              currency=row.currency, day=row.day, rate=row.rate, source=source,
                              created_at=now, updated_at=now)
            session.add(existing)
        else:
            existing.rate, existing.source, existing.updated_at = row.rate, source, now
        out.append(existing)
    session.flush()
    return out


def import_csv(session: Session, tenant_id: str, base_currency: str, text: str, *,
               source: str = "file") -> list[FxRate]:
    try:
        rows = parse_rates_csv(text)
    except RateProblem as exc:
        raise InvalidRate(str(exc), field=exc.field) from exc
    return set_rates(session, tenant_id, base_currency, rows, source=source)


def rate_on(session: Session, tenant_id: str, base_currency: str, currency: str,
            day: date) -> FxRate | None:
    """The rate in force on ``day``: the latest one dated that day or before."""
    return session.scalars(select(FxRate).where(
        FxRate.tenant_id == tenant_id, FxRate.base_currency == base_currency,
        FxRate.currency == currency, FxRate.day <= day,
    ).order_by(FxRate.day.desc()).limit(1)).one_or_none()


def list_rates(session: Session, tenant_id: str, *, currency: str | None = None,
               base_currency: str | None = None, limit: int = 50,
               after: str | None = None) -> list[FxRate]:
    stmt = select(FxRate).where(FxRate.tenant_id == tenant_id)
    if currency:
        stmt = stmt.where(FxRate.currency == currency)
    if base_currency:
        stmt = stmt.where(FxRate.base_currency == base_currency)
    if after:
        stmt = stmt.where(FxRate.id > after)
    return list(session.scalars(stmt.order_by(FxRate.id).limit(limit + 1)))


@dataclass(frozen=True)
class Conversion:
    """How an amount in another currency was brought into the base currency."""

    currency: str
    base_currency: str
    rate: Decimal
    day: date

    def apply(self, amount_minor: int) -> int:
        return convert(amount_minor, self.currency, self.base_currency, self.rate)


def conversion(session: Session, tenant_id: str, base_currency: str, currency: str,
               day: date) -> Conversion:
    """The conversion of ``currency`` into ``base_currency`` on ``day``; raises when no rate
    is known for that day or before."""
    found = rate_on(session, tenant_id, base_currency, currency, day)
    if found is None:
        raise FxRateMissing(
            f"no {currency}→{base_currency} exchange rate on or before {day.isoformat()}",
            field="currency")
    return Conversion(currency, base_currency, Decimal(found.rate), found.day)
