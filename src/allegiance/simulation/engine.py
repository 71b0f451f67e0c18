"""The simulation proper, on frames: evaluate a period's events under two program definitions
with the columnar evaluator and compare what each would have issued. No database here.

Input: a *lines frame* as :func:`allegiance.rules.evaluate_frame` takes it (one row per
purchase line, ``_event`` 0..n-1 in time order, ``_member`` the account id, the ``event.*``,
``member.*`` and ``line.*`` fields). Output: a :class:`Comparison` of plain values.

Rules whose awards cannot differ between the two definitions are evaluated once: when both
definitions have the same exclusive and multiplier rules, a non-multiplier rule that is the
same in both (same trigger, condition, effects, limits, budget, priority) earns the same
awards in both (limits and budgets are per rule; exclusivity and multipliers are the only
ways rules affect each other), so only the rules that differ are evaluated for each side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl

from allegiance import rules, tiers

POINTS_METRIC = "points_earned"


@dataclass(frozen=True)
class Unit:
    code: str
    kind: str  # points | money
    value_in_base: Decimal


@dataclass(frozen=True)
class Side:
    """One program definition under simulation."""

    name: str
    compiled: rules.CompiledProgram
    units: Mapping[str, Unit]
    ladders: tuple[tiers.Ladder, ...]
    time_zone: str


@dataclass
class Comparison:
    events: int
    members: int
    baseline: dict[str, Any] = field(default_factory=dict)
    draft: dict[str, Any] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    tiers: list[dict[str, Any]] = field(default_factory=list)
    top_earners: list[dict[str, Any]] = field(default_factory=list)
    tier_changes: list[dict[str, Any]] = field(default_factory=list)
    daily: dict[str, list[Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _interacting(compiled: rules.CompiledProgram) -> tuple[rules.Rule, ...]:
    return tuple(sorted((r for r in compiled.rules if r.is_multiplier or r.stacking ==
                         "exclusive"), key=lambda r: r.code))


def split_rules(baseline: rules.CompiledProgram,
                draft: rules.CompiledProgram) -> tuple[list[str], list[str], list[str]]:
    """(shared, baseline-only, draft-only) codes of the rules that earn (multipliers earn
    nothing of their own): shared rules earn the same awards under both definitions and are
    evaluated once."""
    earning_base = [r for r in baseline.rules if not r.is_multiplier]
    earning_draft = [r for r in draft.rules if not r.is_multiplier]
    if _interacting(baseline) != _interacting(draft):
        return [], [r.code for r in earning_base], [r.code for r in earning_draft]
    draft_rules = {r.code: r for r in earning_draft}
    shared = [r.code for r in earning_base if draft_rules.get(r.code) == r]
    own = set(shared)
    return (shared, [r.code for r in earning_base if r.code not in own],
            [r.code for r in earning_draft if r.code not in own])


def _evaluate(compiled: rules.CompiledProgram, codes: Sequence[str], lines: pl.DataFrame,
              time_zone: str) -> pl.DataFrame:
    """Awards of the rules ``codes``, evaluated with every exclusive and multiplier rule of
    the program (they shape the others' awards); only ``codes``' awards are kept."""
    wanted = set(codes)
    if not wanted:
        return pl.DataFrame(schema={"_event": pl.Int64, "_line": pl.Int64, "rule": pl.Utf8,
                                    "effect": pl.Int64, "type": pl.Utf8, "unit": pl.Utf8,
                                    "amount": pl.Int64})
    chosen = [r for r in compiled.rules if r.code in wanted or r.is_multiplier
              or r.stacking == "exclusive"]
    awards = rules.evaluate_frame(chosen, lines, time_zone=time_zone)
    return awards.filter(pl.col("rule").is_in(list(wanted)))


def evaluate_sides(baseline: Side, draft: Side,
                   lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The awards of both sides (``_event, _line, rule, effect, type, unit, amount``)."""
    shared, only_base, only_draft = split_rules(baseline.compiled, draft.compiled)
    common = _evaluate(baseline.compiled, shared, lines, baseline.time_zone)
    base = _evaluate(baseline.compiled, only_base, lines, baseline.time_zone)
    drafted = _evaluate(draft.compiled, only_draft, lines, draft.time_zone)
    return pl.concat([common, base]), pl.concat([common, drafted])


def _valued(side: Side, awards: pl.DataFrame, members: pl.Series,
            days: pl.Series) -> pl.DataFrame:
    """Awards that pay a unit, with the member, the local day and the value in base
    currency (``members`` and ``days`` are indexed by event)."""
    units = pl.DataFrame(
        {"unit": list(side.units), "_kind": [u.kind for u in side.units.values()],
         "_value": [float(u.value_in_base) for u in side.units.values()]},
        schema={"unit": pl.Utf8, "_kind": pl.Utf8, "_value": pl.Float64})
    paid = awards.filter(pl.col("unit").is_not_null() & (pl.col("amount") > 0))
    index = paid["_event"]
    return paid.join(units, on="unit", how="left").with_columns(
        (pl.col("amount") * pl.col("_value").fill_null(0.0)).alias("_cost"),
        members.gather(index).alias("_member"), days.gather(index).alias("_day"),
    )


def _metric_values(side: Side, ladder: tiers.Ladder, awards: pl.DataFrame,
                   valued: pl.DataFrame, members: pl.Series) -> pl.DataFrame | None:
    """(_member, value) of the ladder's metric over the period, or None when the metric is
    not earned by events (reported metrics, certifications)."""
    if ladder.metric == POINTS_METRIC:
        return valued.filter(pl.col("_kind") == "points").group_by("_member").agg(
            pl.col("amount").sum().alias("value"))
    effects = [(r.code, i) for r in side.compiled.rules for i, e in enumerate(r.effects)
               if e.type == "tier_credit" and str(e.data.get("metric")) == ladder.metric]
    if ladder.metric not in ("spend", "count"):
        return None
    if not effects:
        return pl.DataFrame(schema={"_member": pl.Utf8, "value": pl.Int64})
    keys = pl.DataFrame({"rule": [c for c, _ in effects], "effect": [i for _, i in effects]},
                        schema={"rule": pl.Utf8, "effect": pl.Int64})
    credits = awards.filter(pl.col("type") == "tier_credit").join(keys, on=["rule", "effect"])
    return credits.with_columns(members.gather(credits["_event"]).alias("_member")).group_by(
        "_member").agg(pl.col("amount").sum().alias("value"))


def _levels(ladder: tiers.Ladder, values: pl.DataFrame, everyone: pl.Series) -> pl.DataFrame:
    """(_member, level) for every member of the period; level None when none is reached."""
    frame = pl.DataFrame({"_member": everyone}).join(values, on="_member", how="left")
    thresholds = [(level.code, level.threshold) for level in ladder.levels]
    level: pl.Expr = pl.lit(None, dtype=pl.Utf8)
    for code, threshold in thresholds:  # ascending: the last level reached wins
        level = pl.when(pl.col("value").fill_null(0) >= threshold).then(pl.lit(code)) \
            .otherwise(level)
    return frame.select("_member", level.alias("level"))


def _totals(side: Side, valued: pl.DataFrame, liability: Mapping[str, int],
            recorded: Mapping[str, int]) -> dict[str, Any]:
    by_unit = {u: 0 for u in side.units}
    for unit, amount in valued.group_by("unit").agg(pl.col("amount").sum()).iter_rows():
        by_unit[str(unit)] = int(amount)
    cost = sum((Decimal(by_unit[u]) * side.units[u].value_in_base for u in by_unit
                if u in side.units), Decimal(0))
    end = {u: int(liability.get(u, 0)) - int(recorded.get(u, 0)) + by_unit.get(u, 0)
           for u in sorted(set(by_unit) | set(liability))}
    end_cost = sum((Decimal(v) * side.units[u].value_in_base for u, v in end.items()
                    if u in side.units), Decimal(0))
    return {"issued": by_unit, "cost": str(cost.quantize(Decimal("0.01"))),
            "liability_end": end, "liability_end_cost": str(end_cost.quantize(Decimal("0.01"))),
            "awards": valued.height}


def compare(baseline: Side, draft: Side, lines: pl.DataFrame, *, top: int = 10,
            liability: Mapping[str, int] | None = None,
            recorded: Mapping[str, int] | None = None,
            labels: Mapping[str, str] | None = None) -> Comparison:
    """Evaluate ``lines`` under both sides and compare. ``liability``: the member liability
    per unit at the period's end as recorded; ``recorded``: what the period's events earned
    per unit as recorded (the simulated issue replaces it). ``labels``: member -> label."""
    import time

    liability, recorded, labels = liability or {}, recorded or {}, labels or {}
    started = time.perf_counter()
    events = lines.filter(pl.col("_line").is_null() | (pl.col("_line") == 0)).select(
        "_event", "_member", "_at").sort("_event")
    members = events["_member"]
    everyone = members.unique().sort()
    out = Comparison(events=events.height, members=everyone.len())
    base_awards, draft_awards = evaluate_sides(baseline, draft, lines)
    out.seconds["evaluate"] = time.perf_counter() - started
    days = events["_at"].dt.convert_time_zone(draft.time_zone).dt.date()
    base_valued = _valued(baseline, base_awards, members, days)
    draft_valued = _valued(draft, draft_awards, members, days)
    out.baseline = _totals(baseline, base_valued, liability, recorded)
    out.draft = _totals(draft, draft_valued, liability, recorded)
    out.rules = _per_rule(base_valued, draft_valued)
    out.top_earners = _top(base_valued, draft_valued, top, labels)
    out.daily = _daily(days, base_valued, draft_valued)
    _tiers(out, baseline, draft, base_awards, draft_awards, base_valued, draft_valued, members,
           everyone, top, labels)
    out.seconds["total"] = time.perf_counter() - started
    return out


def _per_rule(base: pl.DataFrame, draft: pl.DataFrame) -> list[dict[str, Any]]:
    def sums(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.group_by("rule", "unit").agg(
            pl.col("amount").sum().alias("issued"), pl.col("_cost").sum().alias("cost"),
            pl.col("_event").n_unique().alias("events"))
    joined = sums(base).join(sums(draft), on=["rule", "unit"], how="full", coalesce=True,
                             suffix="_draft").fill_null(0).sort("rule", "unit")
    return [{"rule": r["rule"], "unit": r["unit"], "baseline": int(r["issued"]),
             "draft": int(r["issued_draft"]), "change": int(r["issued_draft"] - r["issued"]),
             "baseline_cost": round(float(r["cost"]), 2),
             "draft_cost": round(float(r["cost_draft"]), 2),
             "baseline_events": int(r["events"]), "draft_events": int(r["events_draft"])}
            for r in joined.iter_rows(named=True)]


def _top(base: pl.DataFrame, draft: pl.DataFrame, top: int,
         labels: Mapping[str, str]) -> list[dict[str, Any]]:
    def sums(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.group_by("_member").agg(pl.col("_cost").sum().alias("cost"),
                                             pl.col("amount").sum().alias("issued"))
    joined = sums(draft).join(sums(base), on="_member", how="full", coalesce=True,
                              suffix="_baseline").fill_null(0)
    best = joined.sort(["cost", "_member"], descending=[True, False]).head(top)
    return [{"member": r["_member"], "label": labels.get(r["_member"], r["_member"]),
             "draft_issued": int(r["issued"]), "baseline_issued": int(r["issued_baseline"]),
             "draft_cost": round(float(r["cost"]), 2),
             "baseline_cost": round(float(r["cost_baseline"]), 2)}
            for r in best.iter_rows(named=True)]


def _daily(days: pl.Series, base: pl.DataFrame,
           draft: pl.DataFrame) -> dict[str, list[Any]]:
    """Cost in base currency per local day, both sides (for the chart)."""
    def per_day(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.group_by("_day").agg(pl.col("_cost").sum())
    every = pl.DataFrame({"_day": days.unique().sort()})
    joined = every.join(per_day(base), on="_day", how="left").join(
        per_day(draft), on="_day", how="left", suffix="_draft").fill_null(0.0)
    return {"day": [d.isoformat() for d in joined["_day"]],
            "baseline_cost": [round(float(v), 2) for v in joined["_cost"]],
            "draft_cost": [round(float(v), 2) for v in joined["_cost_draft"]]}


def _tiers(out: Comparison, baseline: Side, draft: Side, base_awards: pl.DataFrame,
           draft_awards: pl.DataFrame, base_valued: pl.DataFrame, draft_valued: pl.DataFrame,
           members: pl.Series, everyone: pl.Series, top: int,
           labels: Mapping[str, str]) -> None:
    base_ladders = {ladder.code: ladder for ladder in baseline.ladders}
    for ladder in draft.ladders:
        old = base_ladders.get(ladder.code)
        new_values = _metric_values(draft, ladder, draft_awards, draft_valued, members)
        old_values = None if old is None else _metric_values(baseline, old, base_awards,
                                                              base_valued, members)
        if new_values is None or (old is not None and old_values is None):
            out.notes.append(f"ladder {ladder.code}: metric {ladder.metric} is not earned by "
                             "events; not simulated")
            continue
        after = _levels(ladder, new_values, everyone)
        before = (_levels(old, old_values, everyone) if old is not None and
                  old_values is not None else after.with_columns(
                      pl.lit(None, dtype=pl.Utf8).alias("level")))
        both = before.join(after, on="_member", suffix="_draft")
        moves = both.group_by("level", "level_draft").len().sort("level", "level_draft",
                                                                 nulls_last=True)
        ranks = {level.code: i for i, level in enumerate(ladder.levels)}
        changed = both.filter(pl.col("level").ne_missing(pl.col("level_draft")))
        out.tiers.append({
            "ladder": ladder.code, "metric": ladder.metric,
            "baseline": _distribution(before["level"]),
            "draft": _distribution(after["level"]),
            "movements": [{"from": a, "to": b, "members": int(n)}
                          for a, b, n in moves.iter_rows()],
            "up": sum(1 for a, b in changed.select("level", "level_draft").iter_rows()
                      if ranks.get(b or "", -1) > ranks.get(a or "", -1)),
            "down": sum(1 for a, b in changed.select("level", "level_draft").iter_rows()
                        if ranks.get(b or "", -1) < ranks.get(a or "", -1)),
        })
        out.tier_changes.extend(
            {"ladder": ladder.code, "member": m, "label": labels.get(m, m), "baseline": a,
             "draft": b}
            for m, a, b in changed.sort("_member").head(max(top, 0) * 10).iter_rows())


def _distribution(levels: pl.Series) -> dict[str, int]:
    counts = levels.fill_null("(none)").value_counts()
    return {str(k): int(v) for k, v in counts.sort(counts.columns[0]).iter_rows()}
