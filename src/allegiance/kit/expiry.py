"""Expiry policies of points and the calendar arithmetic they need (program time zones)."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ExpiryPolicy:
    """When an earned lot expires. ``kind``: never, after_months, end_of_period, inactivity."""

    kind: str = "never"
    months: int = 0
    period: str = "year"
    periods_after: int = 0

    @staticmethod
    def from_dict(data: Mapping[str, Any] | None) -> ExpiryPolicy:
        if not data:
            return ExpiryPolicy()
        kind = str(data.get("kind", "never"))
        if kind not in ("never", "after_months", "end_of_period", "inactivity"):
            raise ValueError(f"unknown expiry policy kind {kind!r}")
        months = int(data.get("months", 0))
        period = str(data.get("period", "year"))
        periods_after = int(data.get("periods_after", 0))
        if kind in ("after_months", "inactivity") and months <= 0:
            raise ValueError(f"expiry policy {kind} needs months > 0")
        if kind == "end_of_period" and period not in ("month", "quarter", "year"):
            raise ValueError("expiry period must be month, quarter or year")
        if periods_after < 0:
            raise ValueError("periods_after must not be negative")
        return ExpiryPolicy(kind, months, period, periods_after)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "never":
            return {"kind": "never"}
        if self.kind in ("after_months", "inactivity"):
            return {"kind": self.kind, "months": self.months}
        return {"kind": self.kind, "period": self.period, "periods_after": self.periods_after}

    @property
    def creates_lots(self) -> bool:
        return self.kind != "never"


def add_months(moment: datetime, months: int) -> datetime:
    """Same day-of-month ``months`` later, clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def lot_expiry(policy: ExpiryPolicy, earned_at: datetime, time_zone: str) -> datetime | None:
    """The instant a lot earned at ``earned_at`` expires (None: never, or by inactivity).

    Period ends are midnight at the start of the next period in the program's time zone.
    """
    if policy.kind == "after_months":
        return add_months(earned_at, policy.months)
    if policy.kind != "end_of_period":
        return None
    zone = ZoneInfo(time_zone)
    local = earned_at.astimezone(zone)
    step = {"month": 1, "quarter": 3, "year": 12}[policy.period]
    if policy.period == "month":
        start_month = local.month
    elif policy.period == "quarter":
        start_month = (local.month - 1) // 3 * 3 + 1
    else:
        start_month = 1
    period_start = local.replace(
        month=start_month, day=1, hour=0, minute=0, second=0, microsecond=0
    ).replace(tzinfo=None)
    end_naive = add_months(period_start, step * (1 + policy.periods_after))
    return end_naive.replace(tzinfo=zone)


def inactivity_deadline(policy: ExpiryPolicy, last_activity_at: datetime) -> datetime | None:
    if policy.kind != "inactivity":
        return None
    return add_months(last_activity_at, policy.months)
