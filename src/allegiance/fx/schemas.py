"""Request and response bodies of exchange rates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from allegiance.kit.schemas import Input

Currency = Field(min_length=3, max_length=3, pattern="^[A-Z]{3}$")


class RateIn(Input):
    currency: str = Currency
    date: dt.date
    rate: Decimal = Field(gt=0, max_digits=24, decimal_places=10,
                          description="Units of the base currency per unit of currency.")


class RatesIn(Input):
    base_currency: str = Currency
    rates: list[RateIn] = Field(min_length=1, max_length=1000)


class RatesCsvIn(Input):
    base_currency: str = Currency
    csv: str = Field(min_length=1, max_length=2_000_000,
                     description="A CSV file's text: currency,date,rate[,base_currency].")


class RateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    base_currency: str
    currency: str
    date: dt.date = Field(validation_alias="day")
    rate: Decimal
    source: str
    created_at: dt.datetime
    updated_at: dt.datetime


class RatePage(BaseModel):
    items: list[RateRead]
    next_cursor: str | None


class RatesWritten(BaseModel):
    written: int
