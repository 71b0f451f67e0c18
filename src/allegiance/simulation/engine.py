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

from collections.abc import Mapping
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


Pieces = list[rules.RuleAwards]


def _evaluate_parts(baseline: Side, draft: Side, lines: pl.DataFrame
                    ) -> tuple[Pieces, Pieces, Pieces]:
    """(shared rules' awards, the baseline's own, the draft's own), lazily, one piece per
    rule: the shared rules once (with the baseline), each side's own rules with its program
    (every exclusive and multiplier rule of a program shapes its rules' awards), from one
    columnar pass that matches each distinct rule once."""
    shared, only_base, only_draft = split_rules(baseline.compiled, draft.compiled)
    common, base, drafted = rules.award_pieces([
        rules.FrameProgram(baseline.compiled.rules, shared, baseline.time_zone),
        rules.FrameProgram(baseline.compiled.rules, only_base, baseline.time_zone),
        rules.FrameProgram(draft.compiled.rules, only_draft, draft.time_zone),
    ], lines)
    return common, base, drafted


def evaluate_sides(baseline: Side, draft: Side,
                   lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The awards of both sides (``_event, _line, rule, effect, type, unit, amount``)."""
    common, base, drafted = _evaluate_parts(baseline, draft, lines)
    empty = pl.DataFrame(schema=rules.AWARD_SCHEMA).lazy()
    base_side, draft_side = (pl.concat([empty, *(p.labelled() for p in pieces)])
                             for pieces in (common + base, common + drafted))
    base_awards, draft_awards = pl.collect_all([base_side, draft_side])
    return base_awards, draft_awards


@dataclass(frozen=True)
class _Sums:
    """One side's aggregates of the awards that pay a unit."""

    per_rule: pl.DataFrame  # rule, unit, issued, cost, events, awards
    per_member: pl.DataFrame  # _member (code), cost, issued, points
    per_day: pl.DataFrame  # _day, _cost


def _valued(side: Side, piece: rules.RuleAwards) -> pl.LazyFrame:
    """A paid piece's awards valued with ``side``'s units, narrow: ``_event, unit, amount,
    _cost, _points`` (no text per row but the unit, a constant for the usual one-effect
    rule)."""
    def unit(index: int) -> Unit | None:
        code = piece.unit(index)
        return side.units.get(code) if code is not None else None

    value = piece.by_effect(lambda i: float(u.value_in_base) if (u := unit(i)) else 0.0,
                            pl.Float64)
    is_points = piece.by_effect(lambda i: (u := unit(i)) is not None and u.kind == "points",
                                pl.Boolean)
    amount = pl.col("amount")
    return piece.frame.filter(amount > 0).select(
        "_event", piece.by_effect(piece.unit).alias("unit"), "amount",
        (amount * value).alias("_cost"),
        pl.when(is_points).then(amount).otherwise(0).alias("_points"))


def _sums(rule_frames: list[tuple[str, pl.DataFrame]], members: pl.Series,
          days: pl.Series) -> list[pl.LazyFrame]:
    """The three aggregates of valued awards (``(rule, frame of _valued)``), lazily:
    per rule and unit, per member, per day. ``members`` (integer codes, see
    :func:`compare`) and ``days`` are indexed by event."""
    if not rule_frames:
        rule_frames = [("", _NO_AWARDS)]  # sums to no rule, no member, no day
    per_rule = [frame.lazy().group_by("unit").agg(
        pl.col("amount").sum().alias("issued"), pl.col("_cost").sum().alias("cost"),
        pl.col("_event").n_unique().alias("events"), pl.len().alias("awards"),
    ).select(pl.lit(rule).alias("rule"), pl.all()) for rule, frame in rule_frames]
    rows = pl.concat([frame.lazy().select("_event", "amount", "_cost", "_points")
                      for _, frame in rule_frames])
    placed = rows.with_columns(pl.lit(members).gather(pl.col("_event")).alias("_member"),
                               pl.lit(days).gather(pl.col("_event")).alias("_day"))
    return [
        pl.concat(per_rule),
        placed.group_by("_member").agg(
            pl.col("_cost").sum().alias("cost"), pl.col("amount").sum().alias("issued"),
            pl.col("_points").sum().alias("points")),
        placed.group_by("_day").agg(pl.col("_cost").sum()),
    ]


def _combined(parts: list[list[pl.DataFrame]]) -> _Sums:
    """The sums of disjoint parts of one side's awards (no rule is in two parts)."""
    per_rule, per_member, per_day = (pl.concat([p[i] for p in parts]) for i in range(3))
    return _Sums(
        per_rule.group_by("rule", "unit").agg(
            pl.col("issued", "cost", "events").sum(), pl.col("awards").sum().cast(pl.Int64)),
        per_member.group_by("_member").agg(pl.col("cost", "issued", "points").sum()),
        per_day.group_by("_day").agg(pl.col("_cost").sum()),
    )


def _side_sums(baseline: Side, draft: Side, parts: tuple[Pieces, Pieces, Pieces],
               members: pl.Series, days: pl.Series) -> tuple[_Sums, _Sums]:
    """Both sides' sums; the shared rules' awards are valued and summed once when both
    sides value the units alike (the usual case: a draft changes rules, not units). The
    rules' awards are computed here (their pieces are lazy), all in one parallel pass that
    keeps only the narrow valued rows."""
    common, base, drafted = parts
    jobs = [(baseline, common), (baseline, base), (draft, drafted)]
    if baseline.units != draft.units:
        jobs.append((draft, common))
    paid = [[p for p in pieces if p.paid] for _, pieces in jobs]
    valued = pl.collect_all([_valued(side, p) for (side, _), pieces in zip(jobs, paid,
                                                                            strict=True)
                             for p in pieces])
    queries: list[pl.LazyFrame] = []
    for pieces in paid:
        taken, valued = valued[:len(pieces)], valued[len(pieces):]
        queries.extend(_sums([(p.rule.code, frame) for p, frame in zip(pieces, taken,
                                                                         strict=True)],
                             members, days))
    done = pl.collect_all(queries)
    results = [done[i:i + 3] for i in range(0, len(done), 3)]
    draft_common = results[3] if len(results) > 3 else results[0]
    return _combined([results[0], results[1]]), _combined([draft_common, results[2]])


_NO_AWARDS = pl.DataFrame(schema={"_event": pl.Int64, "unit": pl.Utf8, "amount": pl.Int64,
                                  "_cost": pl.Float64, "_points": pl.Int64})


def _metric_values(side: Side, ladder: tiers.Ladder, pieces: Pieces,
                   per_member: pl.DataFrame, members: pl.Series) -> pl.DataFrame | None:
    """(_member, value) of the ladder's metric over the period, or None when the metric is
    not earned by events (reported metrics, certifications)."""
    if ladder.metric == POINTS_METRIC:
        return per_member.select("_member", pl.col("points").alias("value"))
    effects = {(r.code, i) for r in side.compiled.rules for i, e in enumerate(r.effects)
               if e.type == "tier_credit" and str(e.data.get("metric")) == ladder.metric}
    if ladder.metric not in ("spend", "count"):
        return None
    credits = [piece.frame.filter(pl.col("effect").is_in(wanted)).select("_event", "amount")
               for piece in pieces
               if (wanted := [i for i in piece.effects if (piece.rule.code, i) in effects])]
    if not credits:
        return pl.DataFrame(schema={"_member": members.dtype, "value": pl.Int64})
    return pl.concat(credits).with_columns(
        pl.lit(members).gather(pl.col("_event")).alias("_member")).group_by("_member").agg(
        pl.col("amount").sum().alias("value")).collect()


def _levels(ladder: tiers.Ladder, values: pl.DataFrame, everyone: pl.Series) -> pl.DataFrame:
    """(_member, level) for every member of the period; level None when none is reached."""
    frame = pl.DataFrame({"_member": everyone}).join(values, on="_member", how="left")
    thresholds = [(level.code, level.threshold) for level in ladder.levels]
    level: pl.Expr = pl.lit(None, dtype=pl.Utf8)
    for code, threshold in thresholds:  # ascending: the last level reached wins
        level = pl.when(pl.col("value").fill_null(0) >= threshold).then(pl.lit(code)) \
            .otherwise(level)
    return frame.select("_member", level.alias("level"))


def _totals(side: Side, sums: _Sums, liability: Mapping[str, int],
            recorded: Mapping[str, int]) -> dict[str, Any]:
    by_unit = {u: 0 for u in side.units}
    for unit, amount in sums.per_rule.group_by("unit").agg(pl.col("issued").sum()).iter_rows():
        by_unit[str(unit)] = int(amount)
    cost = sum((Decimal(by_unit[u]) * side.units[u].value_in_base for u in by_unit
                if u in side.units), Decimal(0))
    end = {u: int(liability.get(u, 0)) - int(recorded.get(u, 0)) + by_unit.get(u, 0)
           for u in sorted(set(by_unit) | set(liability))}
    end_cost = sum((Decimal(v) * side.units[u].value_in_base for u, v in end.items()
                    if u in side.units), Decimal(0))
    return {"issued": by_unit, "cost": str(cost.quantize(Decimal("0.01"))),
            "liability_end": end, "liability_end_cost": str(end_cost.quantize(Decimal("0.01"))),
            "awards": int(sums.per_rule["awards"].sum())}


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
    # The columns first: filtering the whole lines frame copies every column.
    events = lines.lazy().select("_event", "_member", "_at", "_line").filter(
        pl.col("_line").is_null() | (pl.col("_line") == 0)).drop("_line").sort(
        "_event").collect()
    # Members as integer codes for the group-bys (strings are several times slower to
    # group); ``names`` maps the codes back for the output.
    members = events["_member"].cast(pl.Categorical).to_physical().alias("_member")
    names = pl.DataFrame({"_member": members, "_name": events["_member"]}).unique("_member")
    everyone = names["_member"].sort()
    out = Comparison(events=events.height, members=everyone.len())
    # The members' codes by event (``_event`` is 0..n-1) as the evaluator's member key: its
    # limits group by it instead of coding the member strings again.
    keyed = lines.with_columns(
        pl.lit(members).gather(pl.col("_event")).cast(pl.Int64).alias(rules.MEMBER_KEY))
    parts = _evaluate_parts(baseline, draft, keyed)
    days = events["_at"].dt.convert_time_zone(draft.time_zone).dt.date()
    base_sums, draft_sums = _side_sums(baseline, draft, parts, members, days)
    # The rules' awards are computed while they are valued and summed.
    out.seconds["evaluate"] = time.perf_counter() - started
    out.baseline = _totals(baseline, base_sums, liability, recorded)
    out.draft = _totals(draft, draft_sums, liability, recorded)
    out.rules = _per_rule(base_sums.per_rule, draft_sums.per_rule)
    out.top_earners = _top(base_sums.per_member, draft_sums.per_member, top, labels, names)
    out.daily = _daily(days, base_sums.per_day, draft_sums.per_day)
    base_awards, draft_awards = parts[0] + parts[1], parts[0] + parts[2]
    _tiers(out, baseline, draft, base_awards, draft_awards, base_sums.per_member,
           draft_sums.per_member, members, everyone, top, labels, names)
    out.seconds["total"] = time.perf_counter() - started
    return out


def _per_rule(base: pl.DataFrame, draft: pl.DataFrame) -> list[dict[str, Any]]:
    columns = ["rule", "unit", "issued", "cost", "events"]
    joined = base.select(columns).join(draft.select(columns), on=["rule", "unit"], how="full",
                                       coalesce=True, suffix="_draft").fill_null(0).sort(
        "rule", "unit")
    return [{"rule": r["rule"], "unit": r["unit"], "baseline": int(r["issued"]),
             "draft": int(r["issued_draft"]), "change": int(r["issued_draft"] - r["issued"]),
             "baseline_cost": round(float(r["cost"]), 2),
             "draft_cost": round(float(r["cost_draft"]), 2),
             "baseline_events": int(r["events"]), "draft_events": int(r["events_draft"])}
            for r in joined.iter_rows(named=True)]


def _top(base: pl.DataFrame, draft: pl.DataFrame, top: int, labels: Mapping[str, str],
         names: pl.DataFrame) -> list[dict[str, Any]]:
    def sums(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select("_member", "cost", "issued")
    joined = sums(draft).join(sums(base), on="_member", how="full", coalesce=True,
                              suffix="_baseline").fill_null(0)
    # Ties by member id: only the members with the top costs need their names.
    cut = joined["cost"].top_k(max(top, 0)).min() if top > 0 and joined.height else None
    if cut is not None:
        joined = joined.filter(pl.col("cost") >= cut)
    joined = joined.join(names, on="_member", how="left").with_columns(
        pl.col("_name").alias("_member"))
    best = joined.sort(["cost", "_member"], descending=[True, False]).head(top)
    return [{"member": r["_member"], "label": labels.get(r["_member"], r["_member"]),
             "draft_issued": int(r["issued"]), "baseline_issued": int(r["issued_baseline"]),
             "draft_cost": round(float(r["cost"]), 2),
             "baseline_cost": round(float(r["cost_baseline"]), 2)}
            for r in best.iter_rows(named=True)]


def _daily(days: pl.Series, base: pl.DataFrame,
           draft: pl.DataFrame) -> dict[str, list[Any]]:
    """Cost in base currency per local day, both sides (for the chart)."""
    every = pl.DataFrame({"_day": days.unique().sort()})
    joined = every.join(base, on="_day", how="left").join(
        draft, on="_day", how="left", suffix="_draft").fill_null(0.0)
    return {"day": [d.isoformat() for d in joined["_day"]],
            "baseline_cost": [round(float(v), 2) for v in joined["_cost"]],
            "draft_cost": [round(float(v), 2) for v in joined["_cost_draft"]]}


def _tiers(out: Comparison, baseline: Side, draft: Side, base_awards: Pieces,
           draft_awards: Pieces, base_members: pl.DataFrame,
           draft_members: pl.DataFrame, members: pl.Series, everyone: pl.Series, top: int,
           labels: Mapping[str, str], names: pl.DataFrame) -> None:
    base_ladders = {ladder.code: ladder for ladder in baseline.ladders}
    for ladder in draft.ladders:
        old = base_ladders.get(ladder.code)
        new_values = _metric_values(draft, ladder, draft_awards, draft_members, members)
        old_values = None if old is None else _metric_values(baseline, old, base_awards,
                                                              base_members, members)
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
        rank_before, rank_after = (
            pl.col(c).replace_strict(ranks, default=-1, return_dtype=pl.Int64).fill_null(-1)
            for c in ("level", "level_draft"))
        moved = changed.select((rank_after > rank_before).sum().alias("up"),
                               (rank_after < rank_before).sum().alias("down")).row(0)
        out.tiers.append({
            "ladder": ladder.code, "metric": ladder.metric,
            "baseline": _distribution(before["level"]),
            "draft": _distribution(after["level"]),
            "movements": [{"from": a, "to": b, "members": int(n)}
                          for a, b, n in moves.iter_rows()],
            "up": int(moved[0]), "down": int(moved[1]),
        })
        named = changed.join(names, on="_member", how="left").select(
            pl.col("_name").alias("_member"), "level", "level_draft")
        out.tier_changes.extend(
            {"ladder": ladder.code, "member": m, "label": labels.get(m, m), "baseline": a,
             "draft": b}
            for m, a, b in named.sort("_member").head(max(top, 0) * 10).iter_rows())


def _distribution(levels: pl.Series) -> dict[str, int]:
    counts = levels.fill_null("(none)").value_counts()
    return {str(k): int(v) for k, v in counts.sort(counts.columns[0]).iter_rows()}
