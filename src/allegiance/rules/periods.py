"""Period keys for limits ("2026-03", "2026-Q1", "2026-W09"…) in the program's time zone —
the same strings from Python and from Polars."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl


def period_key(period: str, at: datetime, time_zone: str = "UTC") -> str:
    if period == "lifetime":
        return "all"
    local = at.astimezone(ZoneInfo(time_zone))
    if period == "day":
        return local.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if period == "month":
        return local.strftime("%Y-%m")
    if period == "quarter":
        return f"{local.year:04d}-Q{(local.month - 1) // 3 + 1}"
    if period == "year":
        return f"{local.year:04d}"
    raise ValueError(f"unknown period {period!r}")


def period_key_expr(period: str, time_zone: str = "UTC", column: str = "_at") -> pl.Expr:
    if period == "lifetime":
        return pl.lit("all")
    local = pl.col(column).dt.convert_time_zone(time_zone)
    if period == "day":
        return local.dt.strftime("%Y-%m-%d")
    if period == "week":
        return pl.format("{}-W{}", local.dt.iso_year().cast(pl.Utf8).str.zfill(4),
                         local.dt.week().cast(pl.Utf8).str.zfill(2))
    if period == "month":
        return local.dt.strftime("%Y-%m")
    if period == "quarter":
        return pl.format("{}-Q{}", local.dt.year().cast(pl.Utf8).str.zfill(4),
                         local.dt.quarter().cast(pl.Utf8))
    if period == "year":
        return local.dt.year().cast(pl.Utf8).str.zfill(4)
    raise ValueError(f"unknown period {period!r}")
