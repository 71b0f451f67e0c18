"""HTTP shapes of events, returns, dry-runs and matches. Amounts are integers in minor units."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from allegiance.events import domain
from allegiance.events.inputs import EventData, Outcome
from allegiance.events.returns import ReturnData, ReturnLine

Amount = Field(None, ge=0, strict=True, description="minor units (cents)")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExternalRef(_In):
    source: str = Field(min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=200)


class LineCreate(_In):
    sku: str | None = Field(None, max_length=120)
    name: str | None = Field(None, max_length=300)
    category: str | None = Field(None, max_length=120)
    brand: str | None = Field(None, max_length=120)
    labels: list[str] = Field(default_factory=list, max_length=50)
    quantity: int = Field(1, gt=0, strict=True)
    unit_price: int | None = Amount
    amount: int | None = Field(None, ge=0, strict=True,
                               description="default: quantity * unit_price")


class EventCreate(_In):
    """A purchase or an activity. Match the account by ``account_id``,
    ``account_external_id`` or ``member_number`` (or through ``user_id``)."""

    kind: Literal["purchase", "activity"] = "purchase"
    activity_type: str | None = Field(None, max_length=64)
    external_id: str = Field(min_length=1, max_length=200,
                             description="unique per program and source: a replay earns once")
    source: str | None = Field(None, min_length=1, max_length=120,
                               description="default api (reseller:<account> for third parties)")
    account_id: str | None = Field(None, max_length=40)
    account_external_id: ExternalRef | None = None
    member_number: str | None = Field(None, max_length=32)
    reported_by: Literal["member", "operator", "third_party"] = "operator"
    reporter_account_id: str | None = Field(None, max_length=40)
    user_id: str | None = Field(None, max_length=40, description="the user who made the sale")
    occurred_at: datetime | None = None
    currency: str | None = Field(None, min_length=3, max_length=3)
    amount: int | None = Field(None, ge=0, strict=True, description="default: sum of lines")
    quantity: int | None = Field(None, ge=0, strict=True)
    channel: str | None = Field(None, max_length=64)
    attributes: dict[str, Any] = Field(default_factory=dict)
    lines: list[LineCreate] = Field(default_factory=list, max_length=1000)

    def data(self) -> EventData:
        ref = self.account_external_id
        return EventData(
            external_id=self.external_id, kind=self.kind, source=self.source,
            activity_type=self.activity_type, account_id=self.account_id,
            member_number=self.member_number,
            account_external_id=(ref.source, ref.id) if ref else None,
            reported_by=self.reported_by, reporter_account_id=self.reporter_account_id,
            user_id=self.user_id, occurred_at=self.occurred_at, currency=self.currency,
            amount=self.amount, quantity=self.quantity, channel=self.channel,
            attributes=self.attributes,
            lines=tuple(domain.LineIn(line.sku, line.name, line.category, line.brand,
                                      tuple(line.labels), line.quantity, line.unit_price,
                                      line.amount) for line in self.lines),
        )


class ReturnLineCreate(_In):
    line_no: int = Field(ge=1, strict=True)
    quantity: int | None = Field(None, gt=0, strict=True)
    amount: int | None = Field(None, gt=0, strict=True)


class ReturnCreate(_In):
    """A return of a purchase: everything left (no ``lines``), some lines (by quantity or
    amount), or, for a purchase without lines, an ``amount``."""

    external_id: str = Field(min_length=1, max_length=200)
    source: str = Field("api", min_length=1, max_length=120)
    original_event_id: str | None = Field(None, max_length=40)
    original_source: str | None = Field(None, max_length=120)
    original_external_id: str | None = Field(None, max_length=200)
    lines: list[ReturnLineCreate] | None = Field(None, min_length=1, max_length=1000)
    amount: int | None = Field(None, gt=0, strict=True)
    occurred_at: datetime | None = None
    reason: str | None = Field(None, max_length=500)

    def data(self) -> ReturnData:
        return ReturnData(
            external_id=self.external_id, source=self.source,
            original_event_id=self.original_event_id, original_source=self.original_source,
            original_external_id=self.original_external_id,
            lines=None if self.lines is None else tuple(
                ReturnLine(x.line_no, x.quantity, x.amount) for x in self.lines),
            amount=self.amount, occurred_at=self.occurred_at, reason=self.reason,
        )


class MatchCreate(_In):
    account_id: str = Field(min_length=1, max_length=40)


class LineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    line_no: int
    sku: str | None
    name: str | None
    category: str | None
    brand: str | None
    labels: list[str]
    quantity: int
    unit_price: int | None
    amount: int
    returned_quantity: int
    returned_amount: int


class AwardRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    award_no: int
    rule_code: str
    type: str
    line_no: int | None
    unit_code: str | None
    amount: int
    owner_type: str | None
    owner_id: str | None
    entry_id: str | None
    hold_id: str | None
    reversed_amount: int
    data: dict[str, Any]


class BalanceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    wallet_id: str
    unit: str
    owner_type: str
    owner_id: str
    posted: int
    pending: int
    available: int
    owed: int = Field(description="debt booked to the member's receivable (a return after "
                                  "the points were spent)")


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    program_id: str
    kind: str
    activity_type: str | None
    source: str
    external_id: str
    reported_by: str
    reporter_account_id: str | None
    account_id: str | None
    match_key: dict[str, Any]
    user_id: str | None
    occurred_at: datetime
    currency: str | None
    amount: int
    original_currency: str | None = Field(
        None, description="The currency the event was reported in, when not the program's.")
    original_amount: int | None = Field(None,
                                        description="The amount as reported (minor units).")
    fx_rate: Decimal | None = Field(None, description="Base-currency units per unit used.")
    fx_date: date | None = Field(None, description="The day of that rate.")
    quantity: int
    returned_amount: int
    channel: str | None
    attributes: dict[str, Any]
    status: str
    reason: str | None
    original_event_id: str | None
    version: int | None
    created_at: datetime
    processed_at: datetime | None
    lines: list[LineRead] = Field(default_factory=list)
    awards: list[AwardRead] = Field(default_factory=list)
    balances: list[BalanceRead] = Field(default_factory=list)

    @classmethod
    def of(cls, result: Outcome) -> EventRead:
        out = cls.model_validate(result.event)
        out.lines = [LineRead.model_validate(x) for x in result.lines]
        out.awards = [AwardRead.model_validate(x) for x in result.awards]
        out.balances = [BalanceRead.model_validate(x) for x in result.balances]
        return out


class EventSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    activity_type: str | None
    source: str
    external_id: str
    account_id: str | None
    match_key: dict[str, Any]
    occurred_at: datetime
    amount: int
    status: str
    reason: str | None
    original_event_id: str | None


class EventPage(BaseModel):
    items: list[EventSummary]
    next_cursor: str | None


class TraceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    rule: str
    matched: bool
    reason: str


class DryAwardRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    rule: str
    type: str
    line: int | None = Field(description="line number (1-based) for per-line awards")
    unit: str | None
    amount: int
    data: dict[str, Any]


class DryRunRead(BaseModel):
    version: int | None
    account_id: str | None
    matched: bool
    awards: list[DryAwardRead]
    traces: list[TraceRead]
