"""Building the columnar evaluator's lines frame from events (one row per line)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from allegiance.rules.columnar import POLARS_TYPES
from allegiance.rules.evaluate import EventInput


def lines_frame(
    events: Sequence[tuple[str, EventInput]], types: Mapping[str, str]
) -> pl.DataFrame:
    """``events`` as (member, event) pairs in time order; ``types`` are the field types.

    The event's own fields are read once per event and repeated over its lines by Polars
    (a gather), the line fields once per line; each column is one list comprehension."""
    names = sorted(types)
    event_names = [n for n in names if not n.startswith("line.")]
    line_names = [n for n in names if n.startswith("line.")]
    inputs = [event for _, event in events]
    per_event: dict[str, list[Any]] = {
        "_member": [member for member, _ in events], "_at": [e.at for e in inputs],
        "_kind": [e.kind for e in inputs], "_activity_type": [e.activity_type for e in inputs],
    }
    for name in event_names:
        per_event[name] = [e.fields.get(name) for e in inputs]
    flat: list[tuple[int, int, Mapping[str, Any] | None]] = [
        (index, line_no, line) for index, event in enumerate(inputs)
        for line_no, line in enumerate(event.lines or [None])]
    per_line: dict[str, list[Any]] = {
        "_event": [index for index, _, _ in flat],
        "_line": [None if line is None else line_no for _, line_no, line in flat],
    }
    for name in line_names:
        per_line[name] = [None if line is None else line.get(name) for _, _, line in flat]
    schema: dict[str, Any] = {
        "_event": pl.Int64, "_member": pl.Utf8, "_at": pl.Datetime("us", "UTC"),
        "_kind": pl.Utf8, "_activity_type": pl.Utf8, "_line": pl.Int64,
    }
    for name in names:
        schema[name] = POLARS_TYPES[types[name]]
    event_frame = pl.DataFrame(per_event, schema={n: schema[n] for n in per_event})
    line_frame = pl.DataFrame(per_line, schema={n: schema[n] for n in per_line})
    repeated = event_frame[line_frame["_event"]] if flat else event_frame.clear()
    return pl.concat([line_frame, repeated], how="horizontal").select(list(schema))
