"""Member counters in a simulation: counted from the replayed events themselves, as the
earning path counts them (``events.inputs.counter_steps``): per member in event order, the event
included, a ``distinct`` counter once per value, an ``amount`` counter by the event amount.
Counters start from 0 at the period's start (the events before it are not read). Run only when
a side's rules read ``member.counters.*``; the columnar evaluator itself is not changed."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from allegiance import rules


def definitions_of(draft: rules.CompiledProgram, baseline: rules.CompiledProgram
                   ) -> tuple[tuple[rules.Counter, ...], list[str]]:
    """The counters to replay — the draft's, then the baseline's it does not define — and a note
    per counter both define differently (the frame is shared: the draft's definition counts)."""
    chosen = {c.name: c for c in draft.counters}
    notes = []
    for counter in baseline.counters:
        mine = chosen.get(counter.name)
        if mine is None:
            chosen[counter.name] = counter
        elif mine != counter:
            notes.append(f"member.counters.{counter.name} is defined differently in the draft "
                         "and the baseline; both sides read it as the draft counts it")
    return tuple(chosen.values()), notes


def _fits(counter: rules.Counter) -> pl.Expr:
    """The trigger and condition of a counter on an event-level row (no line fields)."""
    if counter.trigger.startswith("activity:"):
        mask = (pl.col("_kind") == "activity") & (pl.col("_activity_type") == counter.trigger[9:])
    else:
        mask = pl.col("_kind") == counter.trigger
    if counter.condition is not None:
        mask = mask & rules.to_polars(counter.condition).fill_null(False)
    return mask.fill_null(False)


def replay(lines: pl.DataFrame, counters: Sequence[rules.Counter]) -> pl.DataFrame:
    """``lines`` (one row per event or line, events numbered ``_event`` in time order, the
    counters' columns 0) with each ``member.counters.<name>`` set to the member's running
    value after the row's event."""
    wanted = [c for c in counters if f"member.counters.{c.name}" in lines.columns]
    if not wanted or lines.is_empty():
        return lines
    # one row per event, without line fields: a counter is evaluated on the event, with every
    # counter read as 0 (as the earning path evaluates it, before its counters are bumped)
    first = lines.unique(subset="_event", keep="first", maintain_order=True).sort("_event")
    if first["_event"].to_list() != list(range(first.height)):
        raise ValueError("the lines frame must number its events 0, 1, 2…")
    first = first.with_columns(
        *[pl.lit(None, dtype=first.schema[c]).alias(c) for c in first.columns
          if c.startswith("line.")])
    steps = []
    for counter in wanted:
        fits = _fits(counter)
        name = f"member.counters.{counter.name}"
        if counter.distinct is not None:
            value = pl.col(counter.distinct)
            counted = fits & value.is_not_null()
            # the member's first fitting event of each value counts
            seen = pl.when(counted).then(pl.col("_member") + "\x00"
                                         + value.cast(pl.Utf8)).otherwise(None)
            step = (counted & seen.is_first_distinct()).cast(pl.Int64)
        elif counter.measure == "amount":
            step = pl.when(fits).then(pl.col("event.amount")).otherwise(0).cast(pl.Int64)
        else:
            step = fits.cast(pl.Int64)
        steps.append(step.alias(name))
    running = first.select("_event", "_member", *steps).with_columns(
        pl.col(f"member.counters.{c.name}").cum_sum().over("_member") for c in wanted)
    # ``_event`` numbers the events 0, 1, 2… and every event has a row: look up by position
    at = lines["_event"]
    return lines.with_columns(
        running[f"member.counters.{c.name}"].gather(at).alias(f"member.counters.{c.name}")
        for c in wanted)
