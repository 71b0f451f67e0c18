"""Limits and budgets of the columnar evaluator, one rule at a time, on that rule's awards.

Input: a lazy frame of one rule's awards that pay a unit, in evaluation order (``_event``,
then the event-level award before the lines, lines in order, effects in order: the order in
which :func:`allegiance.rules.evaluate._cut` cuts an event's awards), with ``_member`` and
``_at``. Output: the same rows with ``amount`` cut to what the rule's limits and budget allow,
without the columns that only group them (``_member``, the member key, ``_at``): what a limit
sorts, it sorts narrow.

Closed forms, with ``cum`` the running total of the amounts in the limit's (member, period)
(plus what was used before these events):

* one ``max`` limit, or a budget alone: a row keeps ``min(cap, cum) - min(cap, cum - amount)``.
  This is exact per row, not only per event: an event's allowed total is
  ``min(cap, C) - min(cap, C - T)`` and cutting its rows in order gives each row the same
  difference over the row's own running total;
* one ``times`` limit, when the rule gives at most one row per event: a row keeps its amount
  when it is positive and among the first ``times`` positive ones;
* anything else (several limits, a limit and a budget, ``times`` over several rows): event
  totals, then one Python pass over the events the rule awarded (usually few), then the cut.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from allegiance.rules.domain import Limit, Rule
from allegiance.rules.periods import period_key_expr

Usage = Mapping[tuple[str, str, int, str], tuple[int, int]]
MEMBER_KEY = "_member_key"


def period_group_expr(period: str, time_zone: str) -> pl.Expr:
    """An integer key per period, equal for two instants exactly when :func:`period_key`
    gives them the same string (cheaper to compute and to group by than the string)."""
    if period == "lifetime":
        return pl.lit(0, dtype=pl.Int64)
    local = pl.col("_at").dt.convert_time_zone(time_zone)
    if period == "day":
        return local.dt.date().cast(pl.Int64)
    if period == "week":
        return local.dt.iso_year().cast(pl.Int64) * 100 + local.dt.week().cast(pl.Int64)
    if period == "month":
        return local.dt.year().cast(pl.Int64) * 100 + local.dt.month().cast(pl.Int64)
    if period == "quarter":
        return local.dt.year().cast(pl.Int64) * 10 + local.dt.quarter().cast(pl.Int64)
    if period == "year":
        return local.dt.year().cast(pl.Int64)
    raise ValueError(f"unknown period {period!r}")


def _used(usage: Usage, rule: Rule, index: int, which: int) -> pl.DataFrame | None:
    """What was used before these events, per (member, period key string), or None."""
    mine = {(m, k): v[which] for (m, r, i, k), v in usage.items()
            if r == rule.code and i == index}
    if not mine:
        return None
    return pl.DataFrame(
        {"_member": [m for m, _ in mine], "_pk": [k for _, k in mine],
         "_used": list(mine.values())},
        schema={"_member": pl.Utf8, "_pk": pl.Utf8, "_used": pl.Int64})


def _keyed(frame: pl.LazyFrame, rule: Rule, limit: Limit, which: int, usage: Usage,
           time_zone: str) -> pl.LazyFrame:
    """``frame`` with one integer group key ``_g`` per (member, period) of the limit and the
    earlier usage ``_used``, sorted by ``_g`` (stable: event order within a group), without
    the columns that only made the key."""
    if MEMBER_KEY in frame.collect_schema().names():
        member = pl.col(MEMBER_KEY).cast(pl.Int64)
    else:
        member = pl.col("_member").cast(pl.Categorical).to_physical().cast(pl.Int64)
    period = period_group_expr(limit.period, time_zone) + (1 << 31)
    keyed = frame.with_columns((member * (1 << 32) + period).alias("_g"))
    used = _used(usage, rule, 0, which)
    if used is None:
        keyed = keyed.with_columns(pl.lit(0, dtype=pl.Int64).alias("_used"))
    else:
        # Earlier usage is keyed by the period's string.
        keyed = keyed.with_columns(period_key_expr(limit.period, time_zone).alias("_pk")).join(
            used.lazy(), on=["_member", "_pk"], how="left", maintain_order="left",
        ).with_columns(pl.col("_used").fill_null(0))
    grouping = [c for c in ("_member", MEMBER_KEY, "_at", "_pk")
                if c in keyed.collect_schema().names()]
    return keyed.drop(grouping).sort("_g", maintain_order=True)


def _running(value: pl.Expr) -> pl.Expr:
    """Running sum of ``value`` within each ``_g`` group of a frame sorted by ``_g`` (a
    window ``cum_sum().over`` gives the same, several times slower)."""
    cum = value.cum_sum()
    start = (pl.col("_g") != pl.col("_g").shift(1)).fill_null(True)
    return cum - pl.when(start).then(cum - value).forward_fill()


def _capped(amount: pl.Expr, cum: pl.Expr, cap: pl.Expr) -> pl.Expr:
    return (pl.min_horizontal(cap, cum) - pl.min_horizontal(cap, cum - amount)).clip(
        lower_bound=0)


def closed_form(rule: Rule, one_row_per_event: bool) -> bool:
    """Whether :func:`apply_limits` cuts the rule's rows with a closed form (else it needs
    the event totals, the member strings and one Python pass)."""
    if not rule.limits:
        return rule.budget is not None
    if len(rule.limits) != 1 or rule.budget is not None:
        return False
    limit = rule.limits[0]
    if limit.max is not None:
        return limit.times is None
    return one_row_per_event


def apply_limits(rule: Rule, frame: pl.LazyFrame, *, one_row_per_event: bool,
                 time_zone: str, usage: Usage, budget_left: Mapping[str, int]) -> pl.LazyFrame:
    """``frame`` (one rule's unit awards in evaluation order) with amounts cut, without its
    grouping columns; the rows may come out in another order."""
    columns = [c for c in frame.collect_schema().names() if c not in ("_member", MEMBER_KEY,
                                                                       "_at")]
    amount = pl.col("amount")
    if not closed_form(rule, one_row_per_event):
        return _by_event_totals(rule, frame, columns, time_zone, usage, budget_left)
    if not rule.limits and rule.budget is not None:
        budget = pl.lit(budget_left.get(rule.code, rule.budget), dtype=pl.Int64)
        return frame.with_columns(
            _capped(amount, amount.cum_sum(), budget).alias("amount")).select(columns)
    limit = rule.limits[0]
    if limit.max is not None:
        keyed = _keyed(frame, rule, limit, 0, usage, time_zone)
        cum = _running(amount) + pl.col("_used")
        return keyed.with_columns(
            _capped(amount, cum, pl.lit(limit.max, dtype=pl.Int64)).alias("amount")
        ).select(columns)
    assert limit.times is not None
    keyed = _keyed(frame, rule, limit, 1, usage, time_zone)
    positive = amount > 0
    rank = _running(positive.cast(pl.Int64)) + pl.col("_used")
    return keyed.with_columns(
        pl.when(positive & (rank <= limit.times)).then(amount).otherwise(0).alias("amount")
    ).select(columns)


def _by_event_totals(rule: Rule, frame: pl.LazyFrame, columns: list[str], time_zone: str,
                     usage: Usage, budget_left: Mapping[str, int]) -> pl.LazyFrame:
    """The general case: each event's total, what the rule allows of it (one pass in event
    order, as the per-event evaluator does), and the cut of the event's rows in order."""
    periods = sorted({limit.period for limit in rule.limits})
    totals = frame.group_by("_event", maintain_order=True).agg(
        pl.col("amount").sum().alias("_total"), pl.col("_member").first(),
        pl.col("_at").first(),
    ).with_columns(
        *[period_key_expr(p, time_zone).alias(f"_p_{p}") for p in periods]
    ).collect()
    allowed = _allowed_sequential(rule, totals, periods, usage, budget_left)
    allowed_frame = pl.DataFrame({"_event": totals["_event"], "_allowed": allowed})
    before = pl.col("amount").cum_sum().over("_event") - pl.col("amount")
    return frame.join(allowed_frame.lazy(), on="_event", how="left",
                      maintain_order="left").with_columns(
        pl.min_horizontal(pl.col("amount"), (pl.col("_allowed") - before).clip(lower_bound=0))
        .alias("amount")
    ).select(columns)


