"""Columnar evaluation of a program's rules over many events at once (bulk import,
simulation). Gives exactly the awards of :func:`allegiance.rules.evaluate.evaluate` applied
to the events one by one in order (a property test holds the two together).

Input: a *lines frame* with one row per purchase line (events without lines have one row
with ``_line`` null) and the columns
``_event`` (0..n-1, in time order), ``_member``, ``_at`` (UTC datetime), ``_kind``,
``_activity_type``, ``_line`` and the ``event.*``, ``member.*`` and ``line.*`` fields.
Optional: ``_member_key``, an integer per member (equal exactly when ``_member`` is), which
limits group by instead of coding ``_member`` themselves (the simulation has the codes).
Output: an *awards frame* ``_event, _line, rule, effect, type, unit, amount``.

How: one pass computes every rule's match as a boolean column (trigger, validity window,
condition, and the exclusive rules before it); event fields repeat on every line row, so an
event-scope rule's column is the event's match on each of its rows. Each earning rule's
awards are then a filter and a select of those rows, with the multipliers that apply to it
folded into the amount expression and its limits applied to its own rows
(:mod:`allegiance.rules.columnar_limits`); all rules' awards are one lazy concatenation, run
in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from allegiance.kit.money import Rounding
from allegiance.rules.columnar import to_polars
from allegiance.rules.columnar_limits import MEMBER_KEY, apply_limits, closed_form
from allegiance.rules.domain import AWARD_TYPES, Effect, Ratio, Rule, order

AWARD_SCHEMA = {
    "_event": pl.Int64, "_line": pl.Int64, "rule": pl.Utf8, "effect": pl.Int64,
    "type": pl.Utf8, "unit": pl.Utf8, "amount": pl.Int64,
}
_FIRST_ROW = pl.col("_line").is_null() | (pl.col("_line") == 0)
_AMOUNT_EFFECTS = ("points_per_amount", "percent", "commission")
_EVENT_EFFECTS = ("fixed", "bounty")


def _divide(numerator: pl.Expr, den: int, rounding: Rounding) -> pl.Expr:
    """Vector twin of :func:`allegiance.rules.domain.divide` for non-negative numerators."""
    if den == 1:
        return numerator
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
    scaled = amount if ratio.num == 1 else amount * ratio.num
    return _divide(scaled, ratio.den, rounding)


@dataclass(frozen=True)
class FrameProgram:
    """One set of rules for :func:`evaluate_frames`: ``only`` the codes of the rules whose
    awards are wanted (all when None; every rule still takes part: exclusive rules block,
    multipliers multiply); ``time_zone`` the program's, for its limits' periods."""

    rules: Sequence[Rule]
    only: Collection[str] | None = None
    time_zone: str = "UTC"


@dataclass(frozen=True)
class _Plan:
    """A program's rules in evaluation order and the match column of each (by identity)."""

    ordered: list[Rule]
    earning: list[Rule]
    columns: dict[int, str]

    def mask(self, rule: Rule) -> pl.Expr:
        return pl.col(self.columns[id(rule)])


def evaluate_frame(
    rules: Sequence[Rule],
    lines: pl.DataFrame,
    *,
    time_zone: str = "UTC",
    usage: Mapping[tuple[str, str, int, str], tuple[int, int]] | None = None,
    budget_left: Mapping[str, int] | None = None,
    only: Collection[str] | None = None,
) -> pl.DataFrame:
    """Awards for every event of ``lines``. ``usage`` is keyed by
    (member, rule, limit index, period key): what was used before these events.
    ``only``: the codes of the rules whose awards are wanted (every rule of ``rules`` still
    takes part: exclusive rules block, multipliers multiply); all of them when None."""
    return evaluate_frames([FrameProgram(rules, only, time_zone)], lines, usage=usage,
                           budget_left=budget_left)[0]


