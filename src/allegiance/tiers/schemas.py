"""HTTP shapes of tier ladders, statuses, placements, metric reports and recalculations."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Code = Field(min_length=1, max_length=64)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PeriodIn(_In):
    kind: Literal["calendar_year", "rolling_months", "calendar_month", "anniversary"] = (
        "calendar_year")
    months: int | None = Field(None, ge=1, le=120, description="window of rolling_months")


class LevelIn(_In):
    code: str = Code
    name: str | None = Field(None, max_length=200)
    threshold: int = Field(ge=0, description="minimum of the metric (money in minor units)")
    requires: dict[str, int] | None = Field(
        None, description="minimums on other metrics, e.g. {\"rating\": 485}")
    benefits: dict[str, Any] | None = Field(
        None, description="earn_multiplier (decimal string), perks, catalogue…")


class DowngradeIn(_In):
    grace: Literal["none", "one_step"] = "none"


class DirectPlacementIn(_In):
    single_order_amount: int = Field(ge=1)
    level: str | None = Field(None, max_length=64, description="default: the top level")


class TierLadderCreate(_In):
    """A ladder document; the same shape as the ``tiers`` entries of a program definition."""

    code: str = Code
    name: str | None = Field(None, max_length=200)
    metric: str = Field(min_length=1, max_length=100, description=(
        "points_earned | spend | count | certification:<name> | a reported metric name"))
    period: PeriodIn = PeriodIn()
    levels: list[LevelIn] = Field(min_length=1, max_length=50)
    downgrade: DowngradeIn = DowngradeIn()
    direct_placement: list[DirectPlacementIn] | None = None
    rollup: bool = False
    primary: bool = False
    audience: dict[str, str | list[str]] | None = Field(
        None, description="account attributes the ladder is for, e.g. {\"segment\": \"retailer\"}")

    def document(self) -> dict[str, Any]:
        data = self.model_dump(exclude_none=True)
        for level in data["levels"]:
            level.setdefault("name", level["code"])
        return data


class TierLadderUpdate(TierLadderCreate):
    """The whole new document of the ladder (levels members hold must stay)."""


class TierLadderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    program_id: str
    code: str
    name: str
    metric: str
    is_primary: bool
    definition: dict[str, Any]
    settled_through: int | None
    created_at: datetime
    updated_at: datetime


class TierLadderPage(BaseModel):
    items: list[TierLadderRead]
    next_cursor: str | None


class TierStateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ladder_id: str
    ladder_code: str
    metric: str
    level: str | None
    level_name: str | None
    since: datetime | None
    locked: bool
    lock_reason: str | None
    value: int
    period_key: str
    window_start: datetime
    window_end: datetime
    next_level: str | None
    needed: int
    ratio: Decimal
    benefits: dict[str, Any]


class AccountTiersRead(BaseModel):
    account_id: str
    program_id: str
    tiers: list[TierStateRead]


class TierPlacementCreate(_In):
    ladder: str | None = Field(None, max_length=64, description="ladder code (if several)")
    level: str | None = Field(max_length=64, description="level code; null removes the level")
    reason: str = Field(min_length=1, max_length=1000)
    lock: bool = False


class MoveRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ladder_code: str
    account_id: str
    from_level: str | None
    to_level: str | None
    reason: str


class MetricReportCreate(_In):
    account_id: str = Field(min_length=1, max_length=40)
    metric: str = Field(min_length=1, max_length=100)
    value: int
    at: datetime | None = None


class CertificationCreate(_In):
    certification: str = Field(min_length=1, max_length=60)
    granted: bool = True
    at: datetime | None = None


class MovesRead(BaseModel):
    moves: list[MoveRead]


class RecalculationCreate(_In):
    at: datetime | None = None
    period_end: bool = False


class RecalculationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    evaluated: int
    upgraded: int
    downgraded: int
    ladders: dict[str, dict[str, int]]


class TierChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ladder_id: str
    seq: int
    account_id: str
    from_level: str | None
    to_level: str | None
    reason: str
    actor: str
    note: str | None
    value: int | None
    at: datetime


class TierChangePage(BaseModel):
    items: list[TierChangeRead]
    next_cursor: str | None
