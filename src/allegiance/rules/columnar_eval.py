"""Columnar evaluation of a program's rules over many events at once (bulk import,
simulation). Gives exactly the awards of :func:`allegiance.rules.evaluate.evaluate` applied
to the events one by one in order (a property test holds the two together).

Input: a *lines frame* with one row per purchase line (events without lines have one row
with ``_line`` null) and the columns
``_event`` (0..n-1, in time order), ``_member``, ``_at`` (UTC datetime), ``_kind``,
``_activity_type``, ``_line`` and the ``event.*``, ``member.*`` and ``line.*`` fields.
Output: an *awards frame* ``_event, _line, rule, effect, type, unit, amount``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from allegiance.kit.money import Rounding
from allegiance.rules.columnar import to_polars
from allegiance.rules.domain import AWARD_TYPES, Ratio, Rule, order
from allegiance.rules.periods import period_key_expr

AWARD_SCHEMA = {
    "_event": pl.Int64, "_line": pl.Int64, "rule": pl.Utf8, "effect": pl.Int64,
    "type": pl.Utf8, "unit": pl.Utf8, "amount": pl.Int64,
}


def _divide(numerator: pl.Expr, den: int, rounding: Rounding) -> pl.Expr:
    """Vector twin of :func:`allegiance.rules.domain.divide` for non-negative numerators."""
    if rounding in (Rounding.DOWN, Rounding.FLOOR):
        return numerator // den
    if rounding is Rounding.UP:
        return -((-numerator) // den)
    if rounding is Rounding.HALF_UP:
        return (2 * numerator + den) // (2 * den)
    quotient = numerator // den
    twice = 2 * (numerator - quotient * den)
    bump = (twice > den) | ((twice == den) & (quotient % 2 == 1))
    return quotient + bump.cast(pl.Int64)


def _apply(ratio: Ratio, amount: pl.Expr, rounding: Rounding) -> pl.Expr:
    return _divide(amount * ratio.num, ratio.den, rounding)


def _nonneg(column: str, frame: pl.DataFrame) -> pl.Expr:
    if column not in frame.columns:
        return pl.lit(0, dtype=pl.Int64)
    return pl.col(column).cast(pl.Int64).fill_null(0).clip(lower_bound=0)


def evaluate_frame(
    rules: Sequence[Rule],
    lines: pl.DataFrame,
    *,
    time_zone: str = "UTC",
    usage: Mapping[tuple[str, str, int, str], tuple[int, int]] | None = None,
    budget_left: Mapping[str, int] | None = None,
) -> pl.DataFrame:
    """Awards for every event of ``lines``. ``usage`` is keyed by
    (member, rule, limit index, period key): what was used before these events."""
    usage = usage or {}
    budget_left = budget_left or {}
    ordered = order(rules)
    # The first row of each event (line 0, or the only row of an event without lines).
    events = lines.filter(pl.col("_line").is_null() | (pl.col("_line") == 0)).sort("_event")
    n_events = events.height
    blocked = pl.Series("blocked", [False] * n_events, dtype=pl.Boolean)
    any_blocked = False
    pieces: list[pl.DataFrame] = []
    hits: dict[str, pl.DataFrame] = {}  # rule -> matched (_event, _line) or (_event)
    line_rows = lines.filter(pl.col("_line").is_not_null())
    for rule in ordered:
        scope = line_rows if rule.line_scope else events
        if scope.height == 0:
            continue
        mask = _trigger_mask(rule)
        if any_blocked:
            mask = mask & ~pl.lit(blocked).gather(pl.col("_event"))
        if rule.condition is not None:
            mask = mask & to_polars(rule.condition).fill_null(False)
        matched = scope.filter(mask)
        if matched.height == 0:
            continue
        hits[rule.code] = matched.select("_event", "_line") if rule.line_scope else \
            matched.select("_event")
        if not rule.is_multiplier:
            pieces.extend(_base(rule, matched, events))
        if rule.stacking == "exclusive":
            hit_events = matched["_event"].unique()
            blocked = blocked.scatter(hit_events, True)
            any_blocked = True
    awards = pl.concat(pieces, how="vertical") if pieces else pl.DataFrame(schema=AWARD_SCHEMA)
    awards = _multiply(ordered, awards, hits)
    awards = _limits(ordered, awards, events, time_zone, usage, budget_left)
    keep = (pl.col("amount") > 0) | pl.col("type").is_in(["badge", "coupon"])
    # Rows come in no particular order (sort by _event, _line, rule when it matters).
    return awards.filter(keep)


def _trigger_mask(rule: Rule) -> pl.Expr:
    if rule.trigger.startswith("activity:"):
        mask = (pl.col("_kind") == "activity") & (pl.col("_activity_type") == rule.trigger[9:])
    else:
        mask = pl.col("_kind") == rule.trigger
    if rule.valid_from is not None:
        mask = mask & (pl.col("_at") >= rule.valid_from)
    if rule.valid_to is not None:
        mask = mask & (pl.col("_at") < rule.valid_to)
    return mask.fill_null(False)


def _frame(matched: pl.DataFrame, rule: Rule, index: int, kind: str, unit: str | None,
           amount: pl.Expr, per_line: bool) -> pl.DataFrame:
    line = pl.col("_line").cast(pl.Int64) if per_line else pl.lit(None, dtype=pl.Int64)
    return matched.select(
        pl.col("_event").cast(pl.Int64), line.alias("_line"), pl.lit(rule.code).alias("rule"),
        pl.lit(index, dtype=pl.Int64).alias("effect"), pl.lit(kind).alias("type"),
        pl.lit(unit, dtype=pl.Utf8).alias("unit"), amount.cast(pl.Int64).alias("amount"),
    )


def _base(rule: Rule, matched: pl.DataFrame, events: pl.DataFrame) -> list[pl.DataFrame]:
    out = []
    per_line = rule.line_scope
    first_per_event = matched.unique(subset=["_event"], keep="first", maintain_order=True)
    for index, effect in enumerate(rule.effects):
        kind = effect.type
        if kind in ("fixed", "bounty"):
            out.append(_frame(first_per_event, rule, index, kind, effect.unit,
                              pl.lit(effect.points), False))
        elif kind in ("points_per_amount", "percent", "commission"):
            assert effect.rate is not None
            column = "line.amount" if per_line else "event.amount"
            out.append(_frame(matched, rule, index, kind, effect.unit,
                              _apply(effect.rate, _nonneg(column, matched), effect.rounding),
                              per_line))
        elif kind == "points_per_item":
            column = "line.quantity" if per_line else "event.quantity"
            out.append(_frame(matched, rule, index, kind, effect.unit,
                              _nonneg(column, matched) * effect.points, per_line))
        elif kind == "tier_credit":
            metric = str(effect.data.get("metric"))
            if metric == "count":
                value: Any = first_per_event.select(pl.col("_event"), pl.lit(1).alias("v"))
            elif per_line:
                value = matched.group_by("_event", maintain_order=True).agg(
                    _nonneg("line.amount", matched).sum().alias("v"))
            else:
                value = first_per_event.select(pl.col("_event"),
                                               _nonneg("event.amount", matched).alias("v"))
            out.append(_frame(value, rule, index, kind, None, pl.col("v"), False))
        elif kind in ("badge", "coupon"):
            out.append(_frame(first_per_event, rule, index, kind, None, pl.lit(0), False))
    return out


def _multiply(ordered: Sequence[Rule], awards: pl.DataFrame,
              hits: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    for rule in ordered:
        if not rule.is_multiplier or rule.code not in hits:
            continue
        matched = hits[rule.code]
        for effect in rule.effects:
            if effect.type != "multiplier" or effect.factor is None:
                continue
            eligible = pl.col("unit").is_not_null() & pl.col("type").is_in(list(AWARD_TYPES))
            if effect.applies_to:
                eligible = eligible & pl.col("rule").is_in(list(effect.applies_to))
            if rule.line_scope:
                # (event, line) pairs as one integer key: lines per event stay below 2^20.
                hit = (pl.col("_event") * (1 << 20) + pl.col("_line")).is_in(
                    matched.select(pl.col("_event").cast(pl.Int64) * (1 << 20)
                                   + pl.col("_line").cast(pl.Int64)).to_series().implode()
                ).fill_null(False)
            else:
                hit = pl.col("_event").is_in(
                    matched["_event"].cast(pl.Int64).implode()).fill_null(False)
            scaled = _apply(effect.factor, pl.col("amount"), effect.rounding)
            awards = awards.with_columns(
                pl.when(eligible & hit).then(scaled).otherwise(pl.col("amount")).alias("amount")
            )
    return awards


def _limits(
    ordered: Sequence[Rule],
    awards: pl.DataFrame,
    events: pl.DataFrame,
    time_zone: str,
    usage: Mapping[tuple[str, str, int, str], tuple[int, int]],
    budget_left: Mapping[str, int],
) -> pl.DataFrame:
    limited = [r for r in ordered if r.limits or r.budget is not None]
    if not limited or awards.height == 0:
        return awards
    counted = awards.filter(pl.col("unit").is_not_null() & pl.col("rule").is_in(
        [r.code for r in limited]))
    if counted.height == 0:
        return awards
    totals_all = counted.group_by(["rule", "_event"]).agg(pl.col("amount").sum().alias("total"))
    periods = {limit.period for r in limited for limit in r.limits}
    needed = totals_all.select("_event").unique()
    keyed = events.join(needed, on="_event", how="semi").select(
        pl.col("_event").cast(pl.Int64), pl.col("_member"),
        *[period_key_expr(p, time_zone).alias(f"_p_{p}") for p in periods],
    )
    # One join and one sort for every limited rule; a filter keeps the event order.
    joined = totals_all.join(keyed, on="_event", how="left").sort(["rule", "_event"])
    allowed_frames = []
    for rule in limited:
        totals = joined.filter(pl.col("rule") == rule.code).drop("rule")
        if totals.height == 0:
            continue
        allowed = _allowed_vectorised(rule, totals, usage, budget_left)
        if allowed is None:
            allowed = _allowed_sequential(rule, totals, periods, usage, budget_left)
        allowed_frames.append(totals.select(
            pl.col("_event"), pl.lit(rule.code).alias("rule"), pl.col("total").alias("_total"),
            allowed.alias("_allowed"),
        ))
    allowed_all = pl.concat(allowed_frames).filter(pl.col("_allowed") < pl.col("_total"))
    if allowed_all.height == 0:
        return awards
    # Only the awards of events that a limit cut need the in-event distribution: join just
    # the rows of those events (a small part of all awards) with their allowed totals.
    touched = pl.col("_event").is_in(allowed_all["_event"].unique().implode())
    candidates = awards.filter(touched).join(allowed_all, on=["_event", "rule"], how="left")
    untouched = awards.filter(~touched).with_columns(
        pl.lit(None, dtype=pl.Int64).alias("_total"), pl.lit(None, dtype=pl.Int64).alias("_allowed"))
    cut = pl.col("_allowed").is_not_null() & pl.col("unit").is_not_null()
    cut_rows = candidates.filter(cut)
    rest = pl.concat([untouched, candidates.filter(~cut).select(untouched.columns)])
    cut_rows = cut_rows.with_columns(
        pl.col("_line").fill_null(-1).alias("_sort_line")
    ).sort(["_event", "rule", "_sort_line", "effect"]).with_columns(
        pl.col("amount").cum_sum().over(["_event", "rule"]).alias("_cum")
    )
    before = pl.col("_cum") - pl.col("amount")
    cut_rows = cut_rows.with_columns(
        pl.min_horizontal(pl.col("amount"), (pl.col("_allowed") - before).clip(lower_bound=0))
        .alias("amount")
    ).drop("_sort_line", "_cum")
    return pl.concat([rest, cut_rows.select(rest.columns)]).drop("_allowed", "_total")


def _initial(usage: Mapping[tuple[str, str, int, str], tuple[int, int]], rule: Rule,
             index: int, period: str, totals: pl.DataFrame, which: int) -> pl.Expr:
    """Usage before these events for each row's (member, period) as a column."""
    mine = {(m, k): v[which] for (m, r, i, k), v in usage.items() if r == rule.code and i == index}
    if not mine:
        return pl.lit(0, dtype=pl.Int64)
    frame = pl.DataFrame(
        {"_member": [m for m, _ in mine], f"_p_{period}": [k for _, k in mine],
         "_used": list(mine.values())},
        schema={"_member": pl.Utf8, f"_p_{period}": pl.Utf8, "_used": pl.Int64},
    )
    joined = totals.join(frame, on=["_member", f"_p_{period}"], how="left")
    return pl.lit(joined["_used"].fill_null(0))