def evaluate_frames(
    programs: Sequence[FrameProgram],
    lines: pl.DataFrame,
    *,
    usage: Mapping[tuple[str, str, int, str], tuple[int, int]] | None = None,
    budget_left: Mapping[str, int] | None = None,
) -> list[pl.DataFrame]:
    """The awards of each program over the same ``lines`` (as :func:`evaluate_frame` gives
    them), in one pass: a rule found in several programs with the same match (trigger,
    validity, condition, the exclusive rules before it) is matched once, and every
    program's awards are computed in parallel. ``usage`` and ``budget_left`` apply to all."""
    usage = usage or {}
    budget_left = budget_left or {}
    empty = pl.DataFrame(schema=AWARD_SCHEMA)
    if lines.height == 0:
        return [empty for _ in programs]
    queries = [pl.concat([piece.labelled() for piece in pieces], how="vertical")
               if pieces else empty.lazy()
               for pieces in award_pieces(programs, lines, usage=usage,
                                          budget_left=budget_left)]
    return pl.collect_all(queries)


@dataclass(frozen=True)
class RuleAwards:
    """One rule's awards, lazily: ``_event, _line, effect, amount`` (the rule and what each
    effect pays are known from ``rule``, so no row carries them: a caller that only sums,
    as the simulation does, never materialises a text column per award)."""

    rule: Rule
    frame: pl.LazyFrame
    effects: tuple[int, ...]  # the indices of the rule's effects whose rows it holds

    @property
    def paid(self) -> bool:
        """Whether its rows pay a unit (a rule's paid effects are one piece, each unpaid
        effect — tier credit, badge, coupon — a piece of its own)."""
        return self.unit(self.effects[0]) is not None

    def unit(self, effect: int) -> str | None:
        spec = self.rule.effects[effect]
        return spec.unit if spec.type in AWARD_TYPES else None

    def by_effect(self, value: Callable[[int], object],
                  dtype: pl.DataType | type[pl.DataType] = pl.Utf8) -> pl.Expr:
        """A column with ``value(effect)`` for each row's effect (a constant when every
        effect of the piece has the same)."""
        values = {i: value(i) for i in self.effects}
        if len(set(values.values())) == 1:
            return pl.lit(next(iter(values.values())), dtype=dtype)
        chosen: pl.Expr = pl.lit(None, dtype=dtype)
        for index, one in values.items():
            chosen = pl.when(pl.col("effect") == index).then(pl.lit(one, dtype=dtype)) \
                .otherwise(chosen)
        return chosen

    def labelled(self) -> pl.LazyFrame:
        """The awards frame's rows (``_event, _line, rule, effect, type, unit, amount``)."""
        return self.frame.select(
            "_event", "_line", pl.lit(self.rule.code).alias("rule"), "effect",
            self.by_effect(lambda i: self.rule.effects[i].type).alias("type"),
            self.by_effect(self.unit).alias("unit"), "amount")


def award_pieces(
    programs: Sequence[FrameProgram],
    lines: pl.DataFrame,
    *,
    usage: Mapping[tuple[str, str, int, str], tuple[int, int]] | None = None,
    budget_left: Mapping[str, int] | None = None,
) -> list[list[RuleAwards]]:
    """:func:`evaluate_frames`' awards per program as one lazy piece per earning rule and
    kind (paid, then unpaid effects), not collected. ``lines`` must not be empty."""
    masked, plans = _masks(programs, _in_order(lines))
    return [[piece for rule in plan.earning for piece in _rule_awards(
        rule, plan, masked, program.time_zone, usage or {}, budget_left or {})]
        for program, plan in zip(programs, plans, strict=True)]


def _in_order(lines: pl.DataFrame) -> pl.DataFrame:
    """Rows by event, the event-level row or the lines in order: cumulative sums (limits,
    budgets) run in this order."""
    key = pl.col("_event") * (1 << 20) + pl.col("_line").fill_null(-1)
    if lines.select(key).to_series().is_sorted():
        return lines
    return lines.sort(["_event", "_line"], nulls_last=False, maintain_order=True)


def _rule_mask(rule: Rule) -> pl.Expr:
    if rule.trigger.startswith("activity:"):
        mask = (pl.col("_kind") == "activity") & (pl.col("_activity_type") == rule.trigger[9:])
    else:
        mask = pl.col("_kind") == rule.trigger
    if rule.valid_from is not None:
        mask = mask & (pl.col("_at") >= rule.valid_from)
    if rule.valid_to is not None:
        mask = mask & (pl.col("_at") < rule.valid_to)
    if rule.condition is not None:
        mask = mask & to_polars(rule.condition).fill_null(False)
    if rule.line_scope:
        mask = mask & pl.col("_line").is_not_null()
    return mask.fill_null(False)