def _allowed_sequential(rule: Rule, totals: pl.DataFrame, periods: list[str], usage: Usage,
                        budget_left: Mapping[str, int]) -> pl.Series:
    running: dict[tuple[str, str, int, str], tuple[int, int]] = {}
    left = budget_left.get(rule.code, rule.budget) if rule.budget is not None else None
    allowed_values = []
    period_columns = {p: totals[f"_p_{p}"].to_list() for p in periods}
    rows = zip(totals["_total"].to_list(), totals["_member"].to_list(), strict=True)
    for row, (total, member) in enumerate(rows):
        allowed = int(total)
        keys = []
        for index, limit in enumerate(rule.limits):
            key = (str(member), rule.code, index, str(period_columns[limit.period][row]))
            keys.append(key)
            used_amount, used_times = running.get(key, usage.get(key, (0, 0)))
            if limit.times is not None and used_times >= limit.times:
                allowed = 0
            if limit.max is not None:
                allowed = min(allowed, max(0, limit.max - used_amount))
        if left is not None:
            allowed = min(allowed, max(0, left))
            left -= allowed
        for key in keys:
            used_amount, used_times = running.get(key, usage.get(key, (0, 0)))
            running[key] = (used_amount + allowed, used_times + (1 if allowed > 0 else 0))
        allowed_values.append(allowed)
    return pl.Series("_allowed", allowed_values, dtype=pl.Int64)
