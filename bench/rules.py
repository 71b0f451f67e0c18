"""``python -m bench rules``: one 20-rule program evaluated per event (Python) and columnar
(Polars) over the same seeded events.

Goal (issue "Events, earning rules, tiers"): report µs per event of the per-event evaluator;
the columnar evaluator over 1M events must run at ≥ 20× the per-event rate in the same run.
Correctness: on a shared prefix of the events both evaluators must give identical awards.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from allegiance.rules import EventInput, compile_program, evaluate, evaluate_frame, period_key
from bench.common import Check, Figure, write_results

TZ = "Europe/Madrid"
CATEGORIES = ["tyres", "oil", "filters", "brakes", "batteries", "tools", "paint", "lights"]
BRANDS = ["Cordiant", "Tunga", "Nordman", "Generic", "Bosch"]
N_SKUS = 5_000
GENUINE = [f"SKU{i:05d}" for i in range(0, N_SKUS, 3)]
PROMO = [f"SKU{i:05d}" for i in range(0, N_SKUS, 11)]


def program() -> dict[str, Any]:
    """A 20-rule program with product lists, caps, a tier multiplier and a campaign window."""
    rules: list[dict[str, Any]] = [
        {"code": "base", "priority": 10, "condition": 'in_list(line.sku, "genuine")',
         "effects": [{"type": "points_per_amount", "unit": "points", "rate": "0.01"}]},
        {"code": "tyres-per-item", "priority": 10, "condition": 'line.category == "tyres"',
         "effects": [{"type": "points_per_item", "unit": "points", "points": 5}],
         "limits": [{"period": "month", "max": 2000}]},
        {"code": "promo-list", "priority": 10, "condition": 'in_list(line.sku, "promo")',
         "effects": [{"type": "fixed", "unit": "points", "points": 50}],
         "limits": [{"period": "day", "times": 1}]},
        {"code": "big-order", "priority": 9, "condition": "event.amount >= 500000",
         "effects": [{"type": "fixed", "unit": "points", "points": 1000}]},
        {"code": "cashback-oil", "priority": 8, "condition": 'line.category == "oil"',
         "effects": [{"type": "percent", "unit": "cashback", "percent": "2"}],
         "limits": [{"period": "month", "max": 10000}]},
        {"code": "brand-cordiant", "priority": 8, "condition": 'line.brand == "Cordiant"',
         "effects": [{"type": "points_per_amount", "unit": "points", "rate": "0.005"}]},
        {"code": "web-bonus", "priority": 7, "condition": 'event.channel == "web"',
         "effects": [{"type": "fixed", "unit": "points", "points": 10}],
         "limits": [{"period": "week", "times": 2}]},
        {"code": "weekend", "priority": 7, "condition": "event.weekday >= 6",
         "effects": [{"type": "points_per_amount", "unit": "points", "rate": "0.002"}]},
        {"code": "region-es", "priority": 6, "condition": 'member.region == "ES" and '
         'line.category in ["brakes", "filters"]',
         "effects": [{"type": "points_per_item", "unit": "points", "points": 3}]},
        {"code": "spend-credit", "priority": 5,
         "effects": [{"type": "tier_credit", "metric": "spend"}]},
        {"code": "tier-gold", "priority": 4, "condition": 'member.tier == "gold"',
         "effects": [{"type": "multiplier", "factor": "1.25", "applies_to": ["base"]}]},
        {"code": "tier-platinum", "priority": 4, "condition": 'member.tier == "platinum"',
         "effects": [{"type": "multiplier", "factor": "1.5", "applies_to": ["base"]}]},
        {"code": "q4-campaign", "priority": 3, "condition": 'line.category == "batteries"',
         "valid_from": "2026-10-01T00:00:00+00:00", "valid_to": "2027-01-01T00:00:00+00:00",
         "effects": [{"type": "multiplier", "factor": "2"}]},
        {"code": "budgeted-launch", "priority": 3, "condition": 'line.brand == "Nordman"',
         "budget": 5_000_000,
         "effects": [{"type": "points_per_item", "unit": "points", "points": 20}]},
        {"code": "course", "trigger": "activity:course_completed", "priority": 10,
         "effects": [{"type": "fixed", "unit": "points", "points": 50}],
         "limits": [{"period": "lifetime", "times": 10}]},
        {"code": "mandatory-course", "trigger": "activity:course_completed", "priority": 11,
         "condition": "event.attributes.mandatory",
         "effects": [{"type": "fixed", "unit": "points", "points": 100}],
         "limits": [{"period": "lifetime", "times": 2}]},
        {"code": "survey", "trigger": "activity:survey_answered", "priority": 10,
         "effects": [{"type": "fixed", "unit": "points", "points": 20}],
         "limits": [{"period": "month", "times": 1}]},
        {"code": "survey-detractor-followup", "trigger": "activity:survey_answered",
         "priority": 9, "condition": "event.attributes.score <= 6",
         "effects": [{"type": "badge", "code": "heard-you"}]},
        {"code": "store-quantity", "priority": 2,
         "condition": 'event.channel == "store" and event.quantity >= 10',
         "effects": [{"type": "fixed", "unit": "points", "points": 25}]},
        {"code": "exclusive-test-sku", "priority": 20, "stacking": "exclusive",
         "condition": 'line.sku == "SKU00001"',
         "effects": [{"type": "fixed", "unit": "points", "points": 1}]},
    ]
    return {
        "program": {"code": "bench", "name": "Bench", "base_currency": "EUR", "time_zone": TZ},
        "units": [{"code": "points", "kind": "points"},
                  {"code": "cashback", "kind": "money", "currency": "EUR"}],
        "product_lists": {"genuine": GENUINE, "promo": PROMO},
        "activity_types": {
            "course_completed": {"attributes": {"course_id": "str", "mandatory": "bool"}},
            "survey_answered": {"attributes": {"score": "int"}},
        },
        "rules": rules,
    }


def generate(n_events: int, n_members: int, seed: int) -> pl.DataFrame:
    """A lines frame (1–5 lines per purchase, 10% activities), sorted by time."""
    rng = np.random.default_rng(seed)
    kinds = rng.random(n_events)
    is_activity = kinds < 0.10
    lines_per = np.where(is_activity, 0, rng.integers(1, 6, n_events))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    seconds = np.sort(rng.integers(0, 365 * 86400, n_events))
    members = rng.integers(0, n_members, n_events)
    tiers = np.array(["silver", "gold", "platinum", None], dtype=object)[
        rng.integers(0, 4, n_members)]
    regions = np.array(["ES", "FR", "DE"], dtype=object)[rng.integers(0, 3, n_members)]
    rows = np.maximum(lines_per, 1)
    event_of_row = np.repeat(np.arange(n_events), rows)
    line_of_row = np.concatenate([np.arange(k) for k in rows]).astype(object)
    has_line = np.repeat(lines_per > 0, rows)
    line_of_row[~has_line] = None
    n_rows = event_of_row.size
    quantity = rng.integers(1, 8, n_rows)
    price = rng.integers(500, 50_000, n_rows)
    line_amount = quantity * price
    event_amount = np.bincount(event_of_row, weights=line_amount * has_line,
                               minlength=n_events).astype(np.int64)
    event_quantity = np.bincount(event_of_row, weights=quantity * has_line,
                                 minlength=n_events).astype(np.int64)
    start_us = int(start.timestamp() * 1_000_000)
    at_us = start_us + seconds.astype(np.int64) * 1_000_000
    activity_type = np.where(rng.random(n_events) < 0.6, "course_completed", "survey_answered")
    frame = pl.DataFrame({
        "_event": event_of_row.astype(np.int64),
        "_member": [f"m{m}" for m in members[event_of_row]],
        "_at": pl.Series(at_us[event_of_row]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "_kind": np.where(is_activity[event_of_row], "activity", "purchase"),
        "_activity_type": pl.Series(
            np.where(is_activity, activity_type, None)[event_of_row].tolist(), dtype=pl.Utf8),
        "_line": pl.Series(line_of_row.tolist(), dtype=pl.Int64),
        "event.amount": event_amount[event_of_row],
        "event.quantity": event_quantity[event_of_row],
        "event.channel": np.array(["web", "store", "phone"])[rng.integers(0, 3, n_events)][
            event_of_row],
        "event.attributes.mandatory": rng.random(n_events)[event_of_row] < 0.3,
        "event.attributes.score": rng.integers(0, 11, n_events)[event_of_row],
        "member.tier": pl.Series(tiers[members[event_of_row]].tolist(), dtype=pl.Utf8),
        "member.region": regions[members[event_of_row]],
        "line.sku": [f"SKU{s:05d}" for s in rng.integers(0, N_SKUS, n_rows)],
        "line.category": np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), n_rows)],
        "line.brand": np.array(BRANDS)[rng.integers(0, len(BRANDS), n_rows)],
        "line.quantity": quantity,
        "line.amount": line_amount,
    })
    line_cols = ["line.sku", "line.category", "line.brand", "line.quantity", "line.amount"]
    frame = frame.with_columns([
        pl.when(pl.col("_line").is_null()).then(None).otherwise(pl.col(c)).alias(c)
        for c in line_cols
    ])
    # ISO weekday (Monday = 1), as the API computes it in the program's time zone.
    return frame.with_columns(
        pl.col("_at").dt.convert_time_zone(TZ).dt.weekday().cast(pl.Int64)
        .alias("event.weekday")
    )


def to_inputs(frame: pl.DataFrame) -> list[tuple[str, EventInput]]:
    """The same events as inputs of the per-event evaluator."""
    out: list[tuple[str, EventInput]] = []
    event_cols = [c for c in frame.columns if c.startswith(("event.", "member."))]
    line_cols = [c for c in frame.columns if c.startswith("line.")]
    for _key, group in frame.group_by("_event", maintain_order=True):
        first = group.row(0, named=True)
        lines = [] if first["_line"] is None else [
            {c: row[c] for c in line_cols} for row in group.iter_rows(named=True)]
        out.append((first["_member"], EventInput(
            kind=first["_kind"], activity_type=first["_activity_type"], at=first["_at"],
            fields={c: first[c] for c in event_cols}, lines=lines)))
    return out


def sequential(rules: Any, inputs: list[tuple[str, EventInput]]) -> list[tuple[Any, ...]]:
    usage: dict[str, dict[tuple[str, int, str], tuple[int, int]]] = {}
    budget = {r.code: r.budget for r in rules if r.budget is not None}
    out = []
    for index, (member, event) in enumerate(inputs):
        mine = usage.setdefault(member, {})
        result = evaluate(rules, event, period_key=lambda p, at: period_key(p, at, TZ),
                          usage=mine, budget_left=budget)
        for key, (amount, times) in result.usage.items():
            old = mine.get(key, (0, 0))
            mine[key] = (old[0] + amount, old[1] + times)
        for rule, used in result.budget_used.items():
            budget[rule] -= used
        out.extend((index, a.line, a.rule, a.effect, a.amount) for a in result.awards)
    return sorted(out, key=lambda t: tuple((x is None, x) for x in t))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules-events", type=int, default=None,
                        help="events for the columnar run (default 1,000,000; quick 100,000)")


def run(args: argparse.Namespace) -> bool:
    compiled = compile_program(program())
    rules = list(compiled.rules)
    n_columnar = args.rules_events or (100_000 if args.quick else 1_000_000)
    n_members = max(1000, n_columnar // 20)
    n_single = 5_000 if args.quick else 20_000
    seed = args.seed
    frame = generate(n_columnar, n_members, seed)
    single_frame = frame.filter(pl.col("_event") < n_single)
    inputs = to_inputs(single_frame)

    # Per event: one event at a time, with usage carried between events (as the API does).
    started = time.perf_counter()
    per_event = sequential(rules, inputs)
    per_event_seconds = time.perf_counter() - started

    started = time.perf_counter()
    awards = evaluate_frame(rules, frame, time_zone=TZ)
    columnar_seconds = time.perf_counter() - started

    prefix = evaluate_frame(rules, single_frame, time_zone=TZ)
    got = sorted(
        (tuple(r) for r in prefix.select("_event", "_line", "rule", "effect", "amount").iter_rows()),
        key=lambda t: tuple((x is None, x) for x in t))
    checks = [Check("rules.agree", "python+polars", got == per_event,
                    f"{len(per_event)} awards on {n_single} events")]
    single = Figure("rules.per_event", "python", n_single, per_event_seconds,
                    note=f"{per_event_seconds / n_single * 1e6:.1f} µs/event, 20 rules")
    columnar = Figure("rules.columnar", "polars", n_columnar, columnar_seconds,
                      limit_name="rules.per_event", limit_rate=single.rate, goal=20.0,
                      note=f"{frame.height} lines, {awards.height} awards")
    for figure in (single, columnar):
        print(figure.line())
    for check in checks:
        print(check.line())
    write_results("rules", {"events": n_columnar, "members": n_members, "seed": seed,
                            "per_event_sample": n_single}, [single, columnar], checks)
    return bool(columnar.passed) and all(c.ok for c in checks)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    add_arguments(parser)
    raise SystemExit(0 if run(parser.parse_args()) else 1)