def _masks(programs: Sequence[FrameProgram], lines: pl.DataFrame
           ) -> tuple[pl.DataFrame, list[_Plan]]:
    """The columns the awards need and one boolean ``_m<i>`` per distinct match of the rules
    that matter: the wanted earning rules, the multipliers and the exclusive rules. An
    exclusive rule that matches an event blocks every later rule for the whole event."""
    needed = ("_event", "_line", "_member", MEMBER_KEY, "_at", "event.amount", "line.amount",
              "event.quantity", "line.quantity")
    names: list[str] = [c for c in needed if c in lines.columns]
    frame = lines.lazy()
    pending: list[pl.Expr] = []
    known: dict[tuple[object, ...], str] = {}
    plans = []
    for program in programs:
        ordered = order(program.rules)
        wanted = None if program.only is None else set(program.only)
        earning = [r for r in ordered if not r.is_multiplier
                   and (wanted is None or r.code in wanted)]
        keep = {id(r) for r in earning}
        columns: dict[int, str] = {}
        blocks: tuple[str, ...] = ()
        for rule in ordered:
            if not (id(rule) in keep or rule.is_multiplier or rule.stacking == "exclusive"):
                continue
            key = (rule.trigger, rule.valid_from, rule.valid_to, rule.condition,
                   rule.line_scope, blocks)
            column = known.get(key)
            if column is None:
                column = known[key] = f"_m{len(known)}"
                names.append(column)
                mask = _rule_mask(rule)
                for block in blocks:
                    mask = mask & ~pl.col(block)
                pending.append(mask.alias(column))
            columns[id(rule)] = column
            if rule.stacking == "exclusive":
                block = column.replace("_m", "_b")
                if block not in frame.collect_schema().names():
                    frame = frame.with_columns(*pending)
                    pending = []
                    flag = pl.col(column)
                    frame = frame.with_columns(
                        (_any_in_event(flag) if rule.line_scope else flag).alias(block))
                blocks = (*blocks, block)
        plans.append(_Plan(ordered, earning, columns))
    return frame.with_columns(*pending).select(names).collect(), plans


def _any_in_event(flag: pl.Expr) -> pl.Expr:
    """``flag.any().over("_event")``: the events with a row flagged, looked up by event (the
    window is an order of magnitude slower)."""
    return pl.col("_event").is_in(pl.col("_event").filter(flag).implode())


def _nonneg(column: str, frame: pl.DataFrame) -> pl.Expr:
    if column not in frame.columns:
        return pl.lit(0, dtype=pl.Int64)
    return pl.col(column).cast(pl.Int64).fill_null(0).clip(lower_bound=0)


def _multiplied(rule: Rule, amount: pl.Expr, per_line: bool, plan: _Plan) -> pl.Expr:
    """``amount`` of an award of ``rule`` after every multiplier that applies to it, in
    order, rounding each time. A line-scope multiplier multiplies only the awards of the
    lines it matched (not the event-level ones); an event-scope one every award of the event."""
    for other in plan.ordered:
        if not other.is_multiplier or (other.line_scope and not per_line):
            continue
        hit = plan.mask(other)
        for effect in other.effects:
            if effect.type != "multiplier" or effect.factor is None:
                continue
            if effect.applies_to and rule.code not in effect.applies_to:
                continue
            amount = pl.when(hit).then(_apply(effect.factor, amount, effect.rounding)) \
                .otherwise(amount)
    return amount


