"""Reports as CSV and as charts: one chart per report kind, drawn as SVG (``charts``, no
dependency) or PNG (matplotlib, the optional ``charts`` extra)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allegiance.analytics import charts
from allegiance.analytics.common import Report, ReportInvalid, jsonable


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report.columns)
    for row in report.rows:
        values = jsonable(row)
        writer.writerow(["" if values.get(c) is None else values[c] for c in report.columns])
    return out.getvalue()


@dataclass(frozen=True)
class Chart:
    """What to draw: ``bar`` (labels × series) or ``line`` (xs × series)."""

    kind: str
    title: str
    labels: list[str] = field(default_factory=list)
    xs: list[float] = field(default_factory=list)
    series: list[tuple[str, list[float]]] = field(default_factory=list)
    x_label: str = ""
    y_label: str = ""


def _num(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _pct(value: Any) -> float:
    return 0.0 if value is None else 100.0 * float(value)


def _bars_by_unit(report: Report, labels: list[str], key: str, value: str) -> list[
        tuple[str, list[float]]]:
    out = []
    for unit in sorted({r["unit"] for r in report.rows}):
        mine = [r for r in report.rows if r["unit"] == unit]
        out.append((unit, [sum(_num(r[value]) for r in mine if r[key] == label)
                           for label in labels]))
    return out


def chart_of(report: Report) -> Chart:
    """The chart of a report (a person reads it at a glance)."""
    rows, kind, title = report.rows, report.kind, report.title
    if not rows:
        raise ReportInvalid("the report has no rows to draw", field="chart")
    if kind == "kpis":
        labels = ["issued", "redeemed", "expired"]
        return Chart("bar", title, labels, series=[
            (r["unit"], [_num(r[c]) for c in labels]) for r in rows], y_label="units")
    if kind == "liability":
        ages = list(dict.fromkeys(r["age"] for r in rows))
        return Chart("bar", title, ages, series=_bars_by_unit(report, ages, "age", "outstanding"),
                     y_label="outstanding units")
    if kind == "breakage":
        several = len({r["unit"] for r in rows}) > 1
        labels = [f"{r['unit']} {r['cohort']}" if several else r["cohort"] for r in rows]
        return Chart("bar", title, labels, series=[
            ("historical", [_pct(r["historical_breakage"]) for r in rows]),
            ("estimated", [_pct(r["estimated_breakage"]) for r in rows])], y_label="% of issued")
    if kind == "forecast":
        unit_codes = sorted({r["unit"] for r in rows})
        months = sorted({r["month"] for r in rows})
        return Chart("line", title, xs=[float(i + 1) for i in range(len(months))], series=[
            (u, [_num(r["outstanding"]) for r in rows if r["unit"] == u]) for u in unit_codes],
            x_label=f"months after {months[0]}", y_label="outstanding units")
    if kind == "retention":
        offsets = [c for c in report.columns if c.startswith("m")]
        return Chart("line", title, xs=[float(i) for i in range(len(offsets))], series=[
            (r["cohort"], [_pct(r[c]) for c in offsets if r[c] is not None]) for r in rows],
            x_label="months since enrolment", y_label="% active")
    simple = {
        "purchase-gaps": ("days", "gaps", _num, "gaps"),
        "nps": ("segment", "nps", _num, "NPS"),
        "penetration": ("group", "share", _pct, "% of spend in new categories"),
        "targets": ("market", "attainment", _pct, "% of target"),
        "roi": ("item", "value", _num, "base currency"),
    }
    if kind in simple:
        label, value, scale, axis = simple[kind]
        return Chart("bar", title, [str(r[label]) for r in rows],
                     series=[(value, [scale(r[value]) for r in rows])], y_label=axis)
    if kind == "uplift":
        return Chart("bar", title, [f"{r['segment']} / {r['size_band']}" for r in rows],
                     series=[("difference in differences", [_num(r["did"]) for r in rows])],
                     y_label="spend per member (minor units)")
    if kind == "clv":
        bins = [0] * 10
        for r in rows:
            bins[min(int(r["p_alive"] * 10), 9)] += 1
        return Chart("bar", title + ": P(alive)", [f"{i / 10:.1f}" for i in range(10)],
                     series=[("members", [float(b) for b in bins])], y_label="members")
    raise ReportInvalid(f"no chart for {kind}", field="chart")


def svg(chart: Chart) -> str:
    if chart.kind == "line":
        return charts.line_chart(
            [charts.Series(name, chart.xs[:len(ys)], ys) for name, ys in chart.series],
            title=chart.title, x_label=chart.x_label, y_label=chart.y_label)
    return charts.bar_chart(chart.labels, chart.series, title=chart.title,
                            y_label=chart.y_label)


def png(chart: Chart, path: Path) -> None:
    """Draw with matplotlib (``pip install 'allegiance[charts]'``)."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ReportInvalid("PNG charts need matplotlib: pip install 'allegiance[charts]' "
                            "(SVG needs nothing)", field="chart") from exc
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7.2, 4.2), dpi=100)
    try:
        if chart.kind == "line":
            for name, ys in chart.series:
                axes.plot(chart.xs[:len(ys)], ys, label=name)
        else:
            count = len(chart.series)
            width = 0.8 / count
            for j, (name, ys) in enumerate(chart.series):
                axes.bar([i + j * width for i in range(len(chart.labels))], ys, width,
                         label=name)
            axes.set_xticks([i + 0.4 - width / 2 for i in range(len(chart.labels))],
                            chart.labels)
        axes.set_title(chart.title)
        axes.set_xlabel(chart.x_label)
        axes.set_ylabel(chart.y_label)
        if len(chart.series) > 1:
            axes.legend()
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)


def write_chart(report: Report, path: Path) -> None:
    """SVG or PNG by the file's suffix."""
    chart = chart_of(report)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        path.write_text(svg(chart), encoding="utf-8")
    elif suffix == ".png":
        png(chart, path)
    else:
        raise ReportInvalid("the chart file must end in .svg or .png", field="chart")
