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
    """``events`` as (member, event) pairs in time order; ``types`` are the field types."""
    columns: dict[str, list[Any]] = {
        "_event": [], "_member": [], "_at": [], "_kind": [], "_activity_type": [], "_line": [],
    }
    names = sorted(types)
    for name in names:
        columns[name] = []
    for index, (member, event) in enumerate(events):
        rows: Sequence[Mapping[str, Any] | None] = event.lines or [None]
        for line_no, line in enumerate(rows):
            columns["_event"].append(index)
            columns["_member"].append(member)
            columns["_at"].append(event.at)
            columns["_kind"].append(event.kind)
            columns["_activity_type"].append(event.activity_type)
            columns["_line"].append(None if line is None else line_no)
            for name in names:
                if name.startswith("line."):
                    columns[name].append(None if line is None else line.get(name))
                else:
                    columns[name].append(event.fields.get(name))
    schema: dict[str, Any] = {
        "_event": pl.Int64, "_member": pl.Utf8, "_at": pl.Datetime("us", "UTC"),
        "_kind": pl.Utf8, "_activity_type": pl.Utf8, "_line": pl.Int64,
    }
    for name in names:
        schema[name] = POLARS_TYPES[types[name]]
    return pl.DataFrame(columns, schema=schema)
