"""How the admin's analytics pages show a report of ``allegiance.analytics``: figures from its
summary, its rows as a table of formatted text, and its chart as inline SVG (the analytics
renderer's; no script). Pure formatting: the numbers are the report's."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from markupsafe import Markup

from allegiance.analytics import render
from allegiance.analytics.common import Report, ReportInvalid

PERCENT = re.compile(r"^(m\d+|.*_rate|.*breakage|p_alive|mean_p_alive|share|attainment|"
                     r"active_rate|engaged_rate|naive_ratio)$")
LABELS = {"t_x": "t_x (weeks)", "T": "T (weeks)", "m_x": "m_x (mean repeat spend)",
          "x": "x (repeat purchases)", "did": "difference in differences", "att": "ATT",
          "nps": "NPS", "bgnbd": "BG/NBD parameters (purchases)",
          "gamma_gamma": "Gamma-Gamma parameters (spend)", "alpha": "α (alpha)",
          "gamma": "γ (gamma)"}
PARAMETERS = frozenset({"r", "alpha", "a", "b", "p", "q", "gamma"})
# The heading of each report's table of rows.
ROWS_TITLE = {"kpis": "By unit", "liability": "By unit, tier and age (days since earned)",
              "breakage": "By issue-month cohort", "forecast": "Month by month",
              "retention": "Share of each enrolment cohort active, by month since enrolment",
              "clv": "Members with the highest expected value",
              "uplift": "By segment and size band", "nps": "By segment"}


def label(name: str) -> str:
    if name in LABELS:
        return LABELS[name]
    return name.replace("_", " ").replace("-", " ").capitalize()


def text(value: Any, name: str = "") -> str:
    """A report value as the page shows it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, float):
        if PERCENT.match(name):
            return f"{value * 100:.1f}%"
        if value != value:  # NaN
            return "—"
        if name in PARAMETERS:
            return f"{value:.4g}"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:,.2f}"
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)


@dataclass
class View:
    """One report on a page: scalar figures, tables and a chart."""

    title: str
    figures: list[tuple[str, str]]
    tables: list[Table]
    chart: Markup | None
    notes: list[str]


def table(title: str, columns: list[str], rows: list[dict[str, Any]],
          names: dict[str, str] | None = None) -> Table:
    numeric = [bool(rows) and all(isinstance(r.get(c), int | float | Decimal) or r.get(c) is None
                                  for r in rows) and any(r.get(c) is not None for r in rows)
               for c in columns]
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if column == "member" and names is not None:
                value = names.get(str(value), value)
            cells.append(text(value, column))
        body.append(cells)
    return Table(title, [label(c) for c in columns], body, numeric)


def chart(report: Report) -> Markup | None:
    """The report's SVG chart (None when it has nothing to draw)."""
    try:
        drawn = render.chart_of(report)
        if drawn.kind == "line" and all(len(ys) < 2 for _, ys in drawn.series):
            return None  # one point a line draws nothing: the table says it all
        return Markup(render.svg(drawn))  # the charts module escapes every text
    except (ReportInvalid, ValueError):
        return None


def view(report: Report, names: dict[str, str] | None = None) -> View:
    figures: list[tuple[str, str]] = []
    tables: list[Table] = []
    notes: list[str] = []
    for key, value in report.summary.items():
        if key == "warnings":
            notes += [str(w) for w in value]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            columns = list(value[0])
            tables.append(table(label(key), columns, value))
        elif isinstance(value, dict):
            if value and all(not isinstance(v, dict | list) for v in value.values()):
                tables.append(Table(label(key), [label(k) for k in value],
                                    [[text(v, k) for k, v in value.items()]],
                                    [isinstance(v, int | float) for v in value.values()]))
        elif not isinstance(value, list):
            figures.append((label(key), text(value, key)))
    tables.append(table(ROWS_TITLE.get(report.kind, report.title), report.columns, report.rows,
                        names))
    return View(report.title, figures, tables, chart(report), notes)