def _allowed_vectorised(
    rule: Rule,
    totals: pl.DataFrame,
    usage: Mapping[tuple[str, str, int, str], tuple[int, int]],
    budget_left: Mapping[str, int],
) -> pl.Expr | None:
    """Closed forms for the common cases: one ``max`` limit, one ``times`` limit, or a budget
    alone. None when the rule needs the sequential evaluation."""
    total = pl.col("total")
    if not rule.limits and rule.budget is not None:
        budget = budget_left.get(rule.code, rule.budget)
        cum = total.cum_sum()
        return (pl.min_horizontal(pl.lit(budget), cum)
                - pl.min_horizontal(pl.lit(budget), cum - total)).clip(lower_bound=0)
    if len(rule.limits) != 1 or rule.budget is not None:
        return None
    limit = rule.limits[0]
    group = ["_member", f"_p_{limit.period}"]
    if limit.max is not None and limit.times is None:
        used = _initial(usage, rule, 0, limit.period, totals, 0)
        cum = total.cum_sum().over(group) + used
        cap = pl.lit(limit.max)
        return (pl.min_horizontal(cap, cum) - pl.min_horizontal(cap, cum - total)).clip(
            lower_bound=0)
    if limit.times is not None and limit.max is None:
        used = _initial(usage, rule, 0, limit.period, totals, 1)
        positive = (total > 0).cast(pl.Int64)
        rank = positive.cum_sum().over(group) + used
        return pl.when((total > 0) & (rank <= limit.times)).then(total).otherwise(0)
    return None


def _allowed_sequential(
    rule: Rule,
    totals: pl.DataFrame,
    periods: set[str],
    usage: Mapping[tuple[str, str, int, str], tuple[int, int]],
    budget_left: Mapping[str, int],
) -> pl.Expr:
    running: dict[tuple[str, str, int, str], tuple[int, int]] = {}
    left = budget_left.get(rule.code, rule.budget) if rule.budget is not None else None
    allowed_values = []
    columns = [totals[c].to_list() for c in ("total", "_member")]
    period_columns = {p: totals[f"_p_{p}"].to_list() for p in periods}
    for row, (total, member) in enumerate(zip(*columns, strict=True)):
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
    return pl.lit(pl.Series("_allowed", allowed_values, dtype=pl.Int64))