def _effect_rows(rule: Rule, index: int, effect: Effect, rows: pl.LazyFrame,
                 first: pl.LazyFrame, masked: pl.DataFrame,
                 plan: _Plan) -> tuple[pl.LazyFrame, bool] | None:
    """One effect's awards (``_event, _line, effect, type, unit, amount, _member, _at``) and
    whether they are per line; None for effects that award nothing (multipliers)."""
    kind = effect.type
    per_line = False
    source = first
    amount: pl.Expr
    if kind in _EVENT_EFFECTS:
        amount = pl.lit(effect.points, dtype=pl.Int64)
    elif kind in _AMOUNT_EFFECTS:
        assert effect.rate is not None
        per_line, source = rule.line_scope, rows
        column = "line.amount" if per_line else "event.amount"
        amount = _apply(effect.rate, _nonneg(column, masked), effect.rounding)
    elif kind == "points_per_item":
        per_line, source = rule.line_scope, rows
        column = "line.quantity" if per_line else "event.quantity"
        amount = _nonneg(column, masked) * effect.points
    elif kind == "tier_credit":
        metric = str(effect.data.get("metric"))
        if metric == "count":
            amount = pl.lit(1, dtype=pl.Int64)
        elif rule.line_scope:
            source = rows.group_by("_event", maintain_order=True).agg(
                _nonneg("line.amount", masked).sum().alias("_v"), pl.col("_member").first(),
                *[pl.col(MEMBER_KEY).first()] if MEMBER_KEY in masked.columns else [],
                pl.col("_at").first())
            amount = pl.col("_v")
        else:
            amount = _nonneg("event.amount", masked)
    elif kind in ("badge", "coupon"):
        amount = pl.lit(0, dtype=pl.Int64)
    else:
        return None
    unit = effect.unit if kind in AWARD_TYPES else None
    if unit is not None:
        amount = _multiplied(rule, amount, per_line, plan)
    line = pl.col("_line").cast(pl.Int64) if per_line else pl.lit(None, dtype=pl.Int64)
    key = [pl.col(MEMBER_KEY)] if MEMBER_KEY in masked.columns else []
    return source.select(
        pl.col("_event").cast(pl.Int64), line.alias("_line"),
        pl.lit(index, dtype=pl.Int64).alias("effect"), amount.cast(pl.Int64).alias("amount"),
        pl.col("_member"), *key, pl.col("_at"),
    ), per_line


def _rule_awards(rule: Rule, plan: _Plan, masked: pl.DataFrame, time_zone: str,
                 usage: Mapping[tuple[str, str, int, str], tuple[int, int]],
                 budget_left: Mapping[str, int]) -> list[RuleAwards]:
    """The rule's awards (``_event, _line, effect, amount``): its paid effects' cut by its
    limits and budget, then each unpaid effect's."""
    mask = plan.mask(rule)
    rows = masked.lazy().filter(mask if rule.line_scope else mask & _FIRST_ROW)
    first = rows.filter(pl.col("_event").is_first_distinct()) if rule.line_scope else rows
    paid: list[tuple[pl.LazyFrame, bool]] = []
    paid_effects: list[int] = []
    unpaid: list[tuple[pl.LazyFrame, int]] = []
    for index, effect in enumerate(rule.effects):
        made = _effect_rows(rule, index, effect, rows, first, masked, plan)
        if made is None:
            continue
        if effect.type in AWARD_TYPES:
            paid.append(made)
            paid_effects.append(index)
        else:
            unpaid.append((made[0], index))
    out: list[tuple[pl.LazyFrame, tuple[int, ...]]] = []
    if paid:
        frame = paid[0][0] if len(paid) == 1 else pl.concat([p for p, _ in paid]).sort(
            "_event", pl.col("_line").fill_null(-1), "effect", maintain_order=True)
        if rule.limits or rule.budget is not None:
            one_row = len(paid) == 1 and not paid[0][1]
            if MEMBER_KEY in masked.columns and not usage and closed_form(rule, one_row):
                # The member strings are not needed: leave them out of the filter and sort.
                frame = frame.drop("_member")
            frame = apply_limits(rule, frame, one_row_per_event=one_row, time_zone=time_zone,
                                 usage=usage, budget_left=budget_left)
        out.append((frame.filter(pl.col("amount") > 0), tuple(paid_effects)))
    for frame, index in unpaid:
        # Badges and coupons are awards at amount 0; other unpaid effects need an amount.
        kept = frame if rule.effects[index].type in ("badge", "coupon") else frame.filter(
            pl.col("amount") > 0)
        out.append((kept, (index,)))
    return [RuleAwards(rule, frame.select("_event", "_line", "effect", "amount"), effects)
            for frame, effects in out]
