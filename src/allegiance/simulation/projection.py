"""Projection of extra rules (a campaign's) over recent history: the processed purchases and
activities of ``[start, end)`` — of some accounts only, with the segments each belongs to
now — evaluated with and without the extra rules by the simulation's columnar engine. What
the extra rules add is the difference of the two sides. Reads only: nothing is written."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from allegiance import rules, tenants
from allegiance.simulation import engine, history
from allegiance.simulation.service import side

SEGMENTS = "member.segments"


def _narrowed(lines: pl.DataFrame, accounts: Mapping[str, Sequence[str]]) -> pl.DataFrame:
    """The lines of ``accounts``' events, ``_event`` renumbered 0..n-1 (the engine indexes
    by it) and ``member.segments`` the account's segments now (history reads none)."""
    segments = pl.DataFrame({"_member": list(accounts),
                             "_segments": [sorted(v) for v in accounts.values()]},
                            schema={"_member": pl.Utf8, "_segments": pl.List(pl.Utf8)})
    out = lines.join(segments, on="_member", how="inner").sort("_event", "_line",
                                                               nulls_last=True)
    out = out.with_columns((pl.col("_event").rank("dense").cast(pl.Int64) - 1).alias("_event"))
    if SEGMENTS in out.columns:
        out = out.with_columns(pl.col("_segments").alias(SEGMENTS))
    return out.drop("_segments")


def project(session: Session, tenant_id: str, program: tenants.Program,
            document: dict[str, Any], compiled: rules.CompiledProgram,
            extra: Sequence[rules.Rule], accounts: Mapping[str, Sequence[str]] | None,
            start: datetime, end: datetime) -> engine.Comparison:
    """``baseline``: the events of ``[start, end)`` under ``compiled``; ``draft``: under
    ``compiled`` plus ``extra``. ``accounts`` (account -> its segment codes) narrows the
    events to those accounts; None keeps every member's."""
    baseline = side(session, tenant_id, program, "without", document, compiled)
    drafted = side(session, tenant_id, program, "with", document,
                   dataclasses.replace(compiled, rules=compiled.rules + tuple(extra)))
    types = dict(drafted.compiled.types)
    lines, labels = history.load(session, tenant_id, program.id, start, end, types,
                                 drafted.time_zone)
    if accounts is not None:
        lines = _narrowed(lines, accounts)
    return engine.compare(baseline, drafted, lines, labels=labels)
