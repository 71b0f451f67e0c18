"""Counters replayed in columns by the simulation agree exactly with the earning path's
per-event counting (``events.inputs.counter_steps`` plus the distinct keys a member stored),
on random events: purchases with several lines, activities with and without the distinct
value, several members, distinct, count and amount counters."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from allegiance import rules
from allegiance.events.inputs import counter_steps
from allegiance.simulation import counters

DOCUMENT: dict[str, Any] = {
    "units": [{"code": "points", "kind": "points"}],
    "activity_types": {"course": {"attributes": {"course_id": "str", "mandatory": "bool"}}},
    "counters": {
        "mandatory": {"trigger": "activity:course", "condition": "event.attributes.mandatory",
                      "distinct": "event.attributes.course_id"},
        "courses": {"trigger": "activity"},
        "spent": {"trigger": "purchase", "measure": "amount",
                  "condition": "event.amount >= 500"},
    },
    "rules": [],
}
NAMES = ("mandatory", "courses", "spent")
START = datetime(2026, 1, 1, tzinfo=UTC)


def _events(seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for n in range(rnd.randint(1, 60)):
        member = rnd.choice("ABC")
        if rnd.random() < 0.5:
            out.append({"member": member, "kind": "activity", "type": "course", "amount": 0,
                        "course_id": rnd.choice(["M1", "M2", "M3", None]),
                        "mandatory": rnd.choice([True, False, None]), "lines": 0, "n": n})
        else:
            out.append({"member": member, "kind": "purchase", "type": None,
                        "amount": rnd.choice([100, 500, 900]), "course_id": None,
                        "mandatory": None, "lines": rnd.randint(0, 3), "n": n})
    return out


def _expected(compiled: rules.CompiledProgram, evs: list[dict[str, Any]]) -> list[dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    seen: set[tuple[str, str, str]] = set()
    out = []
    for ev in evs:
        fields = {"event.amount": ev["amount"], "event.attributes.course_id": ev["course_id"],
                  "event.attributes.mandatory": ev["mandatory"],
                  **{f"member.counters.{n}": 0 for n in NAMES}}
        mine = totals.setdefault(ev["member"], dict.fromkeys(NAMES, 0))
        event_input = rules.EventInput(ev["kind"], ev["type"], START, fields, ())
        for step in counter_steps(compiled, event_input):
            if step.key is not None:
                if (ev["member"], step.name, step.key) in seen:
                    continue
                seen.add((ev["member"], step.name, step.key))
            mine[step.name] += step.step
        out.append(dict(mine))
    return out


def _frame(evs: list[dict[str, Any]]) -> pl.DataFrame:
    rows: dict[str, list[Any]] = {k: [] for k in (
        "_event", "_member", "_at", "_kind", "_activity_type", "_line", "event.amount",
        "event.attributes.course_id", "event.attributes.mandatory", "line.amount",
        *[f"member.counters.{n}" for n in NAMES])}
    for index, ev in enumerate(evs):
        for line in range(ev["lines"]) if ev["lines"] else [None]:
            values = (index, ev["member"], START + timedelta(hours=index), ev["kind"], ev["type"],
                      line, ev["amount"], ev["course_id"], ev["mandatory"],
                      None if line is None else 10 * (line + 1), 0, 0, 0)
            for key, value in zip(rows, values, strict=True):
                rows[key].append(value)
    return pl.DataFrame(rows, schema={
        "_event": pl.Int64, "_member": pl.Utf8, "_at": pl.Datetime("us", "UTC"),
        "_kind": pl.Utf8, "_activity_type": pl.Utf8, "_line": pl.Int64,
        "event.amount": pl.Int64, "event.attributes.course_id": pl.Utf8,
        "event.attributes.mandatory": pl.Boolean, "line.amount": pl.Int64,
        **{f"member.counters.{n}": pl.Int64 for n in NAMES}})


@pytest.mark.parametrize("seed", range(40))
def test_replayed_counters_equal_the_per_event_counting(seed: int) -> None:
    compiled = rules.compile_program(DOCUMENT)
    evs = _events(seed)
    frame = _frame(evs)
    replayed = counters.replay(frame, compiled.counters)
    assert replayed.columns == frame.columns and replayed.height == frame.height
    expected = _expected(compiled, evs)
    for row in replayed.iter_rows(named=True):
        want = expected[row["_event"]]
        assert {n: row[f"member.counters.{n}"] for n in NAMES} == want, (seed, row)


def test_no_counter_column_leaves_the_frame_alone() -> None:
    frame = _frame(_events(1)).drop("member.counters.spent")
    compiled = rules.compile_program(DOCUMENT)
    out = counters.replay(frame, [c for c in compiled.counters if c.name == "spent"])
    assert out.equals(frame)
