"""HTTP shapes of segments and campaigns."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from allegiance.kit.schemas import Input, Output


class SegmentCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    condition: str = Field(min_length=1, max_length=4000,
                           description="condition language over member.* fields")


class SegmentRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    condition: str
    members: int
    refreshed_at: datetime | None


class SegmentList(Output):
    items: list[SegmentRead]


class Refreshed(Output):
    segment: SegmentRead
    entered: int
    left: int


class SegmentMemberRead(Output):
    account_id: str
    since: datetime


class SegmentMemberPage(Output):
    items: list[SegmentMemberRead]
    next_cursor: str | None


class CampaignCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    segments: list[str] = Field(default_factory=list, max_length=50,
                                description="segment codes (empty: every member)")
    rule: dict[str, Any] = Field(description="trigger, condition, effects, limits, priority, "
                                             "stacking — the program's rule format")
    starts_at: datetime
    ends_at: datetime
    budget: int | None = Field(None, ge=1, le=10**15)


class CampaignRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    segments: list[str]
    rule: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    budget: int | None
    status: str


class CampaignList(Output):
    items: list[CampaignRead]


class RuleShareRead(Output):
    rule: str
    unit: str
    points: int = Field(description="what the campaign adds to this rule's awards")
    cost: Decimal = Field(description="their cost in the program's base currency")
    events: int = Field(description="events the rule earned on with the campaign")


class ProjectionRead(Output):
    days: int = Field(description="the look-back window, in days up to now")
    start: datetime
    end: datetime
    events: int = Field(description="processed purchases and activities of the targets")
    members: int = Field(description="targeted members with events in the window")
    points: dict[str, int] = Field(description="per unit code, what the campaign would add")
    cost: Decimal = Field(description="their cost in the program's base currency")
    base_currency: str
    budget: int | None
    budget_unit: str | None
    over_budget: bool = Field(description="the projected points exceed the budget")
    by_rule: list[RuleShareRead]


class PreviewRead(Output):
    campaign: CampaignRead
    rule: dict[str, Any] = Field(description="the rule the campaign adds while it runs")
    members: int = Field(description="members targeted now")
    by_segment: dict[str, int]
    projection: ProjectionRead = Field(
        description="dry run of the rule over the targets' recent events (nothing written)")


class RfmSettings(Input):
    window_days: int = Field(365, ge=1, le=3660,
                             description="purchases of the last N local days are scored")


class RfmRead(Output):
    program_id: str
    window_days: int
    computed_at: datetime | None
    scored: int = Field(description="accounts with a purchase in the window")
    breakpoints: dict[str, Any] = Field(
        description="per dimension, the lowest raw value scoring 2, 3, 4 and 5 at the last "
                    "refresh (recency: local day ordinal of the last purchase)")
    distribution: dict[str, dict[int, int]] = Field(
        description="per dimension, accounts per score")


class RfmScoreRead(Output):
    account_id: str
    recency: int
    frequency: int
    monetary: int
    cell: str
    last_purchase_day: str | None
    purchases: int
    spend: int
