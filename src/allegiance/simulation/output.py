"""A simulation's result as text tables (Rich), CSV, JSON and SVG charts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from allegiance import analytics


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, default=str) + "\n"


def to_csv(result: dict[str, Any]) -> str:
    """One flat table: section, item, unit, baseline, draft, change."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("section", "item", "unit", "baseline", "draft", "change"))
    base, draft = result["baseline"], result["draft"]
    for unit in sorted(set(base["issued"]) | set(draft["issued"])):
        b, d = base["issued"].get(unit, 0), draft["issued"].get(unit, 0)
        writer.writerow(("issued", "total", unit, b, d, d - b))
    writer.writerow(("cost", "total", result["base_currency"], base["cost"], draft["cost"],
                     _minus(draft["cost"], base["cost"])))
    for unit in sorted(set(base["liability_end"]) | set(draft["liability_end"])):
        b, d = base["liability_end"].get(unit, 0), draft["liability_end"].get(unit, 0)
        writer.writerow(("liability_end", "total", unit, b, d, d - b))
    for row in result["rules"]:
        writer.writerow(("rule", row["rule"], row["unit"], row["baseline"], row["draft"],
                         row["change"]))
    for ladder in result["tiers"]:
        levels = sorted(set(ladder["baseline"]) | set(ladder["draft"]))
        for level in levels:
            b, d = ladder["baseline"].get(level, 0), ladder["draft"].get(level, 0)
            writer.writerow((f"tier:{ladder['ladder']}", level, "members", b, d, d - b))
    for row in result["top_earners"]:
        writer.writerow(("top_earner", row["label"], result["base_currency"],
                         row["baseline_cost"], row["draft_cost"],
                         round(row["draft_cost"] - row["baseline_cost"], 2)))
    for row in result["tier_changes"]:
        writer.writerow((f"tier_change:{row['ladder']}", row["label"], "level",
                         row["baseline"] or "", row["draft"] or "", ""))
    return out.getvalue()


def _minus(a: str, b: str) -> str:
    from decimal import Decimal

    return str(Decimal(a) - Decimal(b))


def print_tables(result: dict[str, Any], console: Console) -> None:
    base, draft = result["baseline"], result["draft"]
    console.print(f"[bold]{result['program']}[/]: {result['events']} events of "
                  f"{result['members']} members, {result['from']} to {result['to']}; draft "
                  f"against version {result['baseline_version']}")
    totals = Table("figure", "unit", "in force", "draft", "change", title="Totals")
    for unit in sorted(set(base["issued"]) | set(draft["issued"])):
        b, d = base["issued"].get(unit, 0), draft["issued"].get(unit, 0)
        totals.add_row("issued", unit, f"{b:,}", f"{d:,}", f"{d - b:+,}")
    totals.add_row("cost", result["base_currency"], base["cost"], draft["cost"],
                   _minus(draft["cost"], base["cost"]))
    for unit in sorted(set(base["liability_end"]) | set(draft["liability_end"])):
        b, d = base["liability_end"].get(unit, 0), draft["liability_end"].get(unit, 0)
        totals.add_row("liability at end", unit, f"{b:,}", f"{d:,}", f"{d - b:+,}")
    console.print(totals)
    per_rule = Table("rule", "unit", "in force", "draft", "change", title="Contribution per rule")
    for row in result["rules"]:
        per_rule.add_row(row["rule"], row["unit"], f"{row['baseline']:,}", f"{row['draft']:,}",
                         f"{row['change']:+,}")
    console.print(per_rule)
    for ladder in result["tiers"]:
        table = Table("level", "in force", "draft", title=f"Tier distribution: {ladder['ladder']}"
                      f" ({ladder['up']} up, {ladder['down']} down)")
        for level in sorted(set(ladder["baseline"]) | set(ladder["draft"])):
            table.add_row(level, str(ladder["baseline"].get(level, 0)),
                          str(ladder["draft"].get(level, 0)))
        console.print(table)
    top = Table("member", "in force", "draft", title=f"Top earners (cost, "
                f"{result['base_currency']})")
    for row in result["top_earners"]:
        top.add_row(row["label"], f"{row['baseline_cost']:,.2f}", f"{row['draft_cost']:,.2f}")
    console.print(top)
    if result["tier_changes"]:
        changes = Table("ladder", "member", "in force", "draft", title="Members whose tier "
                        "changes")
        for row in result["tier_changes"]:
            changes.add_row(row["ladder"], row["label"], row["baseline"] or "-",
                            row["draft"] or "-")
        console.print(changes)
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {note}")


def charts(result: dict[str, Any]) -> dict[str, str]:
    """SVG documents by file name: daily cost, contribution per rule, tier distributions."""
    out: dict[str, str] = {}
    daily = result["daily"]
    if daily["day"]:
        xs = [float(i) for i in range(len(daily["day"]))]
        out["daily-cost.svg"] = analytics.line_chart(
            [analytics.Series("in force", xs, _cumulative(daily["baseline_cost"])),
             analytics.Series("draft", xs, _cumulative(daily["draft_cost"]), dashed=True)],
            title=f"Cumulative cost ({result['base_currency']}) from {daily['day'][0]}",
            x_label="days", y_label=result["base_currency"])
    if result["rules"]:
        names = [f"{r['rule']} ({r['unit']})" for r in result["rules"]]
        out["rules.svg"] = analytics.bar_chart(
            names, [("in force", [float(r["baseline"]) for r in result["rules"]]),
                    ("draft", [float(r["draft"]) for r in result["rules"]])],
            title="Issued per rule", y_label="issued")
    for ladder in result["tiers"]:
        levels = sorted(set(ladder["baseline"]) | set(ladder["draft"]))
        out[f"tiers-{ladder['ladder']}.svg"] = analytics.bar_chart(
            levels, [("in force", [float(ladder["baseline"].get(lv, 0)) for lv in levels]),
                     ("draft", [float(ladder["draft"].get(lv, 0)) for lv in levels])],
            title=f"Members per level: {ladder['ladder']}", y_label="members")
    return out


def _cumulative(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for value in values:
        total += value
        out.append(round(total, 2))
    return out


def write_charts(result: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, svg in charts(result).items():
        path = directory / name
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written
